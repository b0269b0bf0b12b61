"""WebRTC playback (WHEP) and ingest (WHIP): `/streams/whep/{camera_id}` and `/streams/whip/{camera_id}`.

Both take an SDP offer (`Content-Type: application/sdp`) and answer 201 with the SDP answer and
`Location: …/sessions/{session}`; `DELETE` on that URL ends the session (the session id, 128 random bits,
is the capability, as in WHEP/WHIP servers generally); `PATCH` (trickle ICE, ICE restart) is 405: the
answer carries every candidate already. The peer connections live in the node's media service, reached
through the core relay (`streams.media@<node>`, media/webrtc/hub.py), whichever worker took the request.

- WHEP: who may play is decided exactly as for HLS (access.authorize_playback): public and unlisted
  cameras for anyone, private ones with a playback token of that camera, as `Authorization: Bearer psp_…`
  (what WHEP players send) or `?token=psp_…`. Another camera's token 403 `playback_token_scope`, a bad
  one 401 `playback_token_invalid`, none 401 `playback_token_required`. No live stream 404
  `stream_offline`; the node's viewer limit 503 `webrtc_capacity`.
- WHIP: `Authorization: Bearer psk_…`, the camera's stream key (the URL names the camera; the key must be
  one of its keys). A missing, wrong or revoked key is 401 `stream_key_invalid` before anything is
  negotiated or stored. The key goes no further than this route: the media service gets the grant
  (camera, key id). The key is never logged.
- Not in the OpenAPI document (SDP, not JSON), like the media routes. CORS: any origin, no credentials,
  `Location` readable, so players and studios on other sites work.
"""

from __future__ import annotations

import json
import socket
import uuid
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from pentad.apps.streams import repository
from pentad.apps.streams.access import authorize_playback
from pentad.apps.streams.actions.publish import PublishGrant, authorize_publish
from pentad.apps.streams.media.webrtc.hub import media_address
from pentad.apps.streams.media_endpoints import CameraId
from pentad.apps.streams.models import StreamsSession
from pentad.core.context import AppContext
from pentad.core.cors import CorsPolicy
from pentad.core.errors import AppError, BadRequest, NotAuthenticated, NotFound, ServiceUnavailable
from pentad.core.platform import get_platform
from pentad.core.policy import RateLimitClass, route_policy
from pentad.core.realtime.relay import NoHolder, RelayError

router = APIRouter(include_in_schema=False)

WEBRTC: Final = RateLimitClass("streams_webrtc", "120/minute")
"""Per-address budget of WHEP/WHIP offers and session ends."""
WEBRTC_CORS: Final = CorsPolicy(
    origins="*",
    methods=("POST", "DELETE", "PATCH"),
    allow_headers=("Authorization",),
    expose=("Location", "Accept-Patch", "Link"),
)
SDP_TYPE: Final = "application/sdp"
MAX_SDP_BYTES: Final = 65_536
OFFER_TIMEOUT: Final = 15.0
ERRORS: Final = {
    "stream_offline": (404, "The camera is not streaming now."),
    "webrtc_capacity": (503, "This node has as many WebRTC viewers as it takes; try HLS."),
    "bad_offer": (400, "The SDP offer cannot be used."),
    "no_h264": (400, "The offer must take H.264 video (packetization-mode 1)."),
    "publish_refused": (503, "This node cannot take the stream now."),
    "webrtc_failed": (503, "The media service failed to answer."),
}
SessionId = Annotated[str, "session"]


