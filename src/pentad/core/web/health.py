"""Health and metrics routes (placeholder until the full implementation lands)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
