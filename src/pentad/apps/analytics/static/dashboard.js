// The analytics dashboard: reads the stats API with the page's session and draws the panels and the chart.
(() => {
  const root = document.getElementById("dashboard");
  if (!root) return;
  const site = root.dataset.site;
  const period = document.getElementById("period");
  const error = document.getElementById("error");
  let chart = null;

  async function get(path) {
    const response = await fetch(`/api/analytics/sites/${site}/${path}?period=${encodeURIComponent(period.value)}`, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail; } catch (_) { /* not JSON */ }
      throw new Error(detail);
    }
    return response.json();
  }

  function format(name, value) {
    if (value === null || value === undefined) return "–";
    if (name === "bounce_rate") return `${value} %`;
    if (name === "visit_duration") {
      const minutes = Math.floor(value / 60);
      return minutes ? `${minutes} min ${Math.round(value % 60)} s` : `${Math.round(value)} s`;
    }
    return Number(value).toLocaleString();
  }

  function fill(table, rows, cells) {
    const body = table.tBodies[0];
    body.replaceChildren(...rows.map((row) => {
      const tr = document.createElement("tr");
      for (const value of cells(row)) {
        const td = document.createElement("td");
        td.textContent = value;
        tr.append(td);
      }
      return tr;
    }));
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = table.tHead.rows[0].cells.length;
      td.textContent = "No data yet";
      td.className = "muted";
      tr.append(td);
      body.append(tr);
    }
  }

  function draw(series) {
    const xs = series.points.map((p) => Date.parse(p.start) / 1000);
    const data = [xs, series.points.map((p) => p.visitors), series.points.map((p) => p.pageviews)];
    const target = document.getElementById("chart");
    const width = Math.max(280, target.clientWidth || root.clientWidth);
    if (chart) chart.destroy();
    if (typeof uPlot === "undefined") return;
    chart = new uPlot({
      width, height: 240,
      series: [{}, { label: "Visitors", stroke: "#2563eb", width: 2 }, { label: "Pageviews", stroke: "#16a34a", width: 2 }],
      axes: [{}, { size: 50 }],
    }, data, target);
  }

  async function load() {
    error.hidden = true;
    try {
      const [totals, series, drops] = await Promise.all([get("stats/aggregate"), get("stats/timeseries"), get("drops")]);
      for (const element of root.querySelectorAll("[data-stat]")) {
        element.textContent = format(element.dataset.stat, totals[element.dataset.stat]);
      }
      draw(series);
      fill(root.querySelector("[data-drops]"), drops.reasons, (r) => [r.reason, r.count.toLocaleString()]);
      await Promise.all([...root.querySelectorAll("[data-breakdown]")].map(async (table) => {
        const dimension = table.dataset.breakdown;
        const found = await get(`stats/breakdown/${dimension}`);
        fill(table, found.rows, (r) => [r.value, r.visitors.toLocaleString(), (dimension === "events" ? r.events : r.pageviews).toLocaleString()]);
      }));
    } catch (exc) {
      error.textContent = `Could not load the statistics: ${exc.message}`;
      error.hidden = false;
    }
  }

  period.addEventListener("change", load);
  load();
})();
