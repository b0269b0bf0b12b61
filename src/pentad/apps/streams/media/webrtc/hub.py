"""The WebRTC peer connections of one node: WHEP viewers of its live streams and WHIP publishers into it.

The media service (media/service.py run_media) holds the relay address `streams.media@<node>` and hands
each message to `WebRtcHub.handle`; the HTTP routes (webrtc_endpoints.py) run in any worker and ask it:

    {"op": "whep_offer", "camera_id": "…", "sdp": "…"}          -> {"session": "…", "sdp": "<answer>"}
    {"op": "whip_offer", "grant": {…}, "sdp": "…", "peer": "…"} -> {"session": "…", "sdp": "<answer>"}
    {"op": "end", "camera_id": "…", "session": "…"}             -> {"ended": true|false}

or `{"error": code, "detail": …}` when refused (`stream_offline`, `webrtc_capacity`, `bad_offer`,
`no_h264`, `publish_refused`). The key of a WHIP publisher never reaches this process: the route
checked it and sends the grant (camera, key id) only.

WHEP: H.264 forwarded as the publisher encoded it (tracks.RelayVideoTrack), Opus from the stream's shared
OpusFeed. A viewer ends when its connection fails or closes, when it has not connected within
CONNECT_TIMEOUT, when the stream ends, or on DELETE. At most WEBRTC__MAX_VIEWERS per node.

WHIP: the browser's H.264 is kept encoded. aiortc decodes what it receives; here the receiver's decoder
queue is replaced by a tap (`_EncodedTap`) that takes the reassembled access units (Annex-B, 90 kHz) from
its jitter buffer instead, and nothing is decoded. That reaches into aiortc's internals (the name-mangled
`_RTCRtpReceiver__decoder_queue`), pinned to aiortc 1.16 and tested by tests/apps/streams/test_webrtc.py.
The units become FLV frames on a relay opened like any publisher's (MediaService.open_granted), so the
packager makes HLS of it and WHEP viewers can watch it. Nothing is kept before the first keyframe (HLS
segments start on keyframes), and a publisher's first keyframe is easily missed: it is the very first
frame its encoder makes, sent as soon as its side of DTLS is up, so it can reach this node before the
receiver is registered and be dropped. Browsers (and aiortc) then send the next one only on demand
(an RTCP PLI) or after hundreds of frames. So `_KeyframeRequests` sends a PLI to the sources the
receiver hears (RTCRtpReceiver.getSynchronizationSources) as soon as media arrives without a keyframe,
every KEYFRAME_RETRY until one comes, then every HLS_SEGMENT_SECONDS (segment length); a request that
fails is logged. A WHIP publisher's Opus becomes AAC (tracks.OpusToAac, PyAV) on the relay, so HLS and
recordings carry AAC like an RTMP camera's and WHEP viewers get Opus from it as from any stream.
Transcoding here, not in the packager's ffmpeg: the relay is FLV-shaped and Debian's FFmpeg 5.1 reads
no Opus in FLV."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
)

from pentad.apps.streams.media.engines.base import Publication
from pentad.apps.streams.media.frames import AUDIO, DATA, VIDEO, MediaFrame
from pentad.apps.streams.media.rtmp import amf0
from pentad.apps.streams.media.service import Grant, MediaService
from pentad.apps.streams.media.webrtc.h264 import (
    NAL_AUD,
    NAL_IDR,
    NAL_PPS,
    NAL_SPS,
    annexb_nals,
    flv_sequence_header,
    flv_video_payload,
    nal_type,
)
from pentad.apps.streams.media.webrtc.ice import filter_candidates, use_host_addresses
from pentad.apps.streams.media.webrtc.tracks import (
    OPUS_RATE,
    OpusFeed,
    OpusToAac,
    OpusTrack,
    RelayVideoTrack,
)
from pentad.apps.streams.settings import StreamsSettings
from pentad.core.realtime.relay import Relay, RelayError, RelayMessage

logger = structlog.get_logger("pentad.streams.webrtc")

CONNECT_TIMEOUT = 30.0
"""A peer that has not connected this long after its answer is closed."""
WATCH_INTERVAL = 1.0
KEYFRAME_RETRY = 0.25
"""How often a WHIP publisher is asked for a keyframe while none has come (seconds)."""


class OfferRefused(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class _EncodedTap(queue.Queue[Any]):
    """Stands in for an aiortc receiver's decoder queue: complete encoded frames go to `sink` (called in
    the event loop, where aiortc's receiver runs) instead of to the decoder thread."""

    def __init__(self, sink: Callable[[str, bytes, int], None]) -> None:
        super().__init__()
        self.sink = sink
        self.failures = 0

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:  # noqa: FBT001, FBT002
        if item is None:  # the receiver stopping: let its decoder thread end
            super().put(item, block, timeout)
            return
        codec, frame = item
        try:
            self.sink(codec.name, bytes(frame.data), int(frame.timestamp))
        except Exception as exc:
            # An exception here would end aiortc's DTLS receive loop: the publisher's whole connection
            # would stop silently. One bad frame is logged and skipped instead.
            self.failures += 1
            logger.warning("whip_frame_failed", error=type(exc).__name__, failures=self.failures)