class StreamKeyInvalid(NotAuthenticated):
    code = "stream_key_invalid"

    def __init__(self) -> None:
        super().__init__(
            "Send this camera's stream key as `Authorization: Bearer psk_…`.",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _bearer(request: Request) -> str | None:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    return credential.strip() or None if scheme.lower() == "bearer" else None


async def _offer(request: Request) -> str:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != SDP_TYPE:
        raise AppError("Send the SDP offer as `application/sdp`.", status=415, code="unsupported_media_type")
    body = await request.body()
    if len(body) > MAX_SDP_BYTES:
        raise BadRequest("The SDP offer is too long.", code="bad_offer")
    try:
        sdp = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The SDP offer is not UTF-8.", code="bad_offer") from None
    if not sdp.startswith("v=0") or "\x00" in sdp or "m=" not in sdp:
        raise BadRequest("The body is not an SDP offer.", code="bad_offer")
    return sdp


async def _ask(platform: AppContext, node: str, message: dict[str, Any]) -> dict[str, Any]:
    try:
        raw = await platform.relay.request(media_address(node), json.dumps(message), timeout=OFFER_TIMEOUT)
    except NoHolder:
        raise ServiceUnavailable("The media service is not running.", code="media_unavailable") from None
    except RelayError:
        raise ServiceUnavailable("The media service did not answer.", code="media_unavailable") from None
    answer = json.loads(raw)
    if not isinstance(answer, dict):
        raise ServiceUnavailable("The media service failed to answer.", code="webrtc_failed")
    if "error" in answer:
        code = str(answer["error"])
        status, message_text = ERRORS.get(code, (503, "The media service failed to answer."))
        detail = str(answer.get("detail") or message_text)
        raise AppError(detail if status == 400 else message_text, status=status, code=code)
    return answer


def _created(request: Request, kind: str, camera_id: uuid.UUID, answer: dict[str, Any]) -> Response:
    location = f"/streams/{kind}/{camera_id}/sessions/{answer['session']}"
    return Response(
        str(answer["sdp"]),
        status_code=201,
        media_type=SDP_TYPE,
        headers={"Location": location, "Cache-Control": "no-store"},
    )


def _node_of(live: list[StreamsSession]) -> str:
    if not live:
        raise NotFound("The camera is not streaming now.", code="stream_offline")
    return max(live, key=lambda row: row.started_at).node or socket.gethostname()


async def _live_node(platform: AppContext, camera_id: uuid.UUID) -> str:
    # Its own read-only transaction, over before the media service is asked: the request must hold no
    # database lock while the media service writes (a WHIP stream's session ends in its transaction).
    async with platform.database.transaction(writes=False) as session:
        return _node_of(await repository.open_sessions(session, camera_id))


@router.post("/streams/whep/{camera_id}")
@route_policy(
    public="WebRTC players ask for a stream; private cameras check the playback token here",
    rate_limit=WEBRTC,
    cors=WEBRTC_CORS,
)
async def whep_offer(
    camera_id: CameraId,
    request: Request,
    token: Annotated[str | None, Query(max_length=512, description="Playback token (`psp_…`).")] = None,
) -> Response:
    """WHEP: an SDP offer in, 201 with the SDP answer and the session's Location out."""
    platform = get_platform(request)
    async with platform.database.transaction(writes=False) as session:
        camera = await authorize_playback(
            session, platform, camera_id, token=_bearer(request) or token or None
        )
        node = _node_of(await repository.open_sessions(session, camera.id))
    sdp = await _offer(request)
    answer = await _ask(platform, node, {"op": "whep_offer", "camera_id": str(camera.id), "sdp": sdp})
    return _created(request, "whep", camera.id, answer)


def grant_message(grant: PublishGrant) -> dict[str, str]:
    """What the media service needs of an accepted key (services.grant_from_message reads it)."""
    return {
        "camera_id": str(grant.camera_id),
        "key_id": str(grant.key_id),
        "source": grant.source,
        "profile": grant.profile,
        "recording_mode": grant.recording_mode,
        "visibility": grant.visibility,
    }


@router.post("/streams/whip/{camera_id}")
@route_policy(
    public="publishers authenticate with the camera's stream key (Bearer), checked here",
    rate_limit=WEBRTC,
    cors=WEBRTC_CORS,
)
async def whip_offer(camera_id: CameraId, request: Request) -> Response:
    """WHIP: a publisher's SDP offer in, 201 with the SDP answer and the session's Location out."""
    platform = get_platform(request)
    key = _bearer(request)
    grant = await authorize_publish(platform, key) if key else None
    if grant is None or grant.camera_id != camera_id:
        raise StreamKeyInvalid()
    sdp = await _offer(request)
    client = request.client.host if request.client else ""
    message = {"op": "whip_offer", "grant": grant_message(grant), "sdp": sdp, "peer": client}
    answer = await _ask(platform, socket.gethostname(), message)
    return _created(request, "whip", camera_id, answer)


async def _end(request: Request, camera_id: uuid.UUID, session_id: str) -> Response:
    try:
        peer = uuid.UUID(hex=session_id).hex
    except ValueError:
        raise NotFound("No such WebRTC session.", code="webrtc_session_not_found") from None
    platform = get_platform(request)
    node = await _live_node(platform, camera_id)
    answer = await _ask(platform, node, {"op": "end", "camera_id": str(camera_id), "session": peer})
    if not answer.get("ended"):
        raise NotFound("No such WebRTC session.", code="webrtc_session_not_found")
    return Response(status_code=200)


@router.delete("/streams/whep/{camera_id}/sessions/{session_id}")
@route_policy(public="the session id is the capability (WHEP)", rate_limit=WEBRTC, cors=WEBRTC_CORS)
async def whep_end(camera_id: CameraId, session_id: str, request: Request) -> Response:
    """End a WHEP viewer."""
    return await _end(request, camera_id, session_id)


@router.delete("/streams/whip/{camera_id}/sessions/{session_id}")
@route_policy(public="the session id is the capability (WHIP)", rate_limit=WEBRTC, cors=WEBRTC_CORS)
async def whip_end(camera_id: CameraId, session_id: str, request: Request) -> Response:
    """End a WHIP publisher."""
    return await _end(request, camera_id, session_id)


@router.patch("/streams/whep/{camera_id}/sessions/{session_id}")
@router.patch("/streams/whip/{camera_id}/sessions/{session_id}")
@route_policy(public="trickle ICE is not supported (405)", rate_limit=WEBRTC, cors=WEBRTC_CORS)
async def trickle(camera_id: CameraId, session_id: str) -> Response:
    """Trickle ICE and ICE restarts are not supported: the answer already has every candidate."""
    raise AppError(
        "Trickle ICE is not supported: the answer carries every candidate.",
        status=405,
        code="method_not_allowed",
        headers={"Allow": "DELETE"},
    )
