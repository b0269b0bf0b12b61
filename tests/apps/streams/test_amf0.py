"""AMF0, the encoding of RTMP commands: round trips, what ffmpeg sends, and bounded refusal of garbage."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pentad.apps.streams.media.rtmp import amf0

# ffmpeg 5.1's `connect` command as it is on the wire (name, transaction, properties object).
FFMPEG_CONNECT = (
    b"\x02\x00\x07connect\x00\x3f\xf0\x00\x00\x00\x00\x00\x00\x03"
    b"\x00\x03app\x02\x00\x04live"
    b"\x00\x04type\x02\x00\x0anonprivate"
    b"\x00\x08flashVer\x02\x00\x20FMLE/3.0 (compatible; Lavf59.27)"
    b"\x00\x05tcUrl\x02\x00\x1artmp://127.0.0.1:1935/live"
    b"\x00\x00\x09"
)

values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(min_size=1, max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)


def test_decodes_ffmpegs_connect() -> None:
    name, transaction, properties = amf0.decode_all(FFMPEG_CONNECT)
    assert name == "connect"
    assert transaction == 1.0
    assert properties == {
        "app": "live",
        "type": "nonprivate",
        "flashVer": "FMLE/3.0 (compatible; Lavf59.27)",
        "tcUrl": "rtmp://127.0.0.1:1935/live",
    }


@given(st.lists(values, max_size=4))
def test_round_trip(items: list[Any]) -> None:
    assert amf0.decode_all(amf0.encode_all(*items)) == items


def test_ecma_array_undefined_and_long_string() -> None:
    meta = amf0.EcmaArray(width=640.0, height=360.0, videocodecid=7.0)
    long_text = "x" * 70_000
    encoded = amf0.encode_all("onMetaData", meta, amf0.UNDEFINED_VALUE, long_text)
    assert encoded[13] == amf0.ECMA_ARRAY
    decoded = amf0.decode_all(encoded)
    assert decoded == ["onMetaData", meta, amf0.UNDEFINED_VALUE, long_text]
    assert isinstance(decoded[1], amf0.EcmaArray)


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x02\x00\x10short",  # string longer than the message
        b"\x03\x00\x03app",  # object cut inside a key's value
        b"\x0a\xff\xff\xff\xff",  # strict array claiming 4 billion items
        b"\x11",  # AMF3 switch
        b"\x0d",  # unsupported marker
        b"\x02\x00\x02\xff\xfe",  # not UTF-8
        b"\x0a\x00\x00\x00\x01" * 40,  # nested deeper than MAX_DEPTH
        b"\x00\x00\x00",  # truncated number
    ],
)
def test_garbage_is_refused(garbage: bytes) -> None:
    with pytest.raises(amf0.Amf0Error):
        amf0.decode_all(garbage)


def test_numbers_are_doubles() -> None:
    assert amf0.encode(3) == b"\x00" + struct.pack(">d", 3.0)
    with pytest.raises(amf0.Amf0Error):
        amf0.encode(object())
