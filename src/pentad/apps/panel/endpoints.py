"""The panel REST API (/api/panel): nodes, enrolment tokens, allocations, templates, servers. Thin: each
route builds the caller's PanelContext and makes one action call."""

from __future__ import annotations

from fastapi import APIRouter

from pentad.core.errors import problem_responses

router = APIRouter(
    prefix="/api/panel",
    tags=["panel"],
    responses=problem_responses(400, 401, 403, 404, 409, 422, 429),
)
