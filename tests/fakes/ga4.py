"""A fake of GA4's Measurement Protocol on loopback, speaking its wire format.

`POST /mp/collect?measurement_id=…&api_secret=…` answers 204 like GA4 (GA4 answers 2xx even for bodies
it discards; the fake records valid bodies in `received` and invalid ones in `discarded`, with the
messages `/debug/mp/collect` would give). `POST /debug/mp/collect` answers 200 with
`{"validationMessages": [{"fieldPath", "description", "validationCode"}]}`, empty when the body is valid.
A request for a measurement id and secret the fake was not given is treated like GA4 treats it: taken and
dropped (204); like GA4's, the validation server checks the body and the measurement id, not the secret.
Tests script failures with `fail_next(status, times)` (e.g. 500 then success).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_EVENTS = 25
MAX_PARAMS = 25
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
RESERVED_PREFIXES = ("_", "firebase_", "ga_", "google_", "gtag.")
RESERVED_EVENTS = frozenset(
    {"ad_activeview", "ad_click", "ad_exposure", "ad_impression", "ad_query", "ad_reward", "adunit_exposure",
     "app_clear_data", "app_exception", "app_install", "app_remove", "app_store_refund", "app_update",
     "app_upgrade", "error", "first_open", "first_visit", "in_app_purchase", "notification_dismiss",
     "notification_foreground", "notification_open", "notification_receive", "os_update", "session_start",
     "user_engagement"}
)  # fmt: skip


def _message(path: str, description: str, code: str) -> dict[str, str]:
    return {"fieldPath": path, "description": description, "validationCode": code}


def validate(body: Any) -> list[dict[str, str]]:
    """The validationMessages GA4's validation server gives for a Measurement Protocol body."""
    if not isinstance(body, dict):
        return [_message("", "Unable to parse Measurement Protocol JSON payload.", "VALUE_INVALID")]
    messages = []
    if not body.get("client_id") and not body.get("app_instance_id"):
        messages.append(_message("client_id", "Measurement requires a client_id.", "VALUE_REQUIRED"))
    events = body.get("events")
    if not isinstance(events, list) or not events:
        messages.append(_message("events", "Measurement requires at least one event.", "VALUE_REQUIRED"))
        return messages
    if len(events) > MAX_EVENTS:
        messages.append(
            _message("events", f"Measurement has more than {MAX_EVENTS} events.", "EXCEEDED_MAX_ENTITIES")
        )
    for index, event in enumerate(events):
        name = event.get("name", "") if isinstance(event, dict) else ""
        if not name or not name[0].isalpha():
            messages.append(
                _message(
                    "events",
                    f"Event at index: [{index}] has invalid name [{name}]. "
                    "Names must start with an alphabetic character.",
                    "NAME_INVALID",
                )
            )
        elif not NAME.fullmatch(name):
            messages.append(
                _message(
                    "events",
                    f"Event at index: [{index}] has invalid name [{name}]. Only alphanumeric characters and "
                    "underscores are allowed, at most 40.",
                    "NAME_INVALID",
                )
            )
        elif name in RESERVED_EVENTS or name.startswith(RESERVED_PREFIXES):
            messages.append(
                _message(
                    "events",
                    f"Event at index: [{index}] has name [{name}] which is reserved.",
                    "NAME_RESERVED",
                )
            )
        params = event.get("params", {}) if isinstance(event, dict) else {}
        if len(params) > MAX_PARAMS:
            messages.append(
                _message(
                    f"events[{index}].params",
                    f"Event at index: [{index}] has more than {MAX_PARAMS} params.",
                    "EXCEEDED_MAX_ENTITIES",
                )
            )
        for key, value in params.items():
            if not NAME.fullmatch(key) or key.startswith(RESERVED_PREFIXES):
                messages.append(
                    _message(f"events[{index}].params", f"Param [{key}] has invalid name.", "NAME_INVALID")
                )
            elif (
                isinstance(value, str) and len(value) > 100 and key not in ("page_location", "page_referrer")
            ):
                messages.append(
                    _message(f"events[{index}].params.{key}", f"Param [{key}] has a value longer than 100.",
                             "VALUE_OUT_OF_BOUNDS")
                )  # fmt: skip
    return messages


@dataclass
class Collected:
    measurement_id: str
    body: dict[str, Any]


@dataclass
class FakeGA4:
    """The server's state: what it took, what it discarded, and the scripted failures."""

    streams: dict[str, str] = field(default_factory=dict)
    """measurement id → API secret: the streams it knows."""
    received: list[Collected] = field(default_factory=list)
    discarded: list[tuple[dict[str, Any], list[dict[str, str]]]] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    requests: int = 0
    port: int = 0

    def fail_next(self, status: int, times: int = 1) -> None:
        """Answer the next `times` requests with `status` (0: answer normally), after those scripted."""
        self.failures.extend([status] * times)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def events(self) -> list[dict[str, Any]]:
        return [event for collected in self.received for event in collected.body["events"]]

    def answer(self, path: str, query: dict[str, list[str]], raw: bytes) -> tuple[int, bytes]:
        self.requests += 1
        status = self.failures.pop(0) if self.failures else 0
        if status:
            return status, b""
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        messages = validate(body)
        measurement = (query.get("measurement_id") or [""])[0]
        secret = (query.get("api_secret") or [""])[0]
        if not measurement:
            messages.append(
                _message("measurement_id", "Measurement requires a measurement_id.", "VALUE_REQUIRED")
            )
        if path == "/debug/mp/collect":
            return 200, json.dumps({"validationMessages": messages}).encode()
        if path != "/mp/collect":
            return 404, b""
        if messages or self.streams.get(measurement) != secret:
            self.discarded.append((body if isinstance(body, dict) else {}, messages))
        else:
            self.received.append(Collected(measurement, body))
        return 204, b""


@contextmanager
def serving(streams: dict[str, str]) -> Iterator[FakeGA4]:
    """A fake GA4 on a free loopback port for the duration of the block."""
    fake = FakeGA4(streams=dict(streams))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            parts = urlsplit(self.path)
            with lock:
                status, body = fake.answer(parts.path, parse_qs(parts.query), raw)
            self.send_response(status)
            if body:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
