// The streams player (/streams/watch/{camera_id}): plays a camera's live HLS with hls.js (vendored from
// npm, served as /streams/vendor/hls.min.mjs), or natively where the browser plays HLS itself (Safari).
//
// A private camera's page carries a playback token (data-token) that is already in the playlist URL;
// the server adds it to every URI of the playlists it serves, so segments carry it too. Before the token
// expires the player asks for a new one (cookie session + CSRF header) and swaps it into every later
// request, so a long watch never stops. An offline camera is retried until it goes live.
import Hls from "/streams/vendor/hls.min.mjs";

const video = document.getElementById("player");
const status = document.getElementById("player-status");
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
let token = video.dataset.token || null;
const RETRY_MS = 3000;

function say(text) {
  if (status) status.textContent = text;
}

function withToken(url) {
  if (!token) return url;
  const parsed = new URL(url, window.location.href);
  if (!parsed.searchParams.has("token")) return url;
  parsed.searchParams.set("token", token);
  return parsed.toString();
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
  // Renew at two thirds of the lifetime; on failure try again soon (the old token may still be good).
  const delay = Math.max(5000, (lifetimeMs * 2) / 3);
  window.setTimeout(async () => {
    try {
      scheduleRenewal(await renewToken());
    } catch (error) {
      console.warn(error);
      scheduleRenewal(15000);
    }
  }, delay);
}

function playNatively() {
  video.src = withToken(video.dataset.src);
  video.addEventListener("playing", () => say("Live"));
  video.addEventListener("error", () => {
    say("Offline: waiting for the camera…");
    window.setTimeout(() => {
      video.src = withToken(video.dataset.src);
    }, RETRY_MS);
  });
}

function playWithHlsJs() {
  const hls = new Hls({
    liveSyncDurationCount: 2,
    lowLatencyMode: true,
    enableWorker: false,
    // Every URL hls.js asks for gets the current token (the playlists carry the one they were fetched with).
    xhrSetup(xhr, url) {
      xhr.open("GET", withToken(url), true);
    },
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    say("Live");
    video.play().catch(() => say("Live: press play"));
  });
  hls.on(Hls.Events.ERROR, (_event, data) => {
    if (!data.fatal) return;
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      hls.recoverMediaError();
      return;
    }
    say("Offline: waiting for the camera…");
    window.setTimeout(() => hls.loadSource(withToken(video.dataset.src)), RETRY_MS);
  });
  hls.attachMedia(video);
  hls.loadSource(withToken(video.dataset.src));
  window.pentadPlayer = hls;
}

if (token && video.dataset.tokenUrl) {
  scheduleRenewal(Number(video.dataset.tokenTtl || "300") * 1000);
}
if (Hls.isSupported()) {
  playWithHlsJs();
} else if (video.canPlayType("application/vnd.apple.mpegurl")) {
  playNatively();
} else {
  say("This browser cannot play HLS.");
}
