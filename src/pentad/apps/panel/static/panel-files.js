// The file manager and backups pages of a game server. Both talk to /api/panel/servers/{id}/… with the
// session cookie and the CSRF header, so the API's rules and refusals hold here too; buttons are shown only
// for the keys the page says you hold (data-keys). The node's agent does the file work.
const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

async function call(url, { method = "GET", json, body, raw = false } = {}) {
  const headers = { Accept: "application/json" };
  if (json !== undefined) headers["Content-Type"] = "application/json";
  if (body !== undefined) headers["Content-Type"] = "application/octet-stream";
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  const response = await fetch(url, {
    method, credentials: "same-origin", headers,
    body: json !== undefined ? JSON.stringify(json) : body,
  });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(detail);
  }
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "onclick") node.addEventListener("click", value);
    else if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function size(bytes) {
  if (bytes == null) return "—";
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

function when(iso) {
  return iso ? new Date(iso).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "—";
}

function join(folder, name) {
  return folder ? `${folder}/${name}` : name;
}

// ---------------------------------------------------------------- files
function filesPage(root) {
  const api = `/api/panel/servers/${root.dataset.server}/files`;
  const keys = new Set(root.dataset.keys.split(" "));
  const rows = document.getElementById("files-rows");
  const message = document.getElementById("files-message");
  const pathLabel = document.getElementById("files-path");
  let folder = new URLSearchParams(location.search).get("path") || "";
  let editing = null;
  let renaming = null;

  const say = (text) => { message.textContent = text; };
  const act = (work) => async (event) => {
    event?.preventDefault();
    try { say(await work() || ""); await load(); } catch (error) { say(error.message); }
  };

  async function load() {
    const listing = await call(`${api}?path=${encodeURIComponent(folder)}`);
    pathLabel.textContent = `/${listing.path}`;
    root.dataset.path = listing.path;
    rows.replaceChildren(...listing.entries.map(row));
    root.dataset.loaded = String(Number(root.dataset.loaded || 0) + 1);
  }

  function open(path) {
    folder = path;
    history.replaceState(null, "", path ? `?path=${encodeURIComponent(path)}` : location.pathname);
    load().catch((error) => say(error.message));
  }

  function row(entry) {
    const name = entry.kind === "folder"
      ? element("a", { href: `?path=${encodeURIComponent(entry.path)}`, onclick: (event) => { event.preventDefault(); open(entry.path); } }, `${entry.name}/`)
      : entry.kind === "file" && keys.has("file.read-content")
        ? element("a", { href: "#editor", onclick: (event) => { event.preventDefault(); edit(entry.path); } }, entry.name)
        : element("span", {}, entry.kind === "symlink" ? `${entry.name} (symlink)` : entry.name);
    const actions = element("div", { class: "panel-row-actions" });
    if (entry.kind === "file" && keys.has("file.read-content")) {
      actions.append(element("a", { class: "button button--quiet", href: `${api}/download?path=${encodeURIComponent(entry.path)}`, download: entry.name }, "Download"));
    }
    if (keys.has("file.update")) {
      actions.append(element("button", { type: "button", class: "button button--quiet", "aria-label": `Rename ${entry.name}`, onclick: () => rename(entry) }, "Rename"));
    }
    if (entry.kind === "file" && keys.has("file.archive") && /\.(zip|tar|tar\.gz|tgz)$/.test(entry.name)) {
      actions.append(element("button", {
        type: "button", class: "button button--quiet", "aria-label": `Extract ${entry.name}`,
        onclick: act(async () => { const made = await call(`${api}/extract`, { method: "POST", json: { path: entry.path, folder } }); return `Extracted ${entry.name} into /${made.path}`; }),
      }, "Extract"));
    }
    return element("tr", { "data-path": entry.path, "data-kind": entry.kind },
      element("td", {}, element("input", { type: "checkbox", "aria-label": `Select ${entry.name}`, value: entry.path })),
      element("td", {}, name),
      element("td", {}, entry.kind === "folder" ? "" : size(entry.size)),
      element("td", {}, when(entry.modified_at)),
      element("td", {}, actions));
  }

  function selected() {
    return [...rows.querySelectorAll("input[type=checkbox]:checked")].map((box) => box.value);
  }

  async function edit(path) {
    try {
      const response = await call(`${api}/content?path=${encodeURIComponent(path)}`, { raw: true });
      editing = path;
      document.getElementById("editor-path").textContent = `/${path}`;
      document.getElementById("editor-content").value = await response.text();
      document.getElementById("editor").hidden = false;
      say("");
    } catch (error) { say(error.message); }
  }

  function rename(entry) {
    renaming = entry.path;
    document.getElementById("rename-from").textContent = `/${entry.path}`;
    const input = document.getElementById("rename-to");
    input.value = entry.path;
    document.getElementById("rename-form").hidden = false;
    input.focus();
  }

  document.getElementById("files-up").addEventListener("click", () => open(folder.split("/").slice(0, -1).join("/")));
  document.getElementById("folder-form")?.addEventListener("submit", act(async () => {
    const input = document.getElementById("folder-name");
    await call(`${api}/folder`, { method: "POST", json: { path: join(folder, input.value.trim()) } });
    input.value = "";
    return "Folder made";
  }));
  document.getElementById("upload")?.addEventListener("change", act(async () => {
    const input = document.getElementById("upload");
    const file = input.files[0];
    if (!file) return "";
    say(`Uploading ${file.name}…`);
    const made = await call(`${api}/upload?path=${encodeURIComponent(join(folder, file.name))}`, { method: "POST", body: file });
    input.value = "";
    return `Uploaded ${file.name} (${size(made.size)})`;
  }));
  document.getElementById("archive-selected")?.addEventListener("click", act(async () => {
    const names = selected().map((path) => path.split("/").pop());
    if (!names.length) return "Select the files to archive first";
    const made = await call(`${api}/archive`, { method: "POST", json: { folder, names, format: "tar.gz" } });
    return `Archived ${made.files} files into /${made.path}`;
  }));
  document.getElementById("delete-selected")?.addEventListener("click", act(async () => {
    const paths = selected();
    if (!paths.length) return "Select what to delete first";
    await call(`${api}/delete`, { method: "POST", json: { paths } });
    return `Deleted ${paths.length}`;
  }));
  document.getElementById("rename-form")?.addEventListener("submit", act(async () => {
    const target = document.getElementById("rename-to").value.trim().replace(/^\/+/, "");
    await call(`${api}/rename`, { method: "POST", json: { from: renaming, to: target } });
    document.getElementById("rename-form").hidden = true;
    return `Renamed to /${target}`;
  }));
  document.getElementById("rename-cancel")?.addEventListener("click", () => { document.getElementById("rename-form").hidden = true; });
  document.getElementById("editor-save")?.addEventListener("click", act(async () => {
    await call(`${api}/content?path=${encodeURIComponent(editing)}`, { method: "PUT", body: document.getElementById("editor-content").value });
    return `Saved /${editing}`;
  }));
  document.getElementById("editor-close")?.addEventListener("click", () => { document.getElementById("editor").hidden = true; });
  load().catch((error) => say(error.message));
}

// ---------------------------------------------------------------- backups
function backupsPage(root) {
  const api = `/api/panel/servers/${root.dataset.server}/backups`;
  const keys = new Set(root.dataset.keys.split(" "));
  const rows = document.getElementById("backup-rows");
  const message = document.getElementById("backups-message");
  let timer = null;

  const say = (text) => { message.textContent = text; };
  const act = (work) => async (event) => {
    event?.preventDefault();
    try { say(await work() || ""); await load(); } catch (error) { say(error.message); }
  };

  async function load() {
    const backups = await call(api);
    rows.replaceChildren(...backups.map(row));
    root.dataset.loaded = String(Number(root.dataset.loaded || 0) + 1);
    clearTimeout(timer);
    // a backup being made or restored changes by itself: look again until none is
    const busy = backups.some((backup) => backup.status === "pending" || backup.status === "running");
    if (busy) timer = setTimeout(() => load().catch((error) => say(error.message)), 1000);
  }

  function row(backup) {
    const actions = element("div", { class: "panel-row-actions" });
    const ok = backup.status === "ok";
    if (ok && keys.has("backup.download")) {
      actions.append(element("button", {
        type: "button", class: "button button--quiet", "aria-label": `Download ${backup.name}`,
        onclick: act(async () => { const link = await call(`${api}/${backup.id}/download`); location.assign(link.url); return "Download started"; }),
      }, "Download"));
    }
    if (ok && keys.has("backup.restore")) {
      actions.append(element("button", {
        type: "button", class: "button", "aria-label": `Restore ${backup.name}`,
        onclick: act(async () => { await call(`${api}/${backup.id}/restore`, { method: "POST" }); return `Restoring ${backup.name}…`; }),
      }, "Restore"));
    }
    if (keys.has("backup.delete") && !backup.locked) {
      actions.append(element("button", {
        type: "button", class: "button button--quiet", "aria-label": `Delete ${backup.name}`,
        onclick: act(async () => { await call(`${api}/${backup.id}`, { method: "DELETE" }); return `Deleted ${backup.name}`; }),
      }, "Delete"));
    }
    const status = element("span", { class: `panel-run panel-run--${ok ? "ok" : backup.status === "failed" ? "failed" : "running"}` }, backup.status);
    return element("tr", { "data-backup": backup.id, "data-status": backup.status },
      element("td", {}, backup.name, backup.locked ? element("span", { class: "muted" }, " (locked)") : ""),
      element("td", {}, status, backup.error ? element("span", { class: "muted" }, ` ${backup.error}`) : ""),
      element("td", {}, size(backup.size)),
      element("td", {}, when(backup.created_at)),
      element("td", {}, when(backup.verified_at)),
      element("td", {}, actions));
  }

  document.getElementById("backup-form")?.addEventListener("submit", act(async () => {
    const name = document.getElementById("backup-name").value.trim();
    const ignore = document.getElementById("backup-ignore").value.split("\n").map((line) => line.trim()).filter(Boolean);
    const made = await call(api, { method: "POST", json: { name, ignore } });
    document.getElementById("backup-name").value = "";
    return `Making ${made.name}…`;
  }));
  load().catch((error) => say(error.message));
}

const files = document.getElementById("panel-files");
if (files) filesPage(files);
const backups = document.getElementById("panel-backups");
if (backups) backupsPage(backups);
