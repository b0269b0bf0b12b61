"""A frame counter drawn into a synthetic test picture, and read back from a decoded frame: what
glass-to-glass latency is measured with (bench/streams_latency.py). The writer notes when each numbered
frame left it; whoever decodes the stream later reads the number and subtracts.

The stamp: BITS blocks of BLOCK x BLOCK luma pixels in a row at the picture's top left, black (16) for 0 and
white (235) for 1: a 24-bit frame number, Gray-coded (consecutive numbers differ in one block), then a
CRC-8 of them. Big flat blocks survive 4:2:0 H.264 at the qualities a camera uses; the reader averages the
middle of each block and rejects a stamp whose check fails (a frame torn by a lost packet). Frames are
planar YUV 4:2:0 (`yuv420p`): what ffmpeg takes as `-f rawvideo -pix_fmt yuv420p` and what decoders give.
"""

from __future__ import annotations

BLOCK = 16
COUNTER_BITS = 24
CHECK_BITS = 8
BITS = COUNTER_BITS + CHECK_BITS
BLACK = 16
WHITE = 235
BACKGROUND = 96
MAX_NUMBER = (1 << COUNTER_BITS) - 1


def _check(gray: int) -> int:
    """CRC-8 (polynomial 0x07) of the 24 counter bits: any one flipped block is caught."""
    crc = 0xFF  # not 0: a black picture is no stamp
    for shift in (16, 8, 0):
        crc ^= (gray >> shift) & 0xFF
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def bits_of(number: int) -> list[int]:
    """The stamp's blocks for frame `number` (0 ≤ number ≤ MAX_NUMBER), most significant first."""
    if not 0 <= number <= MAX_NUMBER:
        raise ValueError(f"frame number out of range: {number}")
    gray = number ^ (number >> 1)
    word = (gray << CHECK_BITS) | _check(gray)
    return [(word >> (BITS - 1 - i)) & 1 for i in range(BITS)]


def number_of(bits: list[int]) -> int | None:
    """The frame number of these blocks, None when the check fails."""
    if len(bits) != BITS:
        return None
    word = 0
    for bit in bits:
        word = (word << 1) | bit
    gray, check = word >> CHECK_BITS, word & 0xFF
    if _check(gray) != check:
        return None
    number = 0
    while gray:
        number ^= gray
        gray >>= 1
    return number


class StampWriter:
    """Raw yuv420p frames of `width` x `height`, each carrying its number."""

    def __init__(self, width: int, height: int) -> None:
        if width < BITS * BLOCK or height < BLOCK or width % 2 or height % 2:
            raise ValueError(f"a stamped picture needs an even size of at least {BITS * BLOCK}x{BLOCK}")
        self.width = width
        self.height = height
        self._rest = bytes([BACKGROUND]) * (width * (height - BLOCK))
        self._tail = bytes([BACKGROUND]) * (width - BITS * BLOCK)
        self._chroma = bytes([128]) * (width // 2 * (height // 2) * 2)
        self._blocks = (bytes([BLACK]) * BLOCK, bytes([WHITE]) * BLOCK)

    @property
    def frame_size(self) -> int:
        return self.width * self.height * 3 // 2

    def frame(self, number: int) -> bytes:
        row = b"".join(self._blocks[bit] for bit in bits_of(number)) + self._tail
        return row * BLOCK + self._rest + self._chroma


def read_luma(luma: bytes | memoryview, stride: int) -> int | None:
    """The frame number stamped into a luma plane (rows of `stride` bytes), None when there is none."""
    bits = []
    middle = BLOCK // 2
    for i in range(BITS):
        x = i * BLOCK + middle
        total = 0
        for dy in (-2, 0, 2):
            start = (middle + dy) * stride + x - 2
            total += sum(luma[start : start + 5])
        bits.append(1 if total / 15 >= (BLACK + WHITE) / 2 else 0)
    return number_of(bits)
