// The player page (/streams/watch/{camera_id}): the SDK's StreamsPlayer (streams-sdk.js) in the page's
// <video>. WebRTC first, HLS (hls.js) as the fallback; `?protocol=hls` or `?protocol=webrtc` on the page's
// URL picks one. A private camera's page carries a playback token (data-token), which the player renews
// through the page's cookie session before it expires.
import { StreamsClient, StreamsPlayer } from "./streams-sdk.js";

const video = /** @type {HTMLVideoElement} */ (document.getElementById("player"));
const status = document.getElementById("player-status");
const wanted = new URLSearchParams(window.location.search).get("protocol");
const player = new StreamsPlayer(video, {
  client: new StreamsClient({ baseUrl: window.location.origin }),
  cameraId: video.dataset.cameraId,
  src: video.dataset.src,
  whep: video.dataset.whep,
  token: video.dataset.token || null,
  tokenTtl: Number(video.dataset.tokenTtl || "300"),
  protocol: wanted === "hls" || wanted === "webrtc" ? wanted : "auto",
});
player.addEventListener("status", (event) => {
  if (status) status.textContent = event.detail.text;
});
window.pentadStreamsPlayer = player;
player.start().catch((error) => {
  console.warn(error);
  if (status) status.textContent = "The player could not start.";
});
