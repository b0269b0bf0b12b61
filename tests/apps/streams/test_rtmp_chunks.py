"""The RTMP chunk stream and handshake: the four header formats, extended timestamps, set-chunk-size and
abort, interleaving, byte-at-a-time arrival, and the bounds that refuse hostile peers."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pentad.apps.streams.media.rtmp import chunks, handshake
from pentad.apps.streams.media.rtmp.chunks import ChunkError, ChunkReader, ChunkWriter, Message


def _read(data: bytes, reader: ChunkReader | None = None) -> list[Message]:
    reader = reader or ChunkReader()
    reader.feed(data)
    return reader.messages()


messages = st.builds(
    Message,
    type_id=st.sampled_from([chunks.AUDIO, chunks.VIDEO, chunks.DATA_AMF0, chunks.COMMAND_AMF0]),
    stream_id=st.integers(0, 5),
    timestamp=st.integers(0, 0xFFFFFFFF),
    body=st.binary(max_size=3000),
    chunk_stream=st.sampled_from([3, 4, 63, 64, 319, 320, 5000]),
)


@settings(max_examples=60)
@given(st.lists(messages, min_size=1, max_size=6), st.sampled_from([128, 1000, 4096]), st.integers(1, 700))
def test_written_messages_read_back(sent: list[Message], chunk_size: int, piece: int) -> None:
    writer = ChunkWriter()
    reader = ChunkReader()
    data = b""
    if chunk_size != chunks.DEFAULT_CHUNK_SIZE:
        data += writer.encode(chunks.control(chunks.SET_CHUNK_SIZE, chunk_size))
        writer.chunk_size = chunk_size
    data += b"".join(writer.encode(message) for message in sent)
    received: list[Message] = []
    for start in range(0, len(data), piece):  # arrives in arbitrary pieces
        reader.feed(data[start : start + piece])
        received += reader.messages()
    media = [m for m in received if m.type_id != chunks.SET_CHUNK_SIZE]
    assert media == sent
    assert reader.chunk_size == chunk_size
    assert reader.received == len(data)


def test_compressed_headers_carry_deltas() -> None:
    # fmt 0 at 1000, fmt 1 (+33, new length), fmt 2 (+33), fmt 3 (+33 again): what encoders send for audio.
    data = (
        b"\x04" + (1000).to_bytes(3, "big") + (2).to_bytes(3, "big") + b"\x08" + struct.pack("<I", 1) + b"a1"
        + b"\x44" + (33).to_bytes(3, "big") + (3).to_bytes(3, "big") + b"\x08" + b"a22"
        + b"\x84" + (33).to_bytes(3, "big") + b"a33"
        + b"\xc4" + b"a44"
    )  # fmt: skip
    received = _read(data)
    assert [(m.timestamp, m.body, m.stream_id, m.chunk_stream) for m in received] == [
        (1000, b"a1", 1, 4),
        (1033, b"a22", 1, 4),
        (1066, b"a33", 1, 4),
        (1099, b"a44", 1, 4),
    ]


def test_extended_timestamp_on_continuations() -> None:
    writer = ChunkWriter()
    message = Message(chunks.VIDEO, 1, 0x01020304, b"v" * 300, chunk_stream=6)
    data = writer.encode(message)
    assert data[1:4] == b"\xff\xff\xff"
    assert data.count(struct.pack(">I", 0x01020304)) == 3  # header + two continuation chunks
    assert _read(data) == [message]


def test_abort_discards_a_partial_message() -> None:
    writer = ChunkWriter()
    video = writer.encode(Message(chunks.VIDEO, 1, 0, b"x" * 200, chunk_stream=6))
    first_chunk = video[: 12 + 128]
    abort = writer.encode(Message(chunks.ABORT, 0, 0, struct.pack(">I", 6), chunk_stream=2))
    after = writer.encode(Message(chunks.VIDEO, 1, 40, b"fresh", chunk_stream=6))
    received = _read(first_chunk + abort + after)
    assert [m.type_id for m in received] == [chunks.ABORT, chunks.VIDEO]
    assert received[1].body == b"fresh"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x43" + b"\x00" * 7, "without a full header"),
        (ChunkWriter().encode(chunks.control(chunks.SET_CHUNK_SIZE, 0x7FFFFFFF)), "chunk size"),
        (ChunkWriter().encode(chunks.control(chunks.SET_CHUNK_SIZE, 0)), "chunk size"),
        (
            b"\x03" + b"\x00\x00\x00" + (9 * 1024 * 1024).to_bytes(3, "big") + b"\x09" + b"\x00" * 4,
            "too large",
        ),
        (
            b"".join(
                bytes([0x00, n]) + b"\x00" * 3 + (200).to_bytes(3, "big") + b"\x09" + b"\x00" * 4 + b"v" * 128
                for n in range(70)
            ),
            "chunk streams",
        ),
    ],
)
def test_hostile_streams_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(ChunkError, match=message):
        _read(data)


def test_handshake_answers_c1_with_s0_s1_s2() -> None:
    c0c1 = handshake.client_packets()
    handshake.check_c0(c0c1[:1])
    answer = handshake.server_packets(c0c1[1:])
    assert len(answer) == 1 + 2 * handshake.PACKET_SIZE
    assert answer[0] == handshake.VERSION
    assert answer[5:9] == b"\x00\x00\x00\x00"  # version 0: the simple handshake
    assert answer[1 + handshake.PACKET_SIZE :] == c0c1[1:]  # S2 echoes C1


@pytest.mark.parametrize("first", [b"G", b"\x16", b"\x06", b""])
def test_handshake_refuses_other_protocols(first: bytes) -> None:
    with pytest.raises(handshake.HandshakeError):
        handshake.check_c0(first)
    with pytest.raises(handshake.HandshakeError):
        handshake.server_packets(b"short")
