"""Routes of the chat search feature (being built)."""

from __future__ import annotations

from fastapi import APIRouter

from pentad.core.errors import problem_responses

router = APIRouter(
    prefix="/api/chat",
    tags=["chat"],
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 429),
)
