"""Frames: the prebuilt event frame matches the documented model; client frames are validated strictly."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from pentad.core.realtime.protocol import (
    AuthRequest,
    CloseCode,
    ErrorCode,
    Event,
    SubscribeRequest,
    ack_frame,
    client_frame_adapter,
    error_frame,
    event_frame,
)


def test_the_prebuilt_event_frame_is_a_valid_event() -> None:
    text = event_frame('odd."topic', 7, "e1", 1700000000123, '{"a":[1,2]}')
    event = Event.model_validate_json(text)
    assert event == Event(topic='odd."topic', seq=7, epoch="e1", ts=1700000000123, data={"a": [1, 2]})


def test_acknowledgements() -> None:
    assert orjson.loads(ack_frame(3)) == {"op": "ack", "id": 3, "ok": True}
    failed = orjson.loads(error_frame(4, ErrorCode.FORBIDDEN, "no"))
    assert failed == {"op": "ack", "id": 4, "ok": False, "error": {"code": "forbidden", "message": "no"}}


def test_client_frames_are_parsed_by_op() -> None:
    assert isinstance(client_frame_adapter.validate_json('{"op":"auth","id":1,"token":"t"}'), AuthRequest)
    subscribe = client_frame_adapter.validate_json(
        '{"op":"subscribe","id":2,"topic":"chat.channel.42","since":10,"epoch":"e"}'
    )
    assert subscribe == SubscribeRequest(op="subscribe", id=2, topic="chat.channel.42", since=10, epoch="e")


@pytest.mark.parametrize(
    "text",
    [
        '{"op":"nope","id":1}',
        '{"op":"subscribe","id":1}',
        '{"op":"subscribe","id":1,"topic":"a..b"}',
        '{"op":"subscribe","id":1,"topic":"a b"}',
        '{"op":"subscribe","id":-1,"topic":"a"}',
        '{"op":"subscribe","id":1,"topic":"a","extra":true}',
        '{"op":"publish","id":1,"topic":"a","data":[1]}',
        "[]",
    ],
)
def test_bad_client_frames_are_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        client_frame_adapter.validate_json(text)


def test_close_codes_are_distinct_and_private_ones_in_the_application_range() -> None:
    codes = [code.value for code in CloseCode]
    assert len(codes) == len(set(codes))
    assert all(4000 <= code < 5000 for code in codes if code >= 4000)
