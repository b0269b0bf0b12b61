// The browser SDK of Pentad streams (an ES module; types in streams-sdk.d.ts; docs/streams.md "Browser SDK").
//
//   import { StreamsClient, StreamsPlayer } from "https://video.example.com/static/streams/streams-sdk.js";
//   const streams = new StreamsClient({ baseUrl: "https://video.example.com", token });
//   const camera = await streams.getCamera(id);
//   const player = new StreamsPlayer(videoElement, { client: streams, cameraId: id });
//   await player.start();
//
// StreamsClient: the REST API (/api/streams) with a bearer token (or the page's cookie session plus its
// CSRF token), errors as StreamsApiError (the problem+json `status`, `code`, `detail`).
// StreamsPlayer: plays a camera in a <video>: WebRTC first (WHEP, no trickle, the playback token as a
// bearer token), HLS with hls.js when WebRTC is refused, fails or shows no picture in time (or breaks
// later), natively where the browser plays HLS itself. A private camera's playback token is renewed before
// it expires and swapped into every later request. hls.js is loaded from the SDK's own server
// (/streams/vendor/hls.min.mjs) the first time HLS is needed.
// <pentad-stream-player camera-id="…"> wraps the player as an element (defineStreamsPlayer()).
// Live events (watchCamera, watchDirectory) come over the hub (/static/js/realtime.js): one socket per
// client, resumed after a reconnection so that no event is missed or delivered twice.

import { RealtimeClient } from "../js/realtime.js";

const HLS_MODULE = "/streams/vendor/hls.min.mjs";

export class StreamsApiError extends Error {
  constructor(status, code, detail) {
    super(`${status} ${code}: ${detail}`);
    this.name = "StreamsApiError";
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

function pageCsrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.getAttribute("content") ?? null;
}

function sdkOrigin() {
  return new URL(".", import.meta.url).origin;
}

export class StreamsClient {
  constructor(options = {}) {
    this.baseUrl = (options.baseUrl ?? sdkOrigin()).replace(/\/+$/, "");
    this.token = options.token ?? null;
    this.tokenProvider = options.tokenProvider ?? null;
    const bearer = Boolean(this.token || this.tokenProvider);
    this.credentials = options.credentials ?? (bearer ? "omit" : "same-origin");
    // Without a token: the page's own cookie session, whose writes need the page's CSRF token.
    this.csrfToken =
      options.csrfToken ?? (bearer || typeof document === "undefined" ? null : pageCsrfToken());
  }

  async _headers(json) {
    const headers = {};
    if (json) headers["Content-Type"] = "application/json";
    if (!this.token && this.tokenProvider) this.token = await this.tokenProvider();
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (this.csrfToken) headers["X-CSRF-Token"] = this.csrfToken;
    return headers;
  }

  async request(method, path, body) {
    const send = async () =>
      fetch(this.baseUrl + path, {
        method,
        headers: await this._headers(body !== undefined),
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: this.credentials,
      });
    let response = await send();
    if (response.status === 401 && this.tokenProvider) {
      this.token = await this.tokenProvider();
      response = await send();
    }
    if (!response.ok) {
      let problem = {};
      try {
        problem = await response.json();
      } catch {
        problem = {};
      }
      throw new StreamsApiError(
        response.status,
        String(problem.code ?? "http_error"),
        String(problem.detail ?? response.statusText),
      );
    }
    return response.status === 204 ? null : response.json();
  }

