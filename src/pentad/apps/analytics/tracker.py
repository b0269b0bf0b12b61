"""The tracker script, built once per process: the download extensions filled in, comments and
indentation stripped, hashed, gzipped. Served at a hashed URL cached for a year (immutable) and at the
stable `/analytics/js/script.js` (PENTAD_ANALYTICS__TRACKER_MAX_AGE, ETag) that site owners embed."""

from __future__ import annotations

import functools
import gzip
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).parent / "static" / "tracker.js"
EXTENSION = re.compile(r"^[a-z0-9]{1,10}$")
STRING = re.compile(r'("(?:[^"\\\n]|\\.)*")')
PUNCTUATION = re.compile(r"\s*([{}()\[\];,:=<>!&|?+*/])\s*")


@dataclass(frozen=True)
class Tracker:
    body: bytes
    gzipped: bytes
    digest: str
    """The first 8 hex digits of the body's SHA-256: its version in the hashed URL and the ETag."""

    @property
    def path(self) -> str:
        return f"/analytics/js/t.{self.digest}.js"

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'


def minify(source: str) -> str:
    """Comment lines and indentation out, spaces around punctuation squeezed outside double-quoted
    strings (the source is written for this: no `//` after code, no spaces in regular expressions,
    statements end with `;` or `}`)."""
    lines = [line.strip() for line in source.splitlines()]
    code = "\n".join(line for line in lines if line and not line.startswith("//"))
    parts = STRING.split(code)
    for index in range(0, len(parts), 2):  # odd parts are string literals, kept as they are
        parts[index] = PUNCTUATION.sub(r"\1", parts[index]).replace("\n", "")
    return "".join(parts)


@functools.cache
def build(extensions: tuple[str, ...]) -> Tracker:
    clean = [ext.lower() for ext in extensions if EXTENSION.fullmatch(ext.lower())]
    source = SOURCE.read_text().replace("__EXT__", "|".join(clean) or "$^")
    body = minify(source).encode()
    return Tracker(body, gzip.compress(body, 9, mtime=0), hashlib.sha256(body).hexdigest()[:8])
