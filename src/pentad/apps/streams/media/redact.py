"""Keeping stream keys out of everything the media plane writes: log lines, process arguments, file names.

The media plane never puts a key in a log line on purpose (it logs the camera's public id); `redact` is the
second line of defence for text that came from outside (a publisher's stream name, a client's tcUrl, a
child's stderr), and `redact_processor` applies it to every string of a structlog event."""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

# A stream key (actions/keys.py: psk_ + 43 base64url characters), also when cut or followed by a query.
KEY_PATTERN = re.compile(r"psk_[A-Za-z0-9_-]*")
REDACTED = "psk_[redacted]"
MAX_PEER_TEXT = 200


# The user information of a URL (`rtsp://user:password@camera/…`: an RTSP camera's credentials).
URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s'\"]*@")


def redact(text: str) -> str:
    """`text` with every stream key (or anything shaped like the start of one) and every URL's
    credentials replaced."""
    return URL_CREDENTIALS.sub(r"\1****@", KEY_PATTERN.sub(REDACTED, text))


def peer_text(value: object) -> str:
    """A value a peer sent, fit for a log line: redacted, printable, at most MAX_PEER_TEXT characters."""
    text = redact(str(value))
    text = "".join(char if char.isprintable() else "?" for char in text)
    return text[:MAX_PEER_TEXT]


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list | tuple):
        return type(value)(_scrub(item) for item in value)
    if isinstance(value, dict):
        return {key: _scrub(item) for key, item in value.items()}
    return value


def redact_processor(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: every string in the event, nested ones too, redacted."""
    for name, value in list(event.items()):
        event[name] = _scrub(value)
    return event


LOG_METHODS = frozenset({"debug", "info", "warning", "warn", "error", "exception", "critical", "msg"})


class RedactingLog:
    """A structlog logger whose events are redacted (`redact`) before they are logged: what the media
    plane's supervised children print (ffmpeg names its input, an RTSP URL with credentials) goes through
    it."""

    def __init__(self, log: Any) -> None:
        self._log = log

    def bind(self, **values: Any) -> RedactingLog:
        return RedactingLog(self._log.bind(**_scrub(values)))

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._log, name)
        if name not in LOG_METHODS:
            return method

        def log(event: Any = None, *args: Any, **values: Any) -> Any:
            return method(_scrub(event), *args, **_scrub(values))

        return log
