"""Structured logging: structlog for our code, the same pipeline for the standard library's loggers.

Every line carries the context bound with structlog.contextvars (the request id during a request), and
values of keys that look like credentials are masked before anything is written.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from pentad.core.config import LogSettings

HANDLER_NAME = "pentad"
MASK = "********"
SENSITIVE_KEY_PARTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "cookie",
    "api_key",
    "apikey",
    "api-key",
)


@lru_cache(maxsize=1024)
def is_sensitive_key(key: str) -> bool:
    lowered = key.lower()
    return any(part in lowered for part in SENSITIVE_KEY_PARTS)


def _masked(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            key: MASK if isinstance(key, str) and is_sensitive_key(key) else _masked(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_masked(item) for item in value]
    return value


def mask_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Replace the values of password-, token-, secret-, cookie- and authorization-like keys, at any depth."""
    for key, value in event_dict.items():
        if is_sensitive_key(key):
            event_dict[key] = MASK
        elif isinstance(value, Mapping | list | tuple):
            event_dict[key] = _masked(value)
    return event_dict


def _json_line(value: Any, **options: Any) -> str:
    return orjson.dumps(value, default=options.get("default", str)).decode()


def configure_logging(settings: LogSettings, *, stream: TextIO | None = None) -> None:
    """Send structlog and standard-library logging through one handler writing to `stream` (stdout).

    Safe to call again: the previous handler is replaced, never duplicated.
    """
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        mask_secrets,
    ]
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if settings.json_format:
        final += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer(_json_line)]
    else:
        final.append(structlog.dev.ConsoleRenderer())
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=final))

    root = logging.getLogger()
    for existing in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.level)
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # EdgeMiddleware (core/web/middleware.py) writes one access line per request, with its id and route.
    logging.getLogger("uvicorn.access").disabled = True

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Cached loggers would keep their processors and slip past structlog.testing.capture_logs.
        cache_logger_on_first_use=False,
    )