  listCameras() {
    return this.request("GET", "/api/streams/cameras");
  }
  myCameras() {
    return this.request("GET", "/api/streams/me/cameras");
  }
  directory() {
    return this.request("GET", "/api/streams/directory");
  }
  getCamera(cameraId) {
    return this.request("GET", `/api/streams/cameras/${cameraId}`);
  }
  createCamera(data) {
    return this.request("POST", "/api/streams/cameras", data);
  }
  updateCamera(cameraId, data) {
    return this.request("PATCH", `/api/streams/cameras/${cameraId}`, data);
  }
  deleteCamera(cameraId) {
    return this.request("DELETE", `/api/streams/cameras/${cameraId}`);
  }
  createKey(cameraId, name = "") {
    return this.request("POST", `/api/streams/cameras/${cameraId}/keys`, { name });
  }
  listKeys(cameraId) {
    return this.request("GET", `/api/streams/cameras/${cameraId}/keys`);
  }
  rotateKey(cameraId, keyId) {
    return this.request("POST", `/api/streams/cameras/${cameraId}/keys/${keyId}/rotate`);
  }
  revokeKey(cameraId, keyId) {
    return this.request("DELETE", `/api/streams/cameras/${cameraId}/keys/${keyId}`);
  }
  listGrants(cameraId) {
    return this.request("GET", `/api/streams/cameras/${cameraId}/grants`);
  }
  grant(cameraId, email, role) {
    return this.request("POST", `/api/streams/cameras/${cameraId}/grants`, { email, role });
  }
  revokeGrant(cameraId, userId) {
    return this.request("DELETE", `/api/streams/cameras/${cameraId}/grants/${userId}`);
  }
  playbackToken(cameraId) {
    return this.request("POST", `/api/streams/cameras/${cameraId}/playback-token`);
  }
  startRecording(cameraId) {
    return this.request("PUT", `/api/streams/cameras/${cameraId}/recording`);
  }
  stopRecording(cameraId) {
    return this.request("DELETE", `/api/streams/cameras/${cameraId}/recording`);
  }
  timeline(cameraId, range = {}) {
    return this.request("GET", `/api/streams/cameras/${cameraId}/recordings${rangeQuery(range)}`);
  }
  segments(cameraId, range = {}) {
    return this.request("GET", `/api/streams/cameras/${cameraId}/segments${rangeQuery(range)}`);
  }
  createExport(cameraId, start, end) {
    return this.request("POST", `/api/streams/cameras/${cameraId}/exports`, {
      start: toIso(start),
      end: toIso(end),
    });
  }
  listExports(cameraId) {
    return this.request("GET", `/api/streams/cameras/${cameraId}/exports`);
  }
  getExport(exportId) {
    return this.request("GET", `/api/streams/exports/${exportId}`);
  }

  /** The hub connection, made on first use (the core's RealtimeClient). */
  get realtime() {
    if (!this._realtime) {
      const url = `${this.baseUrl}/ws`;
      this._realtime =
        this.token && !this.tokenProvider
          ? new RealtimeClient({ url, token: this.token })
          : new RealtimeClient({ url, getToken: () => this._socketToken() });
    }
    return this._realtime;
  }

  async _socketToken() {
    if (this.tokenProvider) {
      this.token = await this.tokenProvider();
      return this.token;
    }
    // The page's cookie session: a short-lived access token for the socket.
    return (await this.request("POST", "/api/auth/session-token")).access_token;
  }

  _watch(topic, handler, options) {
    const stop = this.realtime.subscribe(topic, (frame) => handler(frame.data, frame), options);
    this.realtime.connect().catch((error) => console.warn(error));
    return stop;
  }

  /** Follow a camera's live events (camera.online/offline/updated/deleted, recording.*, export.progress);
   * handler(event, frame). Returns the function that stops following. */
  watchCamera(cameraId, handler, options) {
    return this._watch(`streams.camera.${cameraId}`, handler, options);
  }

  /** Follow the public cameras going online, offline or away. */
  watchDirectory(handler, options) {
    return this._watch("streams.directory", handler, options);
  }

  /** Close the hub connection (REST calls keep working; the next watch opens a new one). */
  close() {
    this._realtime?.close();
    this._realtime = null;
  }

  hlsUrl(cameraId, token) {
    return withQuery(`${this.baseUrl}/streams/media/${cameraId}/index.m3u8`, { token });
  }
  whepUrl(cameraId) {
    return `${this.baseUrl}/streams/whep/${cameraId}`;
  }
  snapshotUrl(cameraId, token) {
    return withQuery(`${this.baseUrl}/streams/media/${cameraId}/snapshot.jpg`, { token });
  }
  vodUrl(cameraId, start, end, token) {
    return withQuery(`${this.baseUrl}/streams/recordings/${cameraId}/vod.m3u8`, {
      start: toIso(start),
      end: toIso(end),
      token,
    });
  }
}

function toIso(value) {
  return value instanceof Date ? value.toISOString() : String(value);
}

function withQuery(url, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value) query.set(name, value);
  const text = query.toString();
  return text ? `${url}?${text}` : url;
}

function rangeQuery(range) {
  const query = {};
  if (range.start) query.start = toIso(range.start);
  if (range.end) query.end = toIso(range.end);
  if (range.limit) query.limit = String(range.limit);
  return withQuery("", query);
}

let hlsModule = null;

/** hls.js, from the SDK's server (or the module given), loaded once. */
export function loadHls(url) {
  hlsModule ??= import(url ?? new URL(HLS_MODULE, import.meta.url).href).then((module) => module.default);
  return hlsModule;
}

const RETRY_MS = 3000;
const WEBRTC_TIMEOUT_MS = 6000;
const ICE_GATHERING_MS = 2000;

function gathered(pc) {
  // The offer goes with every candidate (WHEP without trickle): wait for gathering, at most a moment.
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
    window.setTimeout(resolve, ICE_GATHERING_MS);
  });
}

