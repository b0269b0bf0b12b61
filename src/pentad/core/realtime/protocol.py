"""The WebSocket protocol of /ws: every frame as a pydantic model, the error codes and the close codes.

Frames are JSON objects with an `op`. docs/realtime.md describes them for client authors. The models are
the reference and validate what clients send; the server builds its hot-path frames (events, pings) as
ready-encoded strings instead (`event_frame`, `PING_FRAME`), so no model is built per delivery.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

TOPIC_PATTERN = r"^[A-Za-z0-9_:-]+(\.[A-Za-z0-9_:-]+)*$"
MAX_TOPIC_LENGTH = 200


class CloseCode(IntEnum):
    """Why the server closed the socket. A client reconnects (and resumes) after the ones marked so."""

    NORMAL = 1000
    INTERNAL_ERROR = 1011
    """The server failed to handle a frame (e.g. the database is down): reconnect with backoff."""
    SERVICE_RESTART = 1012
    """The server is shutting down or restarting: reconnect with backoff, resume."""
    BAD_MESSAGE = 4000
    """A frame that is not a JSON object, or larger than the limit: a client bug; do not retry as is."""
    AUTH_FAILED = 4001
    """The first frame was not `auth`, or its credentials are invalid: get a new token first."""
    AUTH_TIMEOUT = 4002
    """No `auth` frame within the authentication timeout: reconnect."""
    CREDENTIALS_EXPIRED = 4003
    """The access token expired and no fresh one was sent with `auth`: refresh the token, reconnect."""
    CREDENTIALS_REVOKED = 4004
    """The session, API key or service token was revoked, or the account disabled: sign in again."""
    SLOW_CONSUMER = 4005
    """The client read too slowly and its send queue filled: reconnect and resume."""
    IDLE_TIMEOUT = 4006
    """Nothing (not even `pong`) received within the idle timeout: reconnect and resume."""


RECONNECTABLE = frozenset(
    {
        CloseCode.INTERNAL_ERROR,
        CloseCode.SERVICE_RESTART,
        CloseCode.AUTH_TIMEOUT,
        CloseCode.SLOW_CONSUMER,
        CloseCode.IDLE_TIMEOUT,
    }
)
"""Close codes after which a client reconnects with the credentials it has (plus 1001, 1006, 1011)."""


class ErrorCode(StrEnum):
    """The `code` of a failed acknowledgement."""

    BAD_REQUEST = "bad_request"
    AUTH_FAILED = "auth_failed"
    PRINCIPAL_CHANGED = "principal_changed"
    UNKNOWN_TOPIC = "unknown_topic"
    FORBIDDEN = "forbidden"
    ALREADY_SUBSCRIBED = "already_subscribed"
    NOT_SUBSCRIBED = "not_subscribed"
    TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
    PUBLISH_NOT_ALLOWED = "publish_not_allowed"
    PRESENCE_NOT_ENABLED = "presence_not_enabled"
    UNKNOWN_METHOD = "unknown_method"
    CALL_FAILED = "call_failed"
    UNAVAILABLE = "unavailable"


# --------------------------------------------------------------------------- client -> server

Topic = Annotated[str, Field(min_length=1, max_length=MAX_TOPIC_LENGTH, pattern=TOPIC_PATTERN)]
RequestId = Annotated[int, Field(ge=0, lt=2**53)]


class _ClientFrame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AuthRequest(_ClientFrame):
    """First frame of every connection, and later a fresh token on the same socket (token refresh)."""

    op: Literal["auth"]
    id: RequestId
    token: str = Field(min_length=1, max_length=4096, description="Access token, API key or service token.")


class SubscribeRequest(_ClientFrame):
    op: Literal["subscribe"]
    id: RequestId
    topic: Topic
    since: int | None = Field(None, ge=0, description="Last sequence number seen: resume after it.")
    epoch: str | None = Field(None, max_length=64, description="Epoch of `since`; required with it.")


class UnsubscribeRequest(_ClientFrame):
    op: Literal["unsubscribe"]
    id: RequestId
    topic: Topic


class PublishRequest(_ClientFrame):
    op: Literal["publish"]
    id: RequestId
    topic: Topic
    data: dict[str, Any]


class PresenceRequest(_ClientFrame):
    op: Literal["presence"]
    id: RequestId
    topic: Topic


class CallRequest(_ClientFrame):
    """Ask a server-side handler of the topic's family (TopicSpec.calls); its answer is the
    acknowledgement's `result`, sent to this connection only."""

    op: Literal["call"]
    id: RequestId
    topic: Topic
    method: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    data: dict[str, Any] = Field(default_factory=dict)


