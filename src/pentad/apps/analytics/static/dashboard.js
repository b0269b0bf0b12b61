// The analytics dashboard: reads the stats API (the site's, or a shared link's read-only copy) with the
// page's range and filters, draws the panels, the chart and the country map, shows live visitors (the hub's
// topic for signed-in readers, polling for shared links) and, for owners, manages goals, funnels and links.
(() => {
  const root = document.getElementById("dashboard");
  if (!root) return;
  const api = root.dataset.api;
  const shared = Boolean(root.dataset.shared);
  const manage = Boolean(root.dataset.manage);
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const period = document.getElementById("period");
  const from = document.getElementById("from");
  const to = document.getElementById("to");
  const error = document.getElementById("error");
  const chips = document.getElementById("filters");
  const labels = { page: "Page", entry_page: "Entry page", exit_page: "Exit page", source: "Source",
    referrer: "Referrer", country: "Country", region: "Region", city: "City", device: "Device",
    browser: "Browser", os: "OS", event: "Event", goal: "Goal" };
  let filters = [];
  let chart = null;
  let world = null;
  let goals = [];

  // ---------------------------------------------------------------- state in the URL
  const initial = new URLSearchParams(location.search);
  if (initial.get("period")) period.value = initial.get("period");
  from.value = initial.get("from") || "";
  to.value = initial.get("to") || "";
  filters = initial.getAll("filter");

  function params(extra = {}) {
    const query = new URLSearchParams({ period: period.value });
    if (period.value === "custom") { query.set("from", from.value); query.set("to", to.value); }
    for (const filter of filters) query.append("filter", filter);
    for (const [key, value] of Object.entries(extra)) if (value !== null && value !== "") query.set(key, value);
    return query;
  }

  function remember() {
    const query = params();
    history.replaceState(null, "", `${location.pathname}?${query}`);
  }

  async function request(method, path, { query = params(), body } = {}) {
    const url = `${api}/${path}${method === "GET" ? `?${query}` : ""}`;
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRF-Token"] = csrf;
    const response = await fetch(url, { method, credentials: "same-origin", headers,
      body: body === undefined ? undefined : JSON.stringify(body) });
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail; } catch (_) { /* not JSON */ }
      throw new Error(detail);
    }
    return response.status === 204 ? null : response.json();
  }
  const get = (path, extra) => request("GET", path, { query: params(extra) });

  // ---------------------------------------------------------------- formatting and tables
  function format(name, value) {
    if (value === null || value === undefined) return "–";
    if (name === "bounce_rate") return `${value} %`;
    if (name === "visit_duration") {
      const minutes = Math.floor(value / 60);
      return minutes ? `${minutes} min ${Math.round(value % 60)} s` : `${Math.round(value)} s`;
    }
    return Number(value).toLocaleString();
  }

  function cell(content) {
    const td = document.createElement("td");
    if (content instanceof Node) td.append(content); else td.textContent = content;
    return td;
  }

  function fill(table, rows, cells, onPick) {
    const body = table.tBodies[0];
    body.replaceChildren(...rows.map((row) => {
      const tr = document.createElement("tr");
      const values = cells(row);
      values.forEach((value, index) => {
        if (index === 0 && onPick) {
          const button = document.createElement("button");
          button.type = "button";
          button.className = "an-pick";
          button.textContent = value;
          button.title = "Filter by this value";
          button.addEventListener("click", () => onPick(row));
          tr.append(cell(button));
        } else tr.append(cell(value));
      });
      return tr;
    }));
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = cell("No data yet");
      td.colSpan = table.tHead.rows[0].cells.length;
      td.className = "muted";
      tr.append(td);
      body.append(tr);
    }
  }

  function notice(panel, message) {
    const element = panel.querySelector("[data-notice]");
    if (!element) return;
    element.textContent = message || "";
    element.hidden = !message;
  }

  async function guarded(panel, work) {
    notice(panel, "");
    try { await work(); } catch (exc) { notice(panel, exc.message); }
  }

  // ---------------------------------------------------------------- filters
  function addFilter(dimension, value, operator = "is") {
    const filter = `${dimension}:${operator}:${value}`;
    if (!filters.includes(filter)) filters.push(filter);
    load();
  }

  function drawChips() {
    chips.replaceChildren(...filters.map((filter) => {
      const [dimension, operator, ...rest] = filter.split(":");
      const li = document.createElement("li");
      const name = dimension.startsWith("prop.") ? `Property ${dimension.slice(5)}` : (labels[dimension] || dimension);
      li.textContent = `${name} ${operator.replace("_", " ")} ${rest.join(":")} `;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "×";
      remove.setAttribute("aria-label", `Remove the filter ${li.textContent.trim()}`);
      remove.addEventListener("click", () => { filters = filters.filter((f) => f !== filter); load(); });
      li.append(remove);
      return li;
    }));
  }

  // ---------------------------------------------------------------- chart and map
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

  async function drawMap(rows) {
    const target = document.getElementById("map");
    const caption = document.getElementById("map-caption");
    if (!world) {
      const response = await fetch("/static/analytics/map-world.json");
      if (!response.ok) return;
      world = await response.json();
    }
    const counts = new Map(rows.map((row) => [row.value, row.visitors]));
    const top = Math.max(1, ...counts.values());
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `0 0 ${world.width} ${world.height}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "Visitors by country");
    for (const [code, [name, d]] of Object.entries(world.countries)) {
      const path = document.createElementNS(ns, "path");
      const visitors = counts.get(code) || 0;
      path.setAttribute("d", d);
      path.dataset.country = code;
      path.dataset.visitors = String(visitors);
      const share = visitors ? 0.15 + 0.85 * Math.log1p(visitors) / Math.log1p(top) : 0;
      path.style.fill = visitors ? `color-mix(in srgb, #2563eb ${Math.round(share * 100)}%, transparent)` : "";
      const title = document.createElementNS(ns, "title");
      title.textContent = `${name}: ${visitors.toLocaleString()} visitor${visitors === 1 ? "" : "s"}`;
      path.append(title);
      path.addEventListener("mouseenter", () => { caption.textContent = title.textContent; });
      path.addEventListener("click", () => addFilter("country", code));
      svg.append(path);
    }
    target.replaceChildren(svg);
  }

  // ---------------------------------------------------------------- panels
  async function loadTop() {
    const [totals, series] = await Promise.all([get("stats/aggregate", { compare: "previous" }), get("stats/timeseries")]);
    for (const element of root.querySelectorAll("[data-stat]")) {
      element.textContent = format(element.dataset.stat, totals[element.dataset.stat]);
    }
    for (const element of root.querySelectorAll("[data-change]")) {
      const change = totals.comparison ? totals.comparison.change[element.dataset.change] : null;
      element.textContent = change === null || change === undefined ? "" : `${change > 0 ? "+" : ""}${change} % vs before`;
    }
    draw(series);
  }

  async function loadBreakdown(table) {
    const dimension = table.dataset.breakdown;
    const found = await get(`stats/breakdown/${dimension}`, { limit: dimension === "countries" ? 100 : 10 });
    const rows = dimension === "countries" ? found.rows.slice(0, 10) : found.rows;
    fill(table, rows, (r) => [r.value, r.visitors.toLocaleString(), (dimension === "events" ? r.events : r.pageviews).toLocaleString()],
      (r) => addFilter(found.filter, r.value === "(unknown)" || r.value === "Direct / None" ? "(none)" : r.value));
    if (dimension === "countries") await drawMap(found.rows);
  }

  async function loadGoals() {
    const table = root.querySelector("[data-goals]");
    const found = await get("stats/goals");
    goals = found.goals;
    fill(table, found.goals, (g) => {
      const cells = [g.name, g.visitors.toLocaleString(), g.completions.toLocaleString(),
        g.conversion_rate === null ? "–" : `${g.conversion_rate} %`,
        g.revenue === null ? "–" : `${g.revenue.toLocaleString(undefined, { minimumFractionDigits: 2 })} ${g.currency}`];
      if (manage) {
        const remove = document.createElement("button");
        remove.type = "button";
        remove.textContent = "Remove";
        remove.className = "button button--small";
        remove.addEventListener("click", async (event) => {
          event.stopPropagation();
          await request("DELETE", `goals/${g.goal_id}`);
          load();
        });
        cells.push(remove);
      }
      return cells;
    }, (g) => addFilter("goal", g.name));
  }

  async function loadProps() {
    const select = document.getElementById("prop-key");
    const table = root.querySelector("[data-props]");
    const key = select.value;
    const found = await get("stats/props", { key });
    if (!key) {
      const chosen = select.value;
      select.replaceChildren(new Option("(all properties)", ""), ...found.rows.map((r) => new Option(r.value, r.value)));
      select.value = chosen;
    }
    fill(table, found.rows, (r) => [r.value, r.visitors.toLocaleString(), r.events.toLocaleString()],
      (r) => { if (key) addFilter(`prop.${key}`, r.value); else { select.value = r.value; guarded(select.closest("section"), loadProps); } });
  }

  async function loadFunnels() {
    const select = document.getElementById("funnel");
    const list = document.getElementById("funnel-steps");
    const funnels = await request("GET", "funnels", { query: new URLSearchParams() });
    const chosen = select.value;
    select.replaceChildren(...(funnels.length ? funnels.map((f) => new Option(f.name, f.id)) : [new Option("(none defined)", "")]));
    if (chosen && funnels.some((f) => f.id === chosen)) select.value = chosen;
    list.replaceChildren();
    if (!select.value) return;
    const report = await get(`funnels/${select.value}/report`);
    list.replaceChildren(...report.steps.map((step, index) => {
      const li = document.createElement("li");
      const bar = document.createElement("span");
      bar.className = "an-funnel__bar";
      bar.style.width = `${step.overall_rate ?? 0}%`;
      const text = document.createElement("span");
      text.textContent = `${step.label}: ${step.units.toLocaleString()}` +
        (index ? ` (${step.conversion_rate ?? 0} % of the step before, ${step.dropoff.toLocaleString()} dropped off)`
               : ` of ${report.units.toLocaleString()} ${report.scope === "day" ? "visitor-days" : "visits"}`);
      li.append(bar, text);
      return li;
    }));
  }

  async function loadShares() {
    const list = document.getElementById("shares");
    if (!list) return;
    const shares = await request("GET", "shares", { query: new URLSearchParams() });
    list.replaceChildren(...shares.map((share) => {
      const li = document.createElement("li");
      const link = document.createElement("a");
      link.href = share.url;
      link.textContent = share.label || share.url;
      const revoke = document.createElement("button");
      revoke.type = "button";
      revoke.className = "button button--small";
      revoke.textContent = "Revoke";
      revoke.addEventListener("click", async () => { await request("DELETE", `shares/${share.id}`); loadShares(); });
      li.append(link, ` ${share.password_protected ? "(password)" : "(public)"} `, revoke);
      return li;
    }));
  }

  function exportLinks() {
    const query = params();
    document.getElementById("export-all").href = `${api}/export/all.zip?${query}`;
    for (const link of root.querySelectorAll("[data-export]")) link.href = `${api}/export/${link.dataset.export}.csv?${query}`;
  }

  async function load() {
    document.getElementById("custom-range").hidden = period.value !== "custom";
    if (period.value === "custom" && !(from.value && to.value)) return;
    remember();
    drawChips();
    exportLinks();
    error.hidden = true;
    const work = [loadTop().catch((exc) => { error.textContent = `Could not load the statistics: ${exc.message}`; error.hidden = false; })];
    for (const table of root.querySelectorAll("[data-breakdown]")) work.push(guarded(table.closest("section"), () => loadBreakdown(table)));
    work.push(guarded(root.querySelector('[data-panel="goals"]'), loadGoals));
    work.push(guarded(root.querySelector('[data-panel="props"]'), loadProps));
    work.push(guarded(root.querySelector('[data-panel="funnels"]'), loadFunnels));
    const drops = root.querySelector("[data-drops]");
    if (drops) work.push(get("drops").then((found) => fill(drops, found.reasons, (r) => [r.reason, r.count.toLocaleString()])).catch(() => {}));
    await Promise.all(work);
    root.dataset.loaded = String(Number(root.dataset.loaded || 0) + 1);
  }

  // ---------------------------------------------------------------- live visitors
  function showLive(frame) {
    const counter = document.getElementById("live-visitors");
    counter.textContent = Number(frame.visitors).toLocaleString();
    counter.title = frame.top_pages.map((p) => `${p.path}: ${p.visitors}`).join("\n");
  }

  async function live() {
    try { showLive(await request("GET", "stats/live", { query: new URLSearchParams() })); } catch (_) { return; }
    if (shared) { setInterval(() => request("GET", "stats/live", { query: new URLSearchParams() }).then(showLive).catch(() => {}), 15000); return; }
    const { RealtimeClient } = await import("/static/js/realtime.js");
    const client = new RealtimeClient({
      getToken: async () => {
        const response = await fetch("/api/auth/session-token", { method: "POST", headers: { "X-CSRF-Token": csrf } });
        return response.ok ? (await response.json()).access_token : null;
      },
    });
    client.subscribe(`analytics.site.${root.dataset.site}.live`, ({ data }) => showLive(data));
    client.connect();
  }

  // ---------------------------------------------------------------- owners' forms
  document.getElementById("goal-form")?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const kind = document.getElementById("goal-kind").value;
    const target = document.getElementById("goal-target").value.trim();
    const currency = document.getElementById("goal-currency").value.trim();
    const body = kind === "event" ? { kind, event_name: target } : { kind, path: target };
    if (currency) body.currency = currency;
    const panel = event.target.closest("section");
    try { await request("POST", "goals", { body }); event.target.reset(); await guarded(panel, loadGoals); } catch (exc) { notice(panel, exc.message); }
  });

  document.getElementById("funnel-form")?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const panel = event.target.closest("section");
    const known = await request("GET", "goals", { query: new URLSearchParams() });
    const steps = document.getElementById("funnel-def").value.split("\n").map((line) => line.trim()).filter(Boolean).map((line) => {
      if (!line.startsWith("goal:")) return { path: line };
      const goal = known.find((g) => g.name === line.slice(5).trim());
      return goal ? { goal_id: goal.id } : { path: line };
    });
    const body = { name: document.getElementById("funnel-name").value, steps, scope: document.getElementById("funnel-day").checked ? "day" : "visit" };
    try {
      const created = await request("POST", "funnels", { body });
      event.target.reset();
      await loadFunnels();
      document.getElementById("funnel").value = created.id;
      await guarded(panel, loadFunnels);
    } catch (exc) { notice(panel, exc.message); }
  });

  document.getElementById("share-form")?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const password = document.getElementById("share-password").value;
    const body = { label: document.getElementById("share-label").value };
    if (password) body.password = password;
    try { await request("POST", "shares", { body }); event.target.reset(); await loadShares(); } catch (exc) { error.textContent = exc.message; error.hidden = false; }
  });

  period.addEventListener("change", load);
  from.addEventListener("change", load);
  to.addEventListener("change", load);
  document.getElementById("prop-key").addEventListener("change", (event) => guarded(event.target.closest("section"), loadProps));
  document.getElementById("funnel").addEventListener("change", (event) => guarded(event.target.closest("section"), loadFunnels));
  load();
  live();
  if (manage) loadShares().catch(() => {});
})();
