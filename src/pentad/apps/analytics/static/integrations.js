// The dashboard's integrations section: e-mail reports, Stats API keys, GA4 forwarding and imports, through
// the JSON API with the page's session (the CSRF token from the page's meta tag on every change).
const root = document.getElementById("integrations");
const site = root?.dataset.site;
const manage = root?.dataset.manage === "true";
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
const error = document.getElementById("integrations-error");

async function api(method, path, body, contentType = "application/json") {
  const headers = { Accept: "application/json", "X-CSRF-Token": csrf };
  if (body !== undefined) headers["Content-Type"] = contentType;
  const response = await fetch(path, {
    method, credentials: "same-origin", headers,
    body: body === undefined || contentType !== "application/json" ? body : JSON.stringify(body),
  });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (_) { /* not JSON */ }
    throw new Error(detail);
  }
  error.hidden = true;
  return response.status === 204 ? null : response.json();
}

function shown(action) {
  return (...args) => action(...args).catch((failure) => { error.textContent = failure.message; error.hidden = false; });
}

function item(list, text, label, onClick) {
  const li = document.createElement("li");
  li.textContent = text + " ";
  if (label) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "button";
    button.textContent = label;
    button.addEventListener("click", shown(onClick));
    li.append(button);
  }
  list.append(li);
}

const reportsPath = `/api/analytics/sites/${site}/reports`;
async function loadReports() {
  const list = document.getElementById("reports-list");
  list.replaceChildren();
  for (const entry of await api("GET", reportsPath)) {
    const state = entry.confirmed ? "" : " (waiting for confirmation)";
    item(list, `${entry.period} to ${entry.recipient}${state}`, "Stop", async () => {
      await api("DELETE", `${reportsPath}/${entry.id}`);
      await loadReports();
    });
  }
}

async function loadKeys() {
  const list = document.getElementById("keys-list");
  list.replaceChildren();
  for (const key of await api("GET", "/api/analytics/keys")) {
    if (key.revoked_at || !key.site_ids.includes(site)) continue;
    const used = key.last_used_at ? `last used ${key.last_used_at.slice(0, 16).replace("T", " ")}` : "never used";
    item(list, `${key.name} (${key.hint}, ${used})`, "Revoke", async () => {
      await api("DELETE", `/api/analytics/keys/${key.id}`);
      await loadKeys();
    });
  }
}

const ga4Path = `/api/analytics/sites/${site}/ga4`;
async function loadGa4() {
  const status = document.getElementById("ga4-status");
  try {
    const link = await api("GET", ga4Path);
    status.textContent = `${link.enabled ? "Forwarding" : "Paused"} to ${link.measurement_id}: ${link.forwarded} events sent, `
      + `${link.dropped} dropped${link.last_error ? ` (last error: ${link.last_error})` : ""}.`;
  } catch (_) {
    status.textContent = "Not forwarding to GA4.";
  }
}

const importsPath = `/api/analytics/sites/${site}/imports`;
async function loadImports() {
  const list = document.getElementById("imports-list");
  list.replaceChildren();
  let running = false;
  for (const entry of await api("GET", importsPath)) {
    running ||= entry.status === "queued" || entry.status === "running";
    item(list, `${entry.filename}: ${entry.status}, ${entry.days} days imported, ${entry.skipped_days} skipped`
      + (entry.error ? ` (${entry.error})` : ""));
  }
  if (running) setTimeout(shown(loadImports), 2000);
}

if (root) {
  document.getElementById("report-form").addEventListener("submit", shown(async (event) => {
    event.preventDefault();
    const email = document.getElementById("report-email")?.value.trim();
    await api("POST", reportsPath, { period: document.getElementById("report-period").value, ...(email ? { email } : {}) });
    event.target.reset();
    await loadReports();
  }));
  document.getElementById("key-form").addEventListener("submit", shown(async (event) => {
    event.preventDefault();
    const created = await api("POST", "/api/analytics/keys", { name: document.getElementById("key-name").value, site_ids: [site] });
    document.getElementById("key-value").textContent = created.key;
    document.getElementById("key-shown").hidden = false;
    event.target.reset();
    await loadKeys();
  }));
  shown(loadReports)();
  shown(loadKeys)();
  if (manage) {
    document.getElementById("ga4-form").addEventListener("submit", shown(async (event) => {
      event.preventDefault();
      await api("PUT", ga4Path, {
        measurement_id: document.getElementById("ga4-measurement").value.trim(),
        api_secret: document.getElementById("ga4-secret").value.trim(),
      });
      event.target.reset();
      await loadGa4();
    }));
    document.getElementById("ga4-check").addEventListener("click", shown(async () => {
      const checked = await api("POST", `${ga4Path}/check`);
      const messages = checked.validation_messages.map((m) => m.description).join(" ");
      document.getElementById("ga4-status").textContent = checked.valid ? "GA4 accepts the test event." : `GA4: ${messages}`;
    }));
    document.getElementById("ga4-remove").addEventListener("click", shown(async () => {
      await api("DELETE", ga4Path);
      await loadGa4();
    }));
    document.getElementById("import-form").addEventListener("submit", shown(async (event) => {
      event.preventDefault();
      const file = document.getElementById("import-file").files[0];
      await api("POST", `${importsPath}?filename=${encodeURIComponent(file.name)}`, await file.arrayBuffer(), "text/csv");
      event.target.reset();
      await loadImports();
    }));
    shown(loadGa4)();
    shown(loadImports)();
  }
}
