"""AMF0 (Adobe Action Message Format 0), the encoding of RTMP commands and metadata: numbers, booleans,
strings, objects, ECMA and strict arrays, null, undefined, dates. Decoding is bounded: nesting depth,
element counts and lengths are checked against the bytes there are, and anything else is Amf0Error."""

from __future__ import annotations

import struct
from typing import Any

NUMBER = 0x00
BOOLEAN = 0x01
STRING = 0x02
OBJECT = 0x03
NULL = 0x05
UNDEFINED = 0x06
REFERENCE = 0x07
ECMA_ARRAY = 0x08
OBJECT_END = 0x09
STRICT_ARRAY = 0x0A
DATE = 0x0B
LONG_STRING = 0x0C
MAX_DEPTH = 16


class Amf0Error(ValueError):
    """Bytes that are not the AMF0 this server reads."""


class Undefined:
    """AMF0 undefined (None is null)."""

    _instance: Undefined | None = None

    def __new__(cls) -> Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "Undefined"


UNDEFINED_VALUE = Undefined()


class EcmaArray(dict[str, Any]):
    """An AMF0 ECMA array (onMetaData's body), kept apart from a plain object when encoding."""


def _string(value: str) -> bytes:
    raw = value.encode()
    if len(raw) > 0xFFFF:
        return bytes([LONG_STRING]) + struct.pack(">I", len(raw)) + raw
    return bytes([STRING]) + struct.pack(">H", len(raw)) + raw


def _key(name: str) -> bytes:
    raw = name.encode()
    if len(raw) > 0xFFFF:
        raise Amf0Error("object key longer than 65535 bytes")
    return struct.pack(">H", len(raw)) + raw


def _properties(value: dict[str, Any]) -> bytes:
    return b"".join(_key(name) + encode(item) for name, item in value.items()) + b"\x00\x00\x09"


def encode(value: Any) -> bytes:
    """One value: bool, int/float (a number), str, None (null), Undefined, dict (object), EcmaArray,
    list/tuple (strict array)."""
    if isinstance(value, bool):
        return bytes([BOOLEAN, 1 if value else 0])
    if isinstance(value, int | float):
        return bytes([NUMBER]) + struct.pack(">d", float(value))
    if isinstance(value, str):
        return _string(value)
    if value is None:
        return bytes([NULL])
    if isinstance(value, Undefined):
        return bytes([UNDEFINED])
    if isinstance(value, EcmaArray):
        return bytes([ECMA_ARRAY]) + struct.pack(">I", len(value)) + _properties(value)
    if isinstance(value, dict):
        return bytes([OBJECT]) + _properties(value)
    if isinstance(value, list | tuple):
        return bytes([STRICT_ARRAY]) + struct.pack(">I", len(value)) + b"".join(encode(v) for v in value)
    raise Amf0Error(f"cannot encode {type(value).__name__} as AMF0")


def encode_all(*values: Any) -> bytes:
    return b"".join(encode(value) for value in values)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def take(self, count: int) -> bytes:
        end = self.position + count
        if end > len(self.data):
            raise Amf0Error("truncated AMF0 value")
        chunk = self.data[self.position : end]
        self.position = end
        return chunk

    def text(self, length_bytes: int) -> str:
        length = int.from_bytes(self.take(length_bytes), "big")
        try:
            return self.take(length).decode()
        except UnicodeDecodeError as exc:
            raise Amf0Error("AMF0 string is not UTF-8") from exc

    def properties(self, depth: int, into: dict[str, Any]) -> dict[str, Any]:
        while True:
            name = self.text(2)
            if not name and self.data[self.position : self.position + 1] == bytes([OBJECT_END]):
                self.position += 1
                return into
            into[name] = self.value(depth + 1)

    def value(self, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise Amf0Error("AMF0 nested too deep")
        marker = self.take(1)[0]
        if marker == NUMBER:
            number: float = struct.unpack(">d", self.take(8))[0]
            return number
        if marker == BOOLEAN:
            return self.take(1)[0] != 0
        if marker == STRING:
            return self.text(2)
        if marker == LONG_STRING:
            return self.text(4)
        if marker == OBJECT:
            return self.properties(depth, {})
        if marker == NULL:
            return None
        if marker == UNDEFINED:
            return UNDEFINED_VALUE
        if marker == ECMA_ARRAY:
            self.take(4)  # the count is a hint only; the end marker ends the array
            return self.properties(depth, EcmaArray())
        if marker == STRICT_ARRAY:
            count = struct.unpack(">I", self.take(4))[0]
            if count > len(self.data) - self.position:
                raise Amf0Error("AMF0 array longer than its message")
            return [self.value(depth + 1) for _ in range(count)]
        if marker == DATE:
            millis: float = struct.unpack(">d", self.take(8))[0]
            self.take(2)
            return millis
        raise Amf0Error(f"unsupported AMF0 marker 0x{marker:02x}")


def decode_all(data: bytes) -> list[Any]:
    """Every value of a command or data message, in order."""
    reader = _Reader(data)
    values = []
    while reader.position < len(data):
        values.append(reader.value())
    return values