class PingRequest(_ClientFrame):
    """The client's own liveness check; answered with an acknowledgement."""

    op: Literal["ping"]
    id: RequestId


class Pong(_ClientFrame):
    """The answer to the server's `ping`."""

    op: Literal["pong"]


ClientFrame = Annotated[
    AuthRequest
    | SubscribeRequest
    | UnsubscribeRequest
    | PublishRequest
    | PresenceRequest
    | CallRequest
    | PingRequest
    | Pong,
    Field(discriminator="op"),
]
client_frame_adapter: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)


# --------------------------------------------------------------------------- server -> client


class Member(BaseModel):
    """One principal present on a topic, however many connections it has."""

    id: str
    kind: str


class PrincipalInfo(BaseModel):
    id: str
    kind: str


class AuthResult(BaseModel):
    principal: PrincipalInfo
    connection_id: str
    expires_at: float | None = Field(description="Unix time the credentials expire; re-send `auth` before.")
    heartbeat_interval: float
    idle_timeout: float


class SubscribeResult(BaseModel):
    epoch: str
    seq: int = Field(description="The topic's sequence number when the subscription started.")
    recovered: bool = Field(
        description="True: every event after `since` follows (and nothing was missed). "
        "False: fetch the current state over REST; live events follow."
    )


class PublishResult(BaseModel):
    seq: int
    epoch: str


class PresenceResult(BaseModel):
    members: list[Member]


class AckError(BaseModel):
    code: ErrorCode
    message: str


class Ack(BaseModel):
    op: Literal["ack"] = "ack"
    id: int
    ok: bool
    result: dict[str, Any] | None = None
    error: AckError | None = None


class Event(BaseModel):
    """A published event; `seq` increases by one per event on a topic within one `epoch`."""

    op: Literal["event"] = "event"
    topic: str
    seq: int
    epoch: str
    ts: int = Field(description="Publish time, Unix milliseconds.")
    data: dict[str, Any]


class Ping(BaseModel):
    op: Literal["ping"] = "ping"


class PresenceChange(BaseModel):
    op: Literal["join", "leave"]
    topic: str
    member: Member


class Reset(BaseModel):
    """Continuity of a live subscription was lost (the broker was unreachable): refetch over REST."""

    op: Literal["reset"] = "reset"
    topic: str
    epoch: str
    seq: int


class Unsubscribed(BaseModel):
    """The server ended a subscription because the principal may no longer read the topic."""

    op: Literal["unsubscribed"] = "unsubscribed"
    topic: str
    reason: Literal["forbidden"]


# --------------------------------------------------------------------------- encoding

PING_FRAME = '{"op":"ping"}'


def event_frame(topic: str, seq: int, epoch: str, ts: int, data_json: str) -> str:
    """An `Event` frame from already-encoded data: built once per event, whatever the subscriber count.

    The Redis broker builds the same string in Lua (brokers.PUBLISH_SCRIPT)."""
    return (
        f'{{"op":"event","topic":{orjson.dumps(topic).decode()},"seq":{seq},'
        f'"epoch":"{epoch}","ts":{ts},"data":{data_json}}}'
    )


def ack_frame(request_id: int, result: BaseModel | dict[str, Any] | None = None) -> str:
    frame: dict[str, Any] = {"op": "ack", "id": request_id, "ok": True}
    if isinstance(result, BaseModel):
        frame["result"] = result.model_dump(mode="json")
    elif result is not None:
        frame["result"] = result
    return orjson.dumps(frame).decode()


def error_frame(request_id: int, code: ErrorCode, message: str) -> str:
    error = {"code": code.value, "message": message}
    return orjson.dumps({"op": "ack", "id": request_id, "ok": False, "error": error}).decode()


def encode(frame: BaseModel) -> str:
    return frame.model_dump_json()