class _WhipVideo:
    """A WHIP publisher's H.264 access units -> FLV frames on its relay, from the first keyframe that
    comes with its parameter sets. `heard` is set once any access unit has come."""

    def __init__(self, publication: Publication, *, audio: bool = False) -> None:
        self.publication = publication
        self.audio = audio
        """The publisher sends audio too (the metadata says so, so the packager expects it)."""
        self.heard = asyncio.Event()
        self.sps: bytes | None = None
        self.pps: bytes | None = None
        self.sent_config: tuple[bytes, bytes] | None = None
        self.started = False
        self.skipped = 0
        self.last_frame = time.monotonic()
        self.frames = 0

    def __call__(self, codec: str, data: bytes, timestamp: int) -> None:
        if codec != "H264":
            return
        self.heard.set()
        nals = annexb_nals(data)
        keyframe = False
        media = []
        for nal in nals:
            kind = nal_type(nal)
            if kind == NAL_SPS:
                self.sps = nal
            elif kind == NAL_PPS:
                self.pps = nal
            elif kind != NAL_AUD:
                keyframe = keyframe or kind == NAL_IDR
                media.append(nal)
        if not self.started and not (keyframe and self.sps and self.pps):
            self.skipped += 1  # the stream starts at a keyframe that comes with its parameter sets
            return
        if not media or self.sps is None or self.pps is None:
            return
        relay = self.publication.relay
        milliseconds = (timestamp // 90) & 0xFFFFFFFF
        if not self.started:
            codecs = {"videocodecid": 7.0} | ({"audiocodecid": 10.0} if self.audio else {})
            metadata = amf0.encode_all("onMetaData", amf0.EcmaArray(**codecs, encoder="whip"))
            relay.push(MediaFrame.parse(DATA, 0, metadata))
            logger.info("whip_video_started", camera_id=str(self.publication.camera_id), skipped=self.skipped)
        if self.sent_config != (self.sps, self.pps):
            payload = flv_sequence_header(self.sps, self.pps)
            relay.push(MediaFrame.parse(VIDEO, milliseconds, payload))
            self.sent_config = (self.sps, self.pps)
        self.started = True
        self.frames += 1
        self.last_frame = time.monotonic()
        relay.push(MediaFrame.parse(VIDEO, milliseconds, flv_video_payload(media, keyframe=keyframe)))


class _WhipAudio:
    """A WHIP publisher's Opus -> AAC frames on its relay, once its video started (the relay's streams
    start at a video keyframe). A publisher's audio and video clocks both count from their first RTP
    packet, which come together when the connection starts."""

    def __init__(self, video: _WhipVideo, bitrate: int) -> None:
        self.video = video
        self.bitrate = bitrate
        self.transcoder: OpusToAac | None = None
        self.frames = 0

    def __call__(self, codec: str, data: bytes, timestamp: int) -> None:
        if codec.lower() != "opus" or not self.video.started:
            return
        relay = self.video.publication.relay
        if self.transcoder is None:
            self.transcoder = OpusToAac(self.bitrate)
            relay.push(MediaFrame.parse(AUDIO, timestamp * 1000 // OPUS_RATE, self.transcoder.config))
        for milliseconds, body in self.transcoder.feed(data, timestamp):
            self.frames += 1
            relay.push(MediaFrame.parse(AUDIO, milliseconds, body))


@dataclass(eq=False)
class _Peer:
    id: str
    kind: str  # "whep" or "whip"
    camera_id: uuid.UUID
    pc: RTCPeerConnection
    created: float = field(default_factory=time.monotonic)
    connected: bool = False
    closed: bool = False
    publication: Publication | None = None
    video: _WhipVideo | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def _h264_only(pc: RTCPeerConnection) -> bool:
    """Keep only H.264 (and its retransmission codec) of what the offer and aiortc have in common, so the
    answer names H.264 alone and the sender packetizes the forwarded stream as H.264. aiortc works the
    common codecs out in setRemoteDescription, before an answerer can state preferences, so they are
    narrowed here (`_codecs`, aiortc 1.16)."""
    for transceiver in pc.getTransceivers():
        if transceiver.kind != "video":
            continue
        common = list(transceiver._codecs)
        h264 = {c.payloadType for c in common if c.mimeType.lower() == "video/h264"}
        transceiver._codecs = [
            c
            for c in common
            if c.payloadType in h264
            or (c.mimeType.lower() == "video/rtx" and c.parameters.get("apt") in h264)
        ]
        if not h264:
            return False
    return True


class WebRtcHub:
    def __init__(
        self,
        media: MediaService,
        settings: StreamsSettings,
        grant: Callable[[Mapping[str, Any]], Grant],
    ) -> None:
        self.media = media
        self.settings = settings
        self.webrtc = settings.webrtc
        self.grant = grant
        self.peers: dict[str, _Peer] = {}
        self.feeds: dict[uuid.UUID, OpusFeed] = {}
        self._negotiating = 0
        use_host_addresses(self.webrtc.host_addresses)

    @property
    def viewers(self) -> int:
        return sum(1 for peer in self.peers.values() if peer.kind == "whep")

    async def handle(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """Answer one relay message (see the module's docstring)."""
        op = message.get("op")
        try:
            if op == "whep_offer":
                return await self.whep_offer(uuid.UUID(str(message["camera_id"])), str(message["sdp"]))
            if op == "whip_offer":
                grant = self.grant(message["grant"])
                return await self.whip_offer(grant, str(message["sdp"]), str(message.get("peer", "")))
            if op == "end":
                ended = await self.end(str(message["session"]), uuid.UUID(str(message["camera_id"])))
                return {"ended": ended}
        except OfferRefused as refused:
            return {"error": refused.code, "detail": refused.detail}
        except (KeyError, ValueError, TypeError) as exc:
            return {"error": "bad_offer", "detail": f"bad message: {type(exc).__name__}"}
        return {"error": "bad_offer", "detail": "unknown operation"}

    def _connection(self) -> RTCPeerConnection:
        servers = [RTCIceServer(urls=url) for url in self.webrtc.stun_urls]
        return RTCPeerConnection(RTCConfiguration(iceServers=servers))

    async def _negotiate(self, peer: _Peer, sdp: str) -> None:
        offer = RTCSessionDescription(filter_candidates(sdp, self.webrtc.allowed_peer_networks), "offer")
        try:
            await peer.pc.setRemoteDescription(offer)
        except (ValueError, KeyError, IndexError, AttributeError) as exc:
            raise OfferRefused("bad_offer", f"The SDP offer cannot be used: {exc}") from None

    async def _answer(self, peer: _Peer) -> str:
        answer = await peer.pc.createAnswer()
        await peer.pc.setLocalDescription(answer)
        description = peer.pc.localDescription
        return str(description.sdp)

    def _register(self, peer: _Peer) -> None:
        self.peers[peer.id] = peer

        @peer.pc.on("connectionstatechange")
        async def changed() -> None:
            state = peer.pc.connectionState
            if state == "connected":
                peer.connected = True
                logger.info("webrtc_connected", kind=peer.kind, camera_id=str(peer.camera_id), peer=peer.id)
            elif state in ("failed", "closed"):
                await self._close(peer, "ice_failed" if state == "failed" else "closed")

        peer.tasks.append(asyncio.create_task(self._watch(peer)))

    async def _watch(self, peer: _Peer) -> None:
        """Close a peer that never connects and a WHIP publisher that goes quiet."""
        while not peer.closed:
            await asyncio.sleep(WATCH_INTERVAL)
            now = time.monotonic()
            if not peer.connected and now - peer.created > CONNECT_TIMEOUT:
                await self._close(peer, "connect_timeout")
                return
            if peer.kind == "whip" and peer.connected:
                video = peer.video
                if video is not None and now - video.last_frame > self.settings.idle_timeout:
                    await self._close(peer, "idle")
                    return

    async def whep_offer(self, camera_id: uuid.UUID, sdp: str) -> dict[str, Any]:
        live = self.media.streams.get(camera_id)
        if live is None:
            raise OfferRefused("stream_offline", "The camera is not streaming now.")
        if self.viewers + self._negotiating >= self.webrtc.max_viewers:
            logger.warning("webrtc_refused", reason="capacity", max_viewers=self.webrtc.max_viewers)
            raise OfferRefused("webrtc_capacity", "This node has as many WebRTC viewers as it takes.")
        relay = live.publication.relay
        peer = _Peer(uuid.uuid4().hex, "whep", camera_id, self._connection())
        self._negotiating += 1  # counted against the limit while it negotiates
        try:
            await self._negotiate(peer, sdp)
            kinds = {t.kind for t in peer.pc.getTransceivers()}
            if "video" in kinds and relay.has_video:
                if not _h264_only(peer.pc):
                    raise OfferRefused(
                        "no_h264", "The offer does not take H.264 video (packetization-mode 1)."
                    )
                subscription = relay.subscribe()
                peer.pc.addTrack(RelayVideoTrack(subscription, on_end=lambda: self._ended(peer)))
            if "audio" in kinds and relay.has_audio:
                feed = self.feeds.get(camera_id)
                if feed is None or feed.relay is not relay:
                    feed = self.feeds[camera_id] = OpusFeed(relay, bitrate=self.webrtc.opus_bitrate)
                peer.pc.addTrack(OpusTrack(feed))
            answer = await self._answer(peer)
        except OfferRefused:
            await _shut(peer.pc)
            raise
        except Exception as exc:
            await _shut(peer.pc)
            raise OfferRefused(
                "bad_offer", f"The SDP offer cannot be answered: {type(exc).__name__}"
            ) from exc
        finally:
            self._negotiating -= 1
        self._register(peer)
        logger.info("whep_viewer_added", camera_id=str(camera_id), peer=peer.id, viewers=self.viewers)
        return {"session": peer.id, "sdp": answer}

    def _ended(self, peer: _Peer) -> None:
        if not peer.closed:
            task = asyncio.get_running_loop().create_task(self._close(peer, "stream_ended"))
            peer.tasks.append(task)

    async def whip_offer(self, grant: Grant, sdp: str, peer_address: str) -> dict[str, Any]:
        peer = _Peer(uuid.uuid4().hex, "whip", grant.camera_id, self._connection())
        try:
            await self._negotiate(peer, sdp)
            if not any(t.kind == "video" for t in peer.pc.getTransceivers()):
                raise OfferRefused("no_h264", "The offer sends no video.")
            if not _h264_only(peer.pc):
                raise OfferRefused("no_h264", "The offer does not send H.264 video.")
            answer = await self._answer(peer)
        except OfferRefused:
            await _shut(peer.pc)
            raise
        except Exception as exc:
            await _shut(peer.pc)
            raise OfferRefused(
                "bad_offer", f"The SDP offer cannot be answered: {type(exc).__name__}"
            ) from exc

        async def drop(reason: str) -> None:
            await self._close(peer, reason)

        publication = await self.media.open_granted(grant, engine="whip", peer=peer_address, drop=drop)
        if publication is None:
            await _shut(peer.pc)
            raise OfferRefused("publish_refused", "This node cannot take the stream now.")
        peer.publication = publication
        audio = any(t.kind == "audio" and t.direction != "inactive" for t in peer.pc.getTransceivers())
        video = _WhipVideo(publication, audio=audio)
        peer.video = video
        for transceiver in peer.pc.getTransceivers():
            sink: Callable[[str, bytes, int], None] = _discard
            if transceiver.kind == "video":
                sink = video
            elif transceiver.kind == "audio":
                sink = _WhipAudio(video, self.webrtc.aac_bitrate)
            _tap(transceiver.receiver, sink)
            if transceiver.kind == "video":
                log = logger.bind(camera_id=str(peer.camera_id), peer=peer.id)
                interval = self.settings.hls_segment_seconds
                requests = _KeyframeRequests(transceiver.receiver, video, interval, log)
                peer.tasks.append(asyncio.create_task(requests.run()))
        self._register(peer)
        logger.info("whip_publisher_added", camera_id=str(grant.camera_id), peer=peer.id)
        return {"session": peer.id, "sdp": answer}

    async def end(self, session: str, camera_id: uuid.UUID) -> bool:
        peer = self.peers.get(session)
        if peer is None or peer.camera_id != camera_id:
            return False
        await self._close(peer, "deleted")
        return True

    async def _close(self, peer: _Peer, reason: str) -> None:
        if peer.closed:
            return
        peer.closed = True
        self.peers.pop(peer.id, None)
        current = asyncio.current_task()
        for task in peer.tasks:
            if task is not current:
                task.cancel()
        await _shut(peer.pc)
        if peer.publication is not None:
            await self.media.close_stream(
                peer.publication, "publisher_left" if reason == "closed" else reason
            )
        logger.info(
            "webrtc_closed", kind=peer.kind, camera_id=str(peer.camera_id), peer=peer.id, reason=reason
        )

    async def close(self) -> None:
        for peer in list(self.peers.values()):
            await self._close(peer, "shutdown")
        for feed in self.feeds.values():
            await feed.close()
        self.feeds.clear()


async def _shut(pc: RTCPeerConnection) -> None:
    """Close a peer connection and stop its outgoing tracks (a sender that never started, because the
    peer never connected, would leave its track subscribed to the relay)."""
    for sender in pc.getSenders():
        if sender.track is not None:
            sender.track.stop()
    with contextlib.suppress(Exception):
        await pc.close()


def _discard(codec: str, data: bytes, timestamp: int) -> None:
    return None


def _tap(receiver: RTCRtpReceiver, sink: Callable[[str, bytes, int], None]) -> None:
    """Replace the receiver's decoder queue by a tap (before the receiver starts, i.e. before the
    connection is established: aiortc starts its decoder thread on that queue then)."""
    attribute = "_RTCRtpReceiver__decoder_queue"
    if not isinstance(getattr(receiver, attribute, None), queue.Queue):
        raise RuntimeError("aiortc's RTCRtpReceiver changed: no decoder queue to tap (pinned to 1.16)")
    setattr(receiver, attribute, _EncodedTap(sink))


class _KeyframeRequests:
    """Asks a WHIP publisher for keyframes (RTCP PLI): at once when its media arrives without one, every
    KEYFRAME_RETRY until one comes, then every `interval` (HLS segments start on keyframes)."""

    def __init__(self, receiver: RTCRtpReceiver, video: _WhipVideo, interval: float, log: Any) -> None:
        self.receiver = receiver
        self.video = video
        self.interval = interval
        self.log = log
        self.sent = 0
        self.failures = 0

    async def run(self) -> None:
        """Until cancelled (the peer closing cancels it)."""
        await self.video.heard.wait()  # media came: the receiver knows its source now
        while True:
            if self.video.started:
                await asyncio.sleep(self.interval)
                await self.request()
            else:
                await self.request()
                await asyncio.sleep(KEYFRAME_RETRY)

    async def request(self) -> None:
        """One PLI to each source the receiver heard in the last seconds (its media SSRC; a
        retransmission SSRC, when heard, is named too and ignored by the sender)."""
        for source in self.receiver.getSynchronizationSources():
            try:
                # aiortc has no public call for it: the receiver's own PLI (what its jitter buffer sends).
                await self.receiver._send_rtcp_pli(source.source)
            except Exception as exc:
                self.failures += 1
                self.log.warning(
                    "whip_keyframe_request_failed",
                    ssrc=source.source,
                    error=type(exc).__name__,
                    failures=self.failures,
                )
            else:
                self.sent += 1
                if self.sent == 1:
                    self.log.info("whip_keyframe_requested", ssrc=source.source, started=self.video.started)


def media_address(node: str) -> str:
    """The relay address of a node's media service."""
    return f"streams.media@{node}"


async def serve(hub: WebRtcHub, relay: Relay, node: str) -> None:
    """Hold the node's media address and answer its messages until cancelled; then close every peer."""
    answering: set[asyncio.Task[None]] = set()

    async def answer(message: RelayMessage) -> None:
        try:
            data = json.loads(message.data)
            result = await hub.handle(data) if isinstance(data, dict) else {"error": "bad_offer"}
        except ValueError:
            result = {"error": "bad_offer", "detail": "not JSON"}
        except Exception as exc:
            logger.exception("webrtc_message_failed", error=type(exc).__name__)
            result = {"error": "webrtc_failed", "detail": "The media service failed to answer."}
        if message.reply is not None:
            with contextlib.suppress(Exception):
                await message.reply(json.dumps(result))

    delay = 1.0
    try:
        while True:
            try:
                async with relay.hold(media_address(node), take_over=True) as inbox:
                    logger.info("webrtc_ready", address=media_address(node))
                    delay = 1.0
                    async for message in inbox:
                        task = asyncio.create_task(answer(message))
                        answering.add(task)
                        task.add_done_callback(answering.discard)
            except RelayError as exc:  # Redis away, or another holder took the address: hold it again
                logger.warning("webrtc_relay_lost", error=type(exc).__name__, retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
    finally:
        for task in list(answering):
            task.cancel()
        await hub.close()
