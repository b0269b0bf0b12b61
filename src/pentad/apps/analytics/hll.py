"""Visitor sketches: how many distinct visitors a set of rollup buckets holds.

A sketch is exact while it holds at most EXACT_LIMIT visitors (a sorted set of 64-bit hashes), then a
HyperLogLog with p = 12 (4,096 one-byte registers): its standard error is 1.04 / sqrt(4096) ≈ 1.6 %. Small
sites and single buckets stay exact; a merge of exact sketches stays exact (the union is counted), a merge
with any HyperLogLog is one (register-wise maximum). Pure Python without per-register loops: a
register-wise maximum is a few big-integer operations over the 4,096 registers packed into one integer
(SWAR: ranks are below 128, so each one-byte lane compares with its high bit as the guard), and a count
reads each rank's number of registers with `bytes.count`.
"""

from __future__ import annotations

import binascii
import hashlib
import math
import struct
from collections.abc import Iterable
from typing import Any

P = 12
M = 1 << P
EXACT_LIMIT = 128
_ALPHA = 0.7213 / (1 + 1.079 / M)
_EXACT, _DENSE = b"E", b"H"
STANDARD_ERROR = 1.04 / math.sqrt(M)
"""≈ 0.01625: the relative standard error of a HyperLogLog estimate."""
_MAX_RANK = 64 - P + 1
_GUARDS = int.from_bytes(b"\x80" * M, "little")
"""The high bit of every one-byte lane of the registers read as one integer."""


def visitor_hash(visitor_id: int) -> int:
    """A well-mixed unsigned 64-bit hash of a (signed 63-bit) visitor id."""
    digest = hashlib.blake2b(struct.pack("<q", visitor_id), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class Sketch:
    """A distinct-count sketch of 64-bit hashes: exact up to EXACT_LIMIT, HyperLogLog beyond."""

    __slots__ = ("exact", "registers")

    def __init__(self) -> None:
        self.exact: set[int] | None = set()
        self.registers: bytearray | None = None

    @classmethod
    def of(cls, visitor_ids: Iterable[int]) -> Sketch:
        sketch = cls()
        for visitor in visitor_ids:
            sketch.add_hash(visitor_hash(visitor))
        sketch.compact()
        return sketch

    def add_hash(self, value: int) -> None:
        """Add a hash. Exact sets may grow past the limit here; `compact` (or `to_bytes`) folds them."""
        if self.exact is not None:
            self.exact.add(value)
        else:
            assert self.registers is not None
            _set_register(self.registers, value)

    def compact(self) -> None:
        """Turn an exact set of more than EXACT_LIMIT hashes into registers."""
        if self.exact is not None and len(self.exact) > EXACT_LIMIT:
            self._to_dense()

    def _to_dense(self) -> None:
        registers = bytearray(M)
        for value in self.exact or ():
            _set_register(registers, value)
        self.exact, self.registers = None, registers

    def merge(self, other: Sketch) -> None:
        """Union in place. Exact with exact stays exact (call `compact` to store it)."""
        if other.exact is not None:
            for value in other.exact:
                self.add_hash(value)
            return
        assert other.registers is not None
        if self.exact is not None:
            self._to_dense()
        assert self.registers is not None
        self.registers = bytearray(register_max(self.registers, other.registers))

    def count(self) -> int:
        """The number of distinct hashes: exact, or the HyperLogLog estimate (linear counting when small)."""
        if self.exact is not None:
            return len(self.exact)
        assert self.registers is not None
        registers = self.registers
        top = max(registers)
        # sum(2 ** -rank) over the registers, exactly: each rank's register count, scaled by 2 ** _MAX_RANK
        scaled = sum(registers.count(rank) << (_MAX_RANK - rank) for rank in range(top + 1))
        total = scaled / (1 << _MAX_RANK)
        estimate = _ALPHA * M * M / total
        zeros = registers.count(0)
        if estimate <= 2.5 * M and zeros:
            estimate = M * math.log(M / zeros)
        return round(estimate)

    def to_bytes(self, *, compact: bool = True) -> bytes:
        """`compact=False` keeps an exact set past EXACT_LIMIT exact (a merge cached as it counts)."""
        if compact:
            self.compact()
        if self.exact is not None:
            ordered = sorted(self.exact)
            return _EXACT + struct.pack(f"<{len(ordered)}Q", *ordered)
        assert self.registers is not None
        return _DENSE + bytes(self.registers)

    def to_text(self, *, compact: bool = True) -> str:
        return binascii.b2a_base64(self.to_bytes(compact=compact), newline=False).decode()

    @classmethod
    def from_text(cls, text: str | None) -> Sketch:
        return cls.from_bytes(binascii.a2b_base64(text) if text else None)

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> Sketch:
        sketch = cls()
        if not raw:
            return sketch
        kind, body = raw[:1], raw[1:]
        if kind == _EXACT:
            sketch.exact = set(struct.unpack(f"<{len(body) // 8}Q", body))
        elif kind == _DENSE and len(body) == M:
            sketch.exact, sketch.registers = None, bytearray(body)
        else:
            raise ValueError("not a visitor sketch")
        return sketch


class StoredSketch(Sketch):
    """A sketch read back with its count beside it (the planner's cached merges): `count` answers without
    decoding; the hashes or registers are decoded from the text when something first needs them (a merge
    into or from it). A breakdown ranks thousands of values and merges new hours into a few."""

    __slots__ = ("_count", "_decoded", "_text")

    def __init__(self, text: str, count: int) -> None:  # `exact` and `registers` stay unset until needed
        self._text = text
        self._count = count
        self._decoded = False

    def __getattr__(self, name: str) -> Any:
        """Only called for an unset slot: `exact` or `registers` before the first decode."""
        if name not in ("exact", "registers"):
            raise AttributeError(name)
        decoded = Sketch.from_text(self._text)
        self.exact, self.registers, self._decoded = decoded.exact, decoded.registers, True
        return getattr(self, name)

    def count(self) -> int:
        return super().count() if self._decoded else self._count


def register_max(mine: bytes | bytearray, other: bytes | bytearray) -> bytes:
    """The register-wise maximum of two dense sketches' registers (each rank below 128)."""
    a, b = int.from_bytes(mine, "little"), int.from_bytes(other, "little")
    a_wins = ((((a | _GUARDS) - b) & _GUARDS) >> 7) * 0xFF  # 0xFF in each lane where a >= b
    return (b ^ ((a ^ b) & a_wins)).to_bytes(M, "little")


def _set_register(registers: bytearray, value: int) -> None:
    index = value >> (64 - P)
    rest = value & ((1 << (64 - P)) - 1)
    rank = (64 - P) - rest.bit_length() + 1
    if rank > registers[index]:
        registers[index] = rank
