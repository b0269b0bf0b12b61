// A game server's page: the live console (xterm.js) with the node's history, fed by the hub's console topic
// and re-read on reconnect when the hub cannot resume; a command line; power buttons; CPU and memory charts
// (uPlot) and figures from the state topic. Talks to /api/panel with the session cookie and CSRF header.
import { RealtimeClient } from "/static/js/realtime.js";

const root = document.getElementById("panel-server");
const serverId = root.dataset.server;
const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
const api = `/api/panel/servers/${serverId}`;
const stateLabel = document.getElementById("server-state");
const linkLabel = document.getElementById("link-state");
const powerMessage = document.getElementById("power-message");
const HISTORY_LINES = 500;
const CHART_POINTS = 120;

async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  const response = await fetch(`${api}${path}`, {
    method, credentials: "same-origin", headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (_) { /* not JSON */ }
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return response.status === 204 ? null : response.json();
}

function showState(state) {
  stateLabel.textContent = state;
  stateLabel.className = `panel-state panel-state--${state}`;
}

// ---------------------------------------------------------------- console
let terminal = null;
let fit = null;
if (root.dataset.console) {
  terminal = new window.Terminal({ convertEol: true, disableStdin: true, scrollback: 5000, fontSize: 13, rows: 24 });
  fit = new window.FitAddon.FitAddon();
  terminal.loadAddon(fit);
  terminal.open(document.getElementById("console"));
  fit.fit();
  window.addEventListener("resize", () => fit.fit());
}

async function loadHistory() {
  // What the node's ring keeps (the game's output while nobody watched, or while the link was down).
  if (!terminal) return;
  try {
    const history = await request("GET", `/console?lines=${HISTORY_LINES}`);
    terminal.reset();
    for (const line of history.lines) terminal.writeln(line);
    root.dataset.history = String(history.lines.length);
  } catch (error) {
    if (error.status !== 409) terminal.writeln(`\x1b[33m[panel] history unavailable: ${error.message}\x1b[0m`);
    root.dataset.history = "0";
  }
}

const commandForm = document.getElementById("command-form");
commandForm?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("command");
  const command = input.value;
  if (!command.trim()) return;
  try {
    await request("POST", "/command", { command });
    input.value = "";
  } catch (error) {
    terminal?.writeln(`\x1b[31m[panel] ${error.message}\x1b[0m`);
  }
});

// ---------------------------------------------------------------- power
for (const button of document.querySelectorAll("[data-power]")) {
  button.addEventListener("click", async () => {
    const action = button.dataset.power;
    powerMessage.textContent = `${action}…`;
    try {
      const result = await request("POST", "/power", { action });
      if (result?.state) showState(result.state);
      powerMessage.textContent = `${action}: sent`;
    } catch (error) {
      powerMessage.textContent = error.message;
    }
  });
}

// ---------------------------------------------------------------- stats
const charts = {};
const STROKES = ["#2a7ae2", "#e2832a"];
function chart(id, label, unit, names = [label]) {
  const element = document.getElementById(id);
  if (!element || !window.uPlot) return null;
  const data = [[], ...names.map(() => [])];
  const series = names.map((name, index) => ({
    label: `${name} (${unit})`, stroke: STROKES[index % STROKES.length], width: 2,
    fill: index ? undefined : "rgba(42,122,226,0.1)",
  }));
  const plot = new window.uPlot(
    { width: Math.max(280, element.clientWidth || 400), height: 160, title: label,
      scales: { x: { time: true } }, series: [{}, ...series] },
    data, element);
  return { element, plot, data };
}
if (root.dataset.live) {
  charts.cpu = chart("cpu-chart", "CPU", "%");
  charts.memory = chart("memory-chart", "Memory", "MiB");
  charts.net = chart("net-chart", "Network", "KiB/s", ["in", "out"]);
}

function push(entry, time, ...values) {
  if (!entry) return;
  entry.data[0].push(time);
  values.forEach((value, index) => entry.data[index + 1].push(value));
  if (entry.data[0].length > CHART_POINTS) for (const column of entry.data) column.shift();
  entry.plot.setData(entry.data);
  entry.element.dataset.points = String(entry.data[0].length);
}

