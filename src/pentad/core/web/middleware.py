"""The HTTP middleware stack (placeholder; full stack pending)."""

from __future__ import annotations

from fastapi import FastAPI

from pentad.core.db.transaction import TransactionMiddleware
from pentad.core.platform import Platform


def install_middleware(app: FastAPI, platform: Platform) -> None:
    app.add_middleware(TransactionMiddleware, database=platform.database)
