"""The browser tests' app: only static files, a test page at /static/rtpage/index.html that follows a topic
through /static/js/realtime.js. The topics are the realtime tests' (tests/core/realtime/realtime_app.py)."""

from __future__ import annotations

from pathlib import Path

from pentad.core.apps import AppSpec

APP = AppSpec(name="rtpage", title="Realtime page test", static_dir=Path(__file__).parent / "realtime_page")
