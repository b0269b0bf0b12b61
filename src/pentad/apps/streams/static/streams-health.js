// The health view (/streams/cameras/{camera_id}/health): a camera's live figures, first from
// GET /api/streams/cameras/{id}/health, then from its hub topic (camera.health every 2 s while a figure
// changes, camera.viewers, camera.online / camera.offline), with bitrate and frame rate charted by uPlot
// (a global from /static/vendor/uplot/uPlot.iife.min.js).
import { RealtimeClient } from "/static/js/realtime.js";

const root = document.getElementById("health");
const state = document.getElementById("health-state");
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
const POINTS = 150; // five minutes at one figure every 2 s
const times = [];
const bitrates = [];
const rates = [];
let chart = null;

function figure(name, text) {
  const cell = root.querySelector(`[data-figure="${name}"]`);
  if (cell) cell.textContent = text;
}

function setState(value, text) {
  state.dataset.state = value;
  state.textContent = text;
}

function showViewers(hls, webrtc) {
  figure("hls", String(hls));
  figure("webrtc", String(webrtc));
}

function draw() {
  if (typeof uPlot === "undefined") return;
  const target = document.getElementById("health-chart");
  const data = [times, bitrates, rates];
  if (chart) {
    chart.setData(data);
    return;
  }
  chart = new uPlot(
    {
      width: Math.max(280, target.clientWidth || root.clientWidth || 600),
      height: 220,
      scales: { x: { time: true }, kbps: {}, fps: {} },
      series: [
        {},
        { label: "Bitrate (kbit/s)", stroke: "#2563eb", width: 2, scale: "kbps" },
        { label: "Frame rate (fps)", stroke: "#16a34a", width: 2, scale: "fps" },
      ],
      axes: [{}, { scale: "kbps", size: 60 }, { scale: "fps", side: 1, grid: { show: false } }],
    },
    data,
    target,
  );
}

function showHealth(health) {
  figure("bitrate", `${health.bitrate_kbps} kbit/s`);
  figure("fps", `${health.fps} fps`);
  figure("keyframe", health.keyframe_interval_s == null ? "–" : `${health.keyframe_interval_s} s`);
  figure("dropped", `${health.dropped_frames}${health.consumer_drops ? ` (${health.consumer_drops} slow consumers cut off)` : ""}`);
  figure("warnings", health.warnings.length ? health.warnings.join(", ") : "none");
  showViewers(health.viewers.hls ?? 0, health.viewers.webrtc ?? 0);
  setState(health.warnings.length ? "warning" : "live", health.warnings.length ? `Live, with warnings: ${health.warnings.join(", ")}` : "Live");
  times.push(Date.now() / 1000);
  bitrates.push(health.bitrate_kbps);
  rates.push(health.fps);
  if (times.length > POINTS) {
    times.shift();
    bitrates.shift();
    rates.shift();
  }
  root.dataset.points = String(times.length);
  draw();
}

async function load() {
  const response = await fetch(root.dataset.url, { credentials: "same-origin" });
  if (!response.ok) {
    setState("error", `Cannot read the figures (HTTP ${response.status}).`);
    return;
  }
  const body = await response.json();
  if (body.health) showHealth(body.health);
  else setState(body.live ? "waiting" : "offline", body.live ? "Live: first figures in a moment…" : "Offline");
}

async function getToken() {
  const response = await fetch("/api/auth/session-token", { method: "POST", headers: { "X-CSRF-Token": csrf } });
  return response.ok ? (await response.json()).access_token : null;
}

if (root && state) {
  const client = new RealtimeClient({ getToken });
  client.subscribe(root.dataset.topic, ({ data }) => {
    if (data.type === "camera.health") showHealth(data);
    else if (data.type === "camera.viewers") showViewers(data.hls, data.webrtc);
    else if (data.type === "camera.online") setState("waiting", "Live: first figures in a moment…");
    else if (data.type === "camera.offline") setState("offline", `Offline (${data.reason ?? "ended"})`);
  });
  client.connect();
  load().catch((error) => setState("error", String(error)));
}
