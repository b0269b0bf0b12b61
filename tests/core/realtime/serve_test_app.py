"""`pentad serve` with the realtime test app installed: `python -m tests.core.realtime.serve_test_app`."""

from __future__ import annotations

from pentad import apps
from pentad.cli import main

apps.INSTALLED["rtest"] = apps.InstalledApp("tests.core.realtime.realtime_app:APP")
main(["serve"], prog_name="pentad")
