"""Message search of the chat client API: GET /api/chat/search."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from pentad.apps.chat.actions.context import ChatContext
from pentad.apps.chat.dependencies import chat_context
from pentad.apps.chat.search import QUERY_MAX_LENGTH, SearchFilters, SearchPage, search_messages
from pentad.core.errors import problem_responses

router = APIRouter(
    prefix="/api/chat",
    tags=["chat"],
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 429),
)


@router.get(
    "/search",
    response_model=SearchPage,
    summary="Search messages you can read",
    description="Full-text search over the channels you are a member of and your tenant's public "
    "channels (not those you are banned from), thread replies included, deleted messages never. "
    "Every word must match; the last word also matches as a prefix (3+ letters). Newest first: page "
    "with `before` = the previous page's `next_before`. A blank query is refused (400 `empty_query`).",
)
async def search(
    chat: Annotated[ChatContext, Depends(chat_context)],
    q: Annotated[str, Query(max_length=QUERY_MAX_LENGTH, description="Words to find.")] = "",
    channel_id: Annotated[uuid.UUID | None, Query(description="Only in this channel.")] = None,
    author_id: Annotated[uuid.UUID | None, Query(description="Only by this chat user.")] = None,
    since: Annotated[datetime | None, Query(description="Sent at or after (UTC if no zone).")] = None,
    until: Annotated[datetime | None, Query(description="Sent before (UTC if no zone).")] = None,
    has_attachment: Annotated[bool | None, Query(description="With (true) or without files.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[str | None, Query(max_length=200, description="`next_before` of a page.")] = None,
) -> SearchPage:
    filters = SearchFilters(channel_id, author_id, since, until, has_attachment)
    return await search_messages(chat, q, filters, before=before or None, limit=limit)
