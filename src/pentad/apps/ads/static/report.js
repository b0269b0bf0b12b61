// The ads report page's chart: the daily series the server put in #ads-chart's data-series, drawn with uPlot.
(function () {
  "use strict";
  const target = document.getElementById("ads-chart");
  if (!target || typeof uPlot === "undefined") return;
  const series = JSON.parse(target.dataset.series || "{}");
  if (!series.days || !series.days.length) return;
  const xs = series.days.map((day) => Date.parse(day + "T00:00:00Z") / 1000);
  const data = [xs, series.served, series.viewable, series.clicks, series.conversions];
  new uPlot({
    width: Math.max(280, target.clientWidth || 640), height: 240,
    series: [
      {},
      { label: "Served", stroke: "#64748b", width: 2 },
      { label: "Viewable", stroke: "#2563eb", width: 2 },
      { label: "Clicks", stroke: "#16a34a", width: 2 },
      { label: "Conversions", stroke: "#d97706", width: 2 },
    ],
    axes: [{}, { size: 50 }],
  }, data, target);
  target.dataset.drawn = "1";
})();
