"""`pentad serve` with the realtime test apps installed: `python -m tests.browser.serve_realtime_page`."""

from __future__ import annotations

from pentad import apps
from pentad.cli import main

apps.INSTALLED["rtest"] = apps.InstalledApp("tests.core.realtime.realtime_app:APP")
apps.INSTALLED["rtpage"] = apps.InstalledApp("tests.browser.realtime_page_app:APP")
main(["serve"], prog_name="pentad")
