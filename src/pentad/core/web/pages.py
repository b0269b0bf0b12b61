"""Server-rendered pages (placeholder; the web shell is pending)."""

from __future__ import annotations

from fastapi import FastAPI

from pentad.core.platform import Platform


def install_pages(app: FastAPI, platform: Platform) -> None:
    """Mount the core's pages and static files, and each enabled app's pages."""