export class StreamsPlayer extends EventTarget {
  /**
   * video: the <video> to play in. options: cameraId + client (URLs and token renewal from the client),
   * or src/whep URLs; token (a private camera's playback token), tokenTtl (seconds), renewToken,
   * protocol ("auto" | "webrtc" | "hls"), hlsModuleUrl, webrtcTimeoutMs.
   */
  constructor(video, options = {}) {
    super();
    this.video = video;
    this.options = options;
    const client = options.client ?? null;
    this.client = client;
    this.token = options.token ?? null;
    this.src = options.src ?? (client && options.cameraId ? client.hlsUrl(options.cameraId, this.token) : null);
    this.whep = options.whep ?? (client && options.cameraId ? client.whepUrl(options.cameraId) : null);
    this.protocol = null;
    this.status = "idle";
    this.hls = null;
    this.peer = null;
    this._session = null;
    this._timers = new Set();
    this._stopped = true;
    this._renewal = null;
    this._onPageHide = () => this.stop();
  }

  _say(status, text) {
    this.status = status;
    this.dispatchEvent(new CustomEvent("status", { detail: { status, text, protocol: this.protocol } }));
  }

  _later(callback, delay) {
    const timer = window.setTimeout(() => {
      this._timers.delete(timer);
      if (!this._stopped) callback();
    }, delay);
    this._timers.add(timer);
  }

  _withToken(url) {
    if (!this.token) return url;
    const parsed = new URL(url, window.location.href);
    if (!parsed.searchParams.has("token")) return url;
    parsed.searchParams.set("token", this.token);
    return parsed.toString();
  }

  async _renew() {
    const renew =
      this.options.renewToken ??
      (this.client && this.options.cameraId ? () => this.client.playbackToken(this.options.cameraId) : null);
    if (!renew) return null;
    const fresh = await renew();
    this.token = fresh.token;
    this.dispatchEvent(new CustomEvent("token", { detail: fresh }));
    return Date.parse(fresh.expires_at) - Date.now();
  }

  _scheduleRenewal(lifetimeMs) {
    // Renew at two thirds of the lifetime; on failure try again soon (the old token may still be good).
    this._later(async () => {
      try {
        const lifetime = await this._renew();
        if (lifetime !== null) this._scheduleRenewal(lifetime);
      } catch (error) {
        console.warn(error);
        this._scheduleRenewal(15000);
      }
    }, Math.max(5000, (lifetimeMs * 2) / 3));
  }

  /** Start playing: WebRTC first unless protocol says otherwise, HLS as the fallback. */
  async start() {
    this._stopped = false;
    window.addEventListener("pagehide", this._onPageHide);
    if (this.token) this._scheduleRenewal(Number(this.options.tokenTtl ?? 300) * 1000);
    const wanted = this.options.protocol ?? "auto";
    if (wanted !== "hls" && this.whep && window.RTCPeerConnection) {
      try {
        await this._playWebRtc();
        return;
      } catch (error) {
        console.info(`${error.message}; playing HLS instead`);
        if (this._stopped) return;
        if (wanted === "webrtc") {
          this._say("unavailable", "WebRTC is not available for this camera now.");
          return;
        }
      }
    }
    await this._playHls();
  }

