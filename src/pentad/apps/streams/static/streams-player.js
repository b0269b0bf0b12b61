// The streams player (/streams/watch/{camera_id}): plays a camera's live HLS with hls.js (vendored from
// npm, served as /streams/vendor/hls.min.mjs), or natively where the browser plays HLS itself (Safari).
//
// A private camera's page carries a playback token (data-token) that is already in the playlist URL;
// the server adds it to every URI of the playlists it serves, so segments carry it too. Before the token
// expires the player asks for a new one (cookie session + CSRF header) and swaps it into every later
// request, so a long watch never stops. An offline camera is retried until it goes live.
//
// WebRTC first: the player asks the camera's WHEP endpoint (data-whep) for the stream (an SDP offer with
// every candidate, no trickle; the token as a Bearer header) and plays it with well under a second of
// delay. When that fails (refused, no H.264, ICE failure, no picture within WEBRTC_TIMEOUT_MS) or breaks
// later, it falls back to HLS by itself. `?protocol=hls` or `?protocol=webrtc` on the page's URL picks one.
import Hls from "/streams/vendor/hls.min.mjs";

const video = document.getElementById("player");
const status = document.getElementById("player-status");
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
let token = video.dataset.token || null;
const RETRY_MS = 3000;
const WEBRTC_TIMEOUT_MS = 6000;
const ICE_GATHERING_MS = 2000;
const wanted = new URLSearchParams(window.location.search).get("protocol");

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
    // A ladder camera's index.m3u8 is a master playlist: hls.js picks the rendition by bandwidth, never
    // one taller than the player shows.
    capLevelToPlayerSize: true,
    // Every URL hls.js asks for gets the current token (the playlists carry the one they were fetched with).
    xhrSetup(xhr, url) {
      xhr.open("GET", withToken(url), true);
    },
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    say("Live");
    video.play().catch(() => say("Live: press play"));
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_event, data) => {
    const level = hls.levels[data.level];
    if (hls.levels.length > 1 && level && level.height) video.dataset.rendition = `${level.height}p`;
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

function playHls() {
  video.dataset.protocol = "hls";
  if (Hls.isSupported()) {
    playWithHlsJs();
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    playNatively();
  } else {
    say("This browser cannot play HLS.");
  }
}

function gathered(pc) {
  // The offer goes with every candidate (WHEP without trickle): wait for gathering, at most a moment.
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") resolve();
    };
    pc.addEventListener("icegatheringstatechange", done);
    window.setTimeout(resolve, ICE_GATHERING_MS);
  });
}

async function playWebRtc() {
  // Resolves once the video plays over WebRTC; rejects (having cleaned up) when it cannot.
  const pc = new RTCPeerConnection();
  let session = null;
  const stop = () => {
    pc.close();
    if (session) fetch(session, { method: "DELETE", keepalive: true }).catch(() => {});
    session = null;
  };
  try {
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    const stream = new MediaStream();
    pc.addEventListener("track", (event) => stream.addTrack(event.track));
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const headers = { "Content-Type": "application/sdp" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(video.dataset.whep, {
      method: "POST",
      headers,
      body: pc.localDescription.sdp,
      credentials: "omit",
    });
    if (response.status !== 201) throw new Error(`WHEP: HTTP ${response.status}`);
    session = new URL(response.headers.get("Location"), new URL(video.dataset.whep, window.location.href)).toString();
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
    video.srcObject = stream;
    await new Promise((resolve, reject) => {
      const timer = window.setTimeout(() => reject(new Error("WebRTC: no picture in time")), WEBRTC_TIMEOUT_MS);
      video.addEventListener(
        "playing",
        () => {
          window.clearTimeout(timer);
          resolve();
        },
        { once: true },
      );
      pc.addEventListener("connectionstatechange", () => {
        if (pc.connectionState === "failed" || pc.connectionState === "closed") {
          window.clearTimeout(timer);
          reject(new Error(`WebRTC: ${pc.connectionState}`));
        }
      });
      video.play().catch(() => {});
    });
  } catch (error) {
    stop();
    video.srcObject = null;
    throw error;
  }
  video.dataset.protocol = "webrtc";
  say("Live · WebRTC");
  window.pentadPeer = pc;
  window.addEventListener("pagehide", stop);
  // A connection that breaks later (the stream ended, the network went): carry on with HLS.
  let fellBack = false;
  const fallBack = () => {
    if (fellBack || pc.connectionState === "connected") return;
    fellBack = true;
    stop();
    video.srcObject = null;
    say("WebRTC lost: switching to HLS…");
    playHls();
  };
  pc.addEventListener("connectionstatechange", () => {
    if (pc.connectionState === "failed") fallBack();
    // "disconnected" may pass by itself; give it a moment.
    if (pc.connectionState === "disconnected") window.setTimeout(fallBack, RETRY_MS);
  });
}

if (token && video.dataset.tokenUrl) {
  scheduleRenewal(Number(video.dataset.tokenTtl || "300") * 1000);
}
if (wanted !== "hls" && video.dataset.whep && window.RTCPeerConnection) {
  playWebRtc().catch((error) => {
    console.info(`${error.message}; playing HLS instead`);
    if (wanted === "webrtc") {
      say("WebRTC is not available for this camera now.");
      return;
    }
    playHls();
  });
} else {
  playHls();
}
