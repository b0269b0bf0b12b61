"""Log output as an operator reads it: JSON lines with the request id, credentials never written."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from pentad.core.config import LogSettings
from pentad.core.logging import HANDLER_NAME, MASK, configure_logging, mask_secrets


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """Log output of the test, at INFO, as JSON lines; the usual configuration is restored afterwards."""
    stream = io.StringIO()
    configure_logging(LogSettings(level="INFO", json_format=True), stream=stream)
    yield stream
    configure_logging(LogSettings(level="WARNING", json_format=True))


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_structlog_events_become_json_lines(output: io.StringIO) -> None:
    structlog.get_logger("pentad.test").info("user_created", user="ada", count=3)
    [line] = _lines(output)
    assert line["event"] == "user_created"
    assert line["user"] == "ada"
    assert line["count"] == 3
    assert line["level"] == "info"
    assert line["logger"] == "pentad.test"
    assert "timestamp" in line


def test_standard_library_logs_take_the_same_path(output: io.StringIO) -> None:
    logging.getLogger("uvicorn.error").warning("Started server process [%d]", 42)
    [line] = _lines(output)
    assert line["event"] == "Started server process [42]"
    assert line["level"] == "warning"
    assert line["logger"] == "uvicorn.error"


def test_lines_below_the_level_are_dropped(output: io.StringIO) -> None:
    structlog.get_logger("pentad.test").debug("noise")
    logging.getLogger("some.library").debug("noise")
    assert output.getvalue() == ""


def test_lines_carry_the_bound_request_id(output: io.StringIO) -> None:
    with structlog.contextvars.bound_contextvars(request_id="req-123"):
        structlog.get_logger("pentad.test").info("inside")
        logging.getLogger("sqlalchemy.engine").warning("also inside")
    structlog.get_logger("pentad.test").info("outside")
    inside, also_inside, outside = _lines(output)
    assert inside["request_id"] == "req-123"
    assert also_inside["request_id"] == "req-123"
    assert "request_id" not in outside


def test_credentials_are_masked_in_the_output(output: io.StringIO) -> None:
    structlog.get_logger("pentad.test").info(
        "login_attempt",
        email="ada@example.com",
        password="hunter2-hunter2",
        refresh_token="rt-secret-value",
        headers={"Authorization": "Bearer abc.def.ghi", "Cookie": "pentad_session=s3cr3t", "Accept": "*/*"},
        attempts=[{"api_key": "pak_live_1234"}],
        client_secret="shh",
    )
    text = output.getvalue()
    for secret in ("hunter2-hunter2", "rt-secret-value", "abc.def.ghi", "s3cr3t", "pak_live_1234", "shh"):
        assert secret not in text
    [line] = _lines(output)
    assert line["email"] == "ada@example.com"
    assert line["password"] == MASK
    assert line["refresh_token"] == MASK
    assert line["headers"] == {"Authorization": MASK, "Cookie": MASK, "Accept": "*/*"}
    assert line["attempts"] == [{"api_key": MASK}]


def test_mask_secrets_leaves_other_values_alone() -> None:
    event = {"event": "x", "user_id": 7, "tags": ["a", "b"], "X-API-Key": "k", "session_cookie": "c"}
    assert mask_secrets(None, "info", event) == {
        "event": "x",
        "user_id": 7,
        "tags": ["a", "b"],
        "X-API-Key": MASK,
        "session_cookie": MASK,
    }


def test_exceptions_are_logged_with_their_traceback(output: io.StringIO) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        structlog.get_logger("pentad.test").exception("failed")
    [line] = _lines(output)
    assert "RuntimeError: boom" in line["exception"]


def test_configuring_again_replaces_the_handler(output: io.StringIO) -> None:
    second = io.StringIO()
    configure_logging(LogSettings(level="INFO", json_format=True), stream=second)
    configure_logging(LogSettings(level="INFO", json_format=True), stream=second)
    structlog.get_logger("pentad.test").info("once")
    ours = [handler for handler in logging.getLogger().handlers if handler.get_name() == HANDLER_NAME]
    assert len(ours) == 1
    assert output.getvalue() == ""
    assert len(second.getvalue().splitlines()) == 1


def test_console_format_is_for_people(output: io.StringIO) -> None:
    configure_logging(LogSettings(level="INFO", json_format=False), stream=output)
    structlog.get_logger("pentad.test").info("readable", password="hunter2-hunter2")
    text = output.getvalue()
    assert "readable" in text
    assert not text.startswith("{")
    assert "hunter2-hunter2" not in text


def test_uvicorn_access_lines_are_left_to_our_access_log(output: io.StringIO) -> None:
    logging.getLogger("uvicorn.access").info('127.0.0.1:5000 - "GET / HTTP/1.1" 200')
    assert output.getvalue() == ""
