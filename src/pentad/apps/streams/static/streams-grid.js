// The camera grid (/streams/grid): a tile per camera. A live camera's tile shows its latest snapshot
// (fetched again every SNAPSHOT_MS) and plays live with the SDK's StreamsPlayer while the pointer is on it,
// or from a click (or Enter) until the next one; leaving the tile stops the player and frees its
// connection. A private camera's tile carries a playback token, renewed through the page's session.
// Tiles follow their cameras going on and off through the cameras' live events (the SDK's watchCamera).
import { StreamsClient, StreamsPlayer } from "./streams-sdk.js";

const SNAPSHOT_MS = 5000;

const grid = /** @type {HTMLElement | null} */ (document.querySelector(".streams-grid"));
const api = new StreamsClient({ baseUrl: window.location.origin });
const media = new StreamsClient({ baseUrl: grid?.dataset.mediaBase || window.location.origin });
const tokenTtlMs = Number(grid?.dataset.tokenTtl || "300") * 1000;

class Tile {
  constructor(element) {
    this.element = element;
    this.cameraId = element.dataset.cameraId;
    this.token = element.dataset.token || null;
    this.tokenAt = Date.now();
    this.player = null;
    this.pinned = false;
    this.screen = element.querySelector(".streams-tile__screen");
    this.status = element.querySelector('[data-testid="tile-status"]');
    element.addEventListener("pointerenter", () => this.play());
    element.addEventListener("pointerleave", () => {
      if (!this.pinned) this.pause();
    });
    element.addEventListener("click", (event) => {
      if (event.target.closest("a")) return;
      this.toggle();
    });
    element.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        this.toggle();
      }
    });
    element.addEventListener("focusout", () => {
      if (!this.element.contains(document.activeElement) && !this.element.matches(":hover")) this.pause();
    });
  }

  get live() {
    return this.element.dataset.live === "true";
  }

  setLive(live) {
    if (live === this.live) return;
    this.element.dataset.live = String(live);
    this.status.textContent = live ? "live" : "offline";
    this.screen.replaceChildren();
    if (live) {
      const img = document.createElement("img");
      img.className = "streams-tile__snapshot";
      img.dataset.testid = "snapshot";
      img.alt = `Latest picture of ${this.element.getAttribute("aria-label")}`;
      this.screen.append(img);
      this.refreshSnapshot();
    } else {
      this.pause();
      const offline = document.createElement("span");
      offline.className = "streams-tile__offline";
      offline.textContent = "Offline";
      this.screen.append(offline);
    }
  }

  async freshToken() {
    // Snapshots carry the token in their URL; renew it once two thirds of its life are gone.
    if (!this.token || Date.now() - this.tokenAt < (tokenTtlMs * 2) / 3) return;
    const fresh = await api.playbackToken(this.cameraId);
    this.token = fresh.token;
    this.tokenAt = Date.now();
  }

  async refreshSnapshot() {
    const img = this.screen.querySelector("img");
    if (!img || this.player) return;
    try {
      await this.freshToken();
    } catch (error) {
      console.warn(error);
    }
    const url = new URL(media.snapshotUrl(this.cameraId, this.token), window.location.href);
    url.searchParams.set("at", String(Date.now()));
    img.src = url.toString();
  }

  toggle() {
    if (this.player && this.pinned) {
      this.pinned = false;
      this.pause();
    } else {
      this.pinned = true;
      this.play();
    }
  }

  play() {
    if (this.player || !this.live) return;
    const video = document.createElement("video");
    video.muted = true;
    video.playsInline = true;
    video.autoplay = true;
    video.dataset.testid = "tile-video";
    this.screen.append(video);
    const player = new StreamsPlayer(video, {
      src: media.hlsUrl(this.cameraId, this.token),
      whep: media.whepUrl(this.cameraId),
      token: this.token,
      tokenTtl: Math.max(1, (tokenTtlMs - (Date.now() - this.tokenAt)) / 1000),
      renewToken: () => api.playbackToken(this.cameraId),
    });
    player.addEventListener("status", (event) => {
      if (this.player === player) this.status.textContent = event.detail.text;
    });
    player.addEventListener("token", (event) => {
      this.token = event.detail.token;
      this.tokenAt = Date.now();
    });
    this.player = player;
    this.element.dataset.playing = "true";
    player.start().catch((error) => console.warn(error));
  }

  pause() {
    const player = this.player;
    if (!player) return;
    this.player = null;
    this.pinned = false;
    player.stop();
    player.video.remove();
    this.element.dataset.playing = "false";
    this.status.textContent = this.live ? "live" : "offline";
    this.refreshSnapshot();
  }
}

const tiles = new Map();
for (const element of document.querySelectorAll(".streams-tile")) {
  const tile = new Tile(element);
  tiles.set(tile.cameraId, tile);
  tile.refreshSnapshot();
}
window.pentadStreamsGrid = tiles;

window.setInterval(() => {
  for (const tile of tiles.values()) tile.refreshSnapshot();
}, SNAPSHOT_MS);

// Cameras going on and off, live from each camera's topic (the hub resumes them after a reconnection).
for (const tile of tiles.values()) {
  api.watchCamera(tile.cameraId, (event) => {
    if (event.type === "camera.online") tile.setLive(true);
    else if (event.type === "camera.offline") tile.setLive(false);
    else if (event.type === "camera.deleted") tile.element.remove();
  });
}