// Rates from two samples of the agent's counters (which only grow; a drop means new counters: restart).
let lastNet = null;
function netRates(stats, time) {
  if (stats.net_rx_bytes == null) { lastNet = null; return null; }
  const previous = lastNet;
  lastNet = { time, rx: stats.net_rx_bytes, tx: stats.net_tx_bytes };
  if (!previous || time <= previous.time || lastNet.rx < previous.rx || lastNet.tx < previous.tx) return null;
  const seconds = time - previous.time;
  return { rx: (lastNet.rx - previous.rx) / seconds / 1024, tx: (lastNet.tx - previous.tx) / seconds / 1024 };
}

const mib = (bytes) => bytes / 1048576;
function duration(seconds) {
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600); const m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${m} min` : m ? `${m} min ${s % 60} s` : `${s} s`;
}

function showStats(stats, time) {
  document.getElementById("stat-cpu").textContent = `${stats.cpu_percent.toFixed(1)} %`;
  document.getElementById("stat-memory").textContent =
    `${mib(stats.memory_bytes).toFixed(1)} MiB` + (stats.memory_limit_bytes ? ` of ${mib(stats.memory_limit_bytes).toFixed(0)} MiB` : "");
  document.getElementById("stat-disk").textContent = `${mib(stats.disk_bytes).toFixed(1)} MiB`;
  document.getElementById("stat-net").textContent = stats.net_rx_bytes == null
    ? (stats.net_unavailable || "—")
    : `${mib(stats.net_rx_bytes).toFixed(2)} / ${mib(stats.net_tx_bytes).toFixed(2)} MiB` +
      ` (${stats.net_rx_packets ?? 0} / ${stats.net_tx_packets ?? 0} packets)`;
  const rates = netRates(stats, time);
  if (rates) {
    document.getElementById("stat-net-rate").textContent = `${rates.rx.toFixed(1)} / ${rates.tx.toFixed(1)} KiB/s`;
    push(charts.net, time, rates.rx, rates.tx);
  }
  document.getElementById("stat-uptime").textContent = duration(stats.uptime_s);
  document.getElementById("stat-players").textContent =
    stats.players == null ? "—" : `${stats.players}${stats.max_players == null ? "" : ` / ${stats.max_players}`}`;
  push(charts.cpu, time, stats.cpu_percent);
  push(charts.memory, time, mib(stats.memory_bytes));
}

// ---------------------------------------------------------------- the hub
if (root.dataset.live) {
  const client = new RealtimeClient({
    getToken: async () => {
      const response = await fetch("/api/auth/session-token", { method: "POST", headers: { "X-CSRF-Token": csrf } });
      return response.ok ? (await response.json()).access_token : null;
    },
    onStateChange: (state) => { linkLabel.textContent = state; root.dataset.link = state; },
  });
  client.subscribe(`panel.server.${serverId}.state`, ({ data, ts }) => {
    if (data.type === "stats") {
      showState(data.state);
      showStats(data, ts / 1000);
    } else if (data.type === "state") {
      showState(data.state);
      if (data.reason) terminal?.writeln(`\x1b[36m[panel] ${data.state}: ${data.reason}\x1b[0m`);
    }
  }, { onRecoveryFailed: () => request("GET", "").then((server) => showState(server.state)).catch(() => {}) });
  if (terminal) {
    client.subscribe(`panel.server.${serverId}.console`, ({ data }) => {
      if (data.dropped) terminal.writeln(`\x1b[33m[panel] ${data.dropped} lines dropped (output too fast)\x1b[0m`);
      for (const line of data.lines) terminal.writeln(line);
    }, {
      // The hub could not replay what was missed while disconnected: read the node's history again.
      onRecoveryFailed: () => loadHistory(),
      onError: (_, error) => terminal.writeln(`\x1b[31m[panel] console closed: ${error.message}\x1b[0m`),
    });
  }
  loadHistory().then(() => client.connect());
  request("GET", "/stats").then((found) => { if (found?.stats) showStats(found.stats, Date.now() / 1000); }).catch(() => {});
} else {
  loadHistory();
}