  /** Stop and let go of everything: the peer connection (and its WHEP session), hls.js, timers. */
  stop() {
    this._stopped = true;
    window.removeEventListener("pagehide", this._onPageHide);
    for (const timer of this._timers) window.clearTimeout(timer);
    this._timers.clear();
    this._closePeer();
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    }
    this.video.pause();
    this.video.removeAttribute("src");
    this.video.srcObject = null;
    this.video.load();
    this.protocol = null;
    delete this.video.dataset.protocol;
    this._say("stopped", "Stopped");
  }

  _closePeer() {
    // End the WHEP session first, then close the connection: closed first, the server would drop the
    // session by itself and answer the DELETE 404.
    const pc = this.peer;
    const session = this._session;
    this.peer = null;
    this._session = null;
    if (!pc) return;
    if (!session) {
      pc.close();
      return;
    }
    const close = () => pc.close();
    window.setTimeout(close, 2000);
    fetch(session, { method: "DELETE", keepalive: true, credentials: "omit" }).then(close, close);
  }

  _setProtocol(protocol) {
    this.protocol = protocol;
    this.video.dataset.protocol = protocol;
  }

  async _playHls() {
    if (!this.src) throw new Error("No HLS URL for this camera.");
    this._setProtocol("hls");
    const Hls = await loadHls(this.options.hlsModuleUrl);
    if (this._stopped) return;
    if (Hls.isSupported()) {
      this._playWithHlsJs(Hls);
    } else if (this.video.canPlayType("application/vnd.apple.mpegurl")) {
      this._playNatively();
    } else {
      this._say("unsupported", "This browser cannot play HLS.");
    }
  }

  _playNatively() {
    const video = this.video;
    video.src = this._withToken(this.src);
    video.addEventListener("playing", () => this._say("live", "Live"));
    video.addEventListener("error", () => {
      if (this._stopped) return;
      this._say("offline", "Offline: waiting for the camera…");
      this._later(() => {
        video.src = this._withToken(this.src);
      }, RETRY_MS);
    });
  }

  _playWithHlsJs(Hls) {
    const player = this;
    const hls = new Hls({
      liveSyncDurationCount: 2,
      lowLatencyMode: true,
      enableWorker: false,
      // A ladder camera's index.m3u8 is a master playlist: hls.js picks the rendition by bandwidth, never
      // one taller than the player shows.
      capLevelToPlayerSize: true,
      // Every URL hls.js asks for gets the current token (the playlists carry the one they were fetched with).
      xhrSetup(xhr, url) {
        xhr.open("GET", player._withToken(url), true);
      },
    });
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      this._say("live", "Live");
      this.video.play().catch(() => this._say("live", "Live: press play"));
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_event, data) => {
      const level = hls.levels[data.level];
      if (hls.levels.length > 1 && level && level.height) this.video.dataset.rendition = `${level.height}p`;
    });
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
        return;
      }
      this._say("offline", "Offline: waiting for the camera…");
      this._later(() => hls.loadSource(this._withToken(this.src)), RETRY_MS);
    });
    hls.attachMedia(this.video);
    hls.loadSource(this._withToken(this.src));
    this.hls = hls;
  }

  async _playWebRtc() {
    // Resolves once the video plays over WebRTC; rejects (having cleaned up) when it cannot.
    const video = this.video;
    const pc = new RTCPeerConnection();
    this.peer = pc;
    try {
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.addTransceiver("audio", { direction: "recvonly" });
      const stream = new MediaStream();
      pc.addEventListener("track", (event) => stream.addTrack(event.track));
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      const headers = { "Content-Type": "application/sdp" };
      if (this.token) headers.Authorization = `Bearer ${this.token}`;
      const response = await fetch(this.whep, {
        method: "POST",
        headers,
        body: pc.localDescription.sdp,
        credentials: "omit",
      });
      if (response.status !== 201) throw new Error(`WHEP: HTTP ${response.status}`);
      this._session = new URL(response.headers.get("Location"), new URL(this.whep, window.location.href)).toString();
      await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
      video.srcObject = stream;
      const timeoutMs = this.options.webrtcTimeoutMs ?? WEBRTC_TIMEOUT_MS;
      await new Promise((resolve, reject) => {
        const timer = window.setTimeout(() => reject(new Error("WebRTC: no picture in time")), timeoutMs);
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
      if (this._stopped) throw new Error("WebRTC: stopped");
    } catch (error) {
      this._closePeer();
      video.srcObject = null;
      throw error;
    }
    this._setProtocol("webrtc");
    this._say("live", "Live · WebRTC");
    // A connection that breaks later (the stream ended, the network went): carry on with HLS.
    let fellBack = false;
    const fallBack = () => {
      if (fellBack || this._stopped || this.peer !== pc || pc.connectionState === "connected") return;
      fellBack = true;
      this._closePeer();
      video.srcObject = null;
      this._say("switching", "WebRTC lost: switching to HLS…");
      this._playHls().catch((error) => console.warn(error));
    };
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "failed") fallBack();
      // "disconnected" may pass by itself; give it a moment.
      if (pc.connectionState === "disconnected") this._later(fallBack, RETRY_MS);
    });
  }
}

/**
 * <pentad-stream-player camera-id="…" [base-url] [token] [protocol]>: a <video> playing the camera while it
 * is in the page (started when connected, stopped when removed). `player` is its StreamsPlayer.
 */
export class StreamsPlayerElement extends HTMLElement {
  connectedCallback() {
    if (this.player) return;
    const video = document.createElement("video");
    video.muted = true;
    video.playsInline = true;
    video.autoplay = true;
    video.controls = this.hasAttribute("controls");
    this.append(video);
    const client = new StreamsClient({
      baseUrl: this.getAttribute("base-url") ?? undefined,
      token: this.getAttribute("api-token") ?? undefined,
    });
    this.player = new StreamsPlayer(video, {
      client,
      cameraId: this.getAttribute("camera-id"),
      token: this.getAttribute("token"),
      protocol: this.getAttribute("protocol") ?? "auto",
    });
    this.player.start().catch((error) => console.warn(error));
  }

  disconnectedCallback() {
    if (!this.player) return;
    this.player.stop();
    this.player = null;
    this.replaceChildren();
  }
}

/** Register <pentad-stream-player> (once; another name if given). */
export function defineStreamsPlayer(name = "pentad-stream-player") {
  if (!customElements.get(name)) customElements.define(name, class extends StreamsPlayerElement {});
}
