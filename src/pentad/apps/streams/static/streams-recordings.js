// The recordings page (/streams/cameras/{camera_id}/recordings): plays a recorded span as a VOD HLS
// playlist (/streams/recordings/{camera_id}/vod.m3u8?start=&end=) with hls.js, and exports a range to an
// MP4 (POST /api/streams/cameras/{id}/exports, then its status until the file can be downloaded).
//
// A private camera's page carries a playback token: the playlist URL gets it, the server adds it to every
// segment URI, and the page renews it before it expires (cookie session + CSRF header), like the player.
import Hls from "/streams/vendor/hls.min.mjs";

const video = document.getElementById("recording-player");
const status = document.getElementById("recording-status");
const form = document.getElementById("export-form");
const exportStatus = document.getElementById("export-status");
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
let token = video.dataset.token || null;
let hls = null;

function say(element, text) {
  if (element) element.textContent = text;
}

async function renewToken() {
  const response = await fetch(video.dataset.tokenUrl, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRF-Token": csrf },
  });
  if (!response.ok) throw new Error(`playback token: HTTP ${response.status}`);
  const body = await response.json();
  token = body.token;
  return Date.parse(body.expires_at) - Date.now();
}

function scheduleRenewal(lifetimeMs) {
  window.setTimeout(async () => {
    try {
      scheduleRenewal(await renewToken());
    } catch (error) {
      console.warn(error);
      scheduleRenewal(15000);
    }
  }, Math.max(5000, (lifetimeMs * 2) / 3));
}

function withToken(url) {
  if (!token) return url;
  const parsed = new URL(url, window.location.href);
  parsed.searchParams.set("token", token);
  return parsed.toString();
}

function vodUrl(start, end) {
  const url = new URL(video.dataset.vod, window.location.href);
  url.searchParams.set("start", start);
  url.searchParams.set("end", end);
  return withToken(url.toString());
}

function play(start, end) {
  const source = vodUrl(start, end);
  say(status, `Playing ${start} – ${end}`);
  if (form) {
    form.elements.start.value = start;
    form.elements.end.value = end;
  }
  if (Hls.isSupported()) {
    if (hls) hls.destroy();
    hls = new Hls({
      enableWorker: false,
      xhrSetup(xhr, url) {
        xhr.open("GET", token ? withToken(url) : url, true);
      },
    });
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      video.play().catch(() => say(status, "Press play"));
    });
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (data.fatal) say(status, `Cannot play this range (${data.details}).`);
    });
    hls.attachMedia(video);
    hls.loadSource(source);
    window.pentadRecordingPlayer = hls;
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = source;
    video.play().catch(() => say(status, "Press play"));
  } else {
    say(status, "This browser cannot play HLS.");
  }
}

// The timeline's bars are placed here (the page's CSP allows no style attributes).
for (const bar of document.querySelectorAll(".streams-timeline__span")) {
  bar.style.left = `${bar.dataset.left}%`;
  bar.style.width = `${bar.dataset.width}%`;
}

for (const button of document.querySelectorAll("[data-start][data-end]")) {
  button.addEventListener("click", () => play(button.dataset.start, button.dataset.end));
}

async function followExport(id) {
  for (;;) {
    const response = await fetch(`/api/streams/exports/${id}`, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`export: HTTP ${response.status}`);
    const body = await response.json();
    if (body.status === "done") {
      exportStatus.textContent = "";
      const link = document.createElement("a");
      link.href = body.download_url;
      link.textContent = `Download the MP4 (${body.size_bytes} bytes)`;
      link.dataset.testid = "export-download";
      exportStatus.append(link);
      return;
    }
    if (body.status === "failed" || body.status === "expired") {
      say(exportStatus, `The export ${body.status}.`);
      return;
    }
    say(exportStatus, `Export ${body.status}…`);
    await new Promise((resolve) => window.setTimeout(resolve, 1000));
  }
}

if (form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const start = new Date(form.elements.start.value);
    let end = new Date(form.elements.end.value);
    const longest = Number(form.dataset.maxSeconds) * 1000;
    if (end - start > longest) end = new Date(start.getTime() + longest);
    say(exportStatus, "Export queued…");
    try {
      const response = await fetch(`/api/streams/cameras/${form.dataset.cameraId}/exports`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ start: start.toISOString(), end: end.toISOString() }),
      });
      const body = await response.json();
      if (!response.ok) {
        say(exportStatus, body.detail || `HTTP ${response.status}`);
        return;
      }
      await followExport(body.id);
    } catch (error) {
      say(exportStatus, String(error));
    }
  });
}

if (token && video.dataset.tokenUrl) {
  scheduleRenewal(Number(video.dataset.tokenTtl || "300") * 1000);
}
