// The P&L page's chart: cumulative realised profit per day (uPlot), from the page's data attribute.
(function () {
  var box = document.getElementById("pnl-chart");
  if (!box || typeof uPlot === "undefined") return;
  var series = JSON.parse(box.getAttribute("data-series") || "{}");
  if (!series.days || !series.days.length) return;
  var xs = series.days.map(function (day) { return Date.parse(day + "T00:00:00Z") / 1000; });
  var width = Math.max(320, Math.min(box.clientWidth || 800, 1000));
  var chart = new uPlot(
    {
      width: width,
      height: 260,
      series: [
        {},
        { label: "Cumulative profit (ISK)", stroke: "#0b5cad", width: 2 },
        { label: "Profit per day (ISK)", stroke: "#2f9e44", width: 1 },
      ],
      axes: [{}, { size: 80 }],
    },
    [xs, series.cumulative, series.profit],
    box
  );
  box.setAttribute("data-chart-ready", "true");
  window.marketPnlChart = chart;
})();
