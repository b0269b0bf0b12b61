"""Full-text search of chat messages: the query per database engine, and the rules around it.

- SQLite searches its FTS5 index `chat_messages_fts` (kept current by triggers, so edits and deletes are
  re-indexed in the same transaction) and pages by rowid, which is sending order: FTS5 hands out matches
  newest first, so a page stops after `limit` readable hits instead of sorting every match. With an
  author filter it walks that author's messages instead.
- PostgreSQL matches `to_tsvector('simple', text)`. When the planner's statistics expect few matches
  in all, they come from the GIN expression index and are sorted; when many, the newest readable
  messages are tested in turn until a page is full (bounded, falling back to the index). Pages go by
  id (UUIDv7, so newest first).
- MariaDB has no text index: every word of the query must occur in the text (LIKE '%word%', case- and
  accent-insensitive through the column's collation, and matching inside words). It scans the readable
  channels' messages newest first, so it suits small installs, not millions of messages.

Every engine quotes the user's words (an FTS5 phrase, plainto_tsquery, letters and digits only for LIKE),
so query syntax typed by a user (`"`, `*`, NEAR, OR, `text:` column filters) is searched for, never run.
The last word, if it is a plain word of PREFIX_MIN_LENGTH or more characters, also matches as a prefix
("hel" finds "hello"); shorter prefixes would merge the index entries of too many words.

Only what the searcher may read is searched: the channels they are a member of and the public channels
of their tenant, less the channels they are banned from (a tenant-wide ban leaves nothing), never a
deleted message. Thread replies are included.
"""

from __future__ import annotations

import base64
import re
import unicodedata
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import orjson
from pydantic import BaseModel, Field
from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    Select,
    Uuid,
    any_,
    column,
    func,
    literal,
    literal_column,
    or_,
    select,
    table,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from pentad.apps.chat import repository, schemas
from pentad.apps.chat.actions.context import ChatContext
from pentad.apps.chat.models import ChatChannel, ChatMember, ChatMessage
from pentad.core.errors import BadRequest

PREFIX_MIN_LENGTH = 3
QUERY_MAX_LENGTH = 256
INDEX_ROWS_MAX = 5000
"""PostgreSQL: up to this many estimated matches, fetch them all through the index; above, scan newest
first. Either way about as many rows are read (matches, or ~limit / share of matching rows)."""
SCAN_ROWS_MAX = 10_000
ESTIMATE_SQL = "EXPLAIN (FORMAT JSON) SELECT 1 FROM chat_messages WHERE to_tsvector('simple', text) @@ "
ROWID_DIGITS_MAX = 18  # SQLite rowids are 64-bit; a longer number would not even bind
WORD = re.compile(r"[^\W_]+")

FTS = table("chat_messages_fts", column("rowid", Integer))
MESSAGE_ROWID = literal_column("chat_messages.rowid", Integer)
SIMPLE: ColumnElement[str] = literal_column("'simple'")


class SearchChannel(BaseModel):
    id: uuid.UUID
    name: str = Field(description="Empty for direct channels.")
    kind: str


class SearchResult(BaseModel):
    message: schemas.Message
    channel: SearchChannel


class SearchPage(BaseModel):
    results: list[SearchResult] = Field(description="Newest first.")
    has_more: bool
    next_before: str | None = Field(
        description="Pass as `before` for the next (older) page; null on the last page."
    )


@dataclass(frozen=True)
class SearchTerms:
    """A query cut into whitespace-separated terms that each hold a letter or digit."""

    terms: tuple[str, ...]
    prefix: str | None
    """The last term when it is matched as a word prefix too (then it is not in `terms`)."""

    @property
    def words(self) -> list[str]:
        return [w for term in (*self.terms, self.prefix or "") for w in WORD.findall(term)]


@dataclass(frozen=True)
class SearchFilters:
    channel_id: uuid.UUID | None = None
    author_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None
    has_attachment: bool | None = None


def parse_query(raw: str) -> SearchTerms:
    if not raw.strip():
        raise BadRequest("Say what to search for: the query `q` is empty.", code="empty_query")
    # Control and format characters cannot be meant (NUL never gets here: the core's NUL guard refuses it).
    cleaned = "".join(" " if unicodedata.category(c).startswith("C") else c for c in raw)
    terms = [term for term in cleaned.split() if WORD.search(term)]
    if not terms:
        raise BadRequest("The query has no letters or digits to search for.", code="empty_query")
    prefix = None
    if WORD.fullmatch(terms[-1]) and len(terms[-1]) >= PREFIX_MIN_LENGTH:
        prefix = terms.pop()
    return SearchTerms(tuple(terms), prefix)


def fts5_expression(terms: SearchTerms) -> str:
    """An FTS5 MATCH expression: each term a quoted phrase (implicitly ANDed), the prefix term starred."""
    phrases = ['"' + term.replace('"', '""') + '"' for term in terms.terms]
    if terms.prefix is not None:
        phrases.append(f'"{terms.prefix}"*')
    return " ".join(phrases)


# ---------------------------------------------------------------- cursors


def _encode_cursor(position: str) -> str:
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except ValueError:
        raise _bad_cursor() from None


def _bad_cursor() -> BadRequest:
    return BadRequest("`before` is not a cursor this search returned.", code="bad_cursor")


def _rowid_cursor(cursor: str) -> int:
    position = _decode_cursor(cursor)
    if not position.isdigit() or len(position) > ROWID_DIGITS_MAX:
        raise _bad_cursor()
    return int(position)


def _id_cursor(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(_decode_cursor(cursor))
    except ValueError:
        raise _bad_cursor() from None


# ---------------------------------------------------------------- SQL

Scope = uuid.UUID | Select[uuid.UUID]
"""One channel the caller was found to read, or a query of the channel ids they may read."""


def readable_channel_ids(
    tenant_id: uuid.UUID, user_id: uuid.UUID, banned: set[uuid.UUID]
) -> Select[uuid.UUID]:
    """The channels a user may search: theirs and the tenant's public ones, less those banned from."""
    member_of = select(ChatMember.channel_id).where(ChatMember.user_id == user_id)
    query = select(ChatChannel.id).where(
        ChatChannel.tenant_id == tenant_id,
        or_(ChatChannel.kind == "public", ChatChannel.id.in_(member_of)),
    )
    if banned:
        query = query.where(ChatChannel.id.not_in(banned))
    return query


def _conditions(
    message: type[ChatMessage],
    scope: Scope | list[uuid.UUID],
    filters: SearchFilters,
    before_id: uuid.UUID | None = None,
) -> list[ColumnElement[bool]]:
    if isinstance(scope, uuid.UUID):
        in_scope = message.channel_id == scope
    elif isinstance(scope, list):
        in_scope = message.channel_id == any_(literal(scope, ARRAY(Uuid())))
    else:
        in_scope = message.channel_id.in_(scope)
    where = [in_scope, message.deleted_at.is_(None)]
    if filters.author_id is not None:
        where.append(message.user_id == filters.author_id)
    if filters.since is not None:
        where.append(message.created_at >= filters.since)
    if filters.until is not None:
        where.append(message.created_at < filters.until)
    if filters.has_attachment is not None:
        where.append(message.has_attachments.is_(filters.has_attachment))
    if before_id is not None:
        where.append(message.id < before_id)
    return where


async def find_messages(
    session: AsyncSession,
    terms: SearchTerms,
    scope: Scope,
    filters: SearchFilters,
    *,
    before: str | None,
    limit: int,
) -> tuple[list[ChatMessage], str | None]:
    """Up to `limit` matching messages, newest first, and the cursor of the next page (None: no more)."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        where = _conditions(ChatMessage, scope, filters)
        return await _find_sqlite(
            session, terms, where, by_author=filters.author_id is not None, before=before, limit=limit
        )
    before_id = _id_cursor(before) if before is not None else None
    if dialect == "postgresql":
        return await _find_postgresql(session, terms, scope, filters, before_id, limit)
    # Letters and digits only: nothing LIKE would read as a wildcard or an escape.
    words = [ChatMessage.text.like(f"%{word}%") for word in terms.words]
    where = [*_conditions(ChatMessage, scope, filters, before_id), *words]
    return _page(await _newest(session, ChatMessage, where, limit + 1), limit)


async def _find_sqlite(
    session: AsyncSession,
    terms: SearchTerms,
    where: list[ColumnElement[bool]],
    *,
    by_author: bool,
    before: str | None,
    limit: int,
) -> tuple[list[ChatMessage], str | None]:
    match = text("chat_messages_fts MATCH :match").bindparams(match=fts5_expression(terms))
    if by_author:
        # One author's messages are few: walk them (user_id index) and look each up in the set of
        # matches, rather than walk every match to find theirs. The unary + keeps SQLite from driving
        # the query by rowid instead.
        rowid = literal_column("+chat_messages.rowid", Integer)
        query = select(ChatMessage, rowid).where(rowid.in_(select(FTS.c.rowid).where(match)), *where)
    else:
        # FTS5 yields matches newest first (ORDER BY rowid DESC is free), so the page ends early.
        rowid = FTS.c.rowid
        query = (
            select(ChatMessage, rowid)
            .select_from(FTS)
            .join(ChatMessage, FTS.c.rowid == MESSAGE_ROWID)
            .where(match, *where)
        )
    if before is not None:
        query = query.where(rowid < _rowid_cursor(before))
    rows = (await session.execute(query.order_by(rowid.desc()).limit(limit + 1))).all()
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = _encode_cursor(str(rows[-1][1])) if more else None
    return [row[0] for row in rows], cursor


async def _find_postgresql(
    session: AsyncSession,
    terms: SearchTerms,
    scope: Scope,
    filters: SearchFilters,
    before_id: uuid.UUID | None,
    limit: int,
) -> tuple[list[ChatMessage], str | None]:
    """One of two plans, chosen by the planner's estimate of how many messages match in all.

    Left to itself the planner often walks the primary key newest first, testing every row, even for
    words that are not common: it reckons nothing for running to_tsvector on each row, which dominates.
    """
    readable: uuid.UUID | list[uuid.UUID]
    if isinstance(scope, uuid.UUID):
        readable = scope
    else:
        # The planner guesses a channel subquery at one row and repeats the index scans per channel;
        # given the ids it estimates right.
        readable = list((await session.execute(scope)).scalars())
        if not readable:
            return [], None
    tsquery, params = _tsquery(terms)
    if await _estimated_matches(session, tsquery, params) <= INDEX_ROWS_MAX:
        found = await _find_in_index(session, tsquery, params, readable, filters, before_id, limit + 1)
        return _page(found, limit)
    # Many matches: test the newest readable messages in turn until the page is full. Bounded, as the
    # estimate counts every channel and the caller's may hold few of the matches.
    window = (
        select(ChatMessage)
        .where(*_conditions(ChatMessage, readable, filters, before_id))
        .order_by(ChatMessage.id.desc())
        .limit(SCAN_ROWS_MAX)
    )
    recent = aliased(ChatMessage, window.subquery())
    found = await _newest(session, recent, [_matches(recent, tsquery, params)], limit + 1)
    if len(found) > limit:
        return _page(found, limit)
    scanned = select(func.count()).select_from(window.with_only_columns(ChatMessage.id).subquery())
    if (await session.execute(scanned)).scalar_one() < SCAN_ROWS_MAX:
        return found, None
    older_than = found[-1].id if found else before_id
    older = await _find_in_index(
        session, tsquery, params, readable, filters, older_than, limit + 1 - len(found)
    )
    return _page(found + older, limit)


def _tsquery(terms: SearchTerms) -> tuple[str, dict[str, str]]:
    """The tsquery as SQL with bind parameters. plainto_tsquery reads only words, whatever the user
    typed; the prefix term is letters and digits (parse_query), so `:*` is all to_tsquery sees. The
    configuration is written out, never bound, or the planner could not match the index expression."""
    parts, params = [], {}
    if terms.terms:
        parts.append("plainto_tsquery('simple', :search_words)")
        params["search_words"] = " ".join(terms.terms)
    if terms.prefix is not None:
        parts.append("to_tsquery('simple', :search_prefix)")
        params["search_prefix"] = f"{terms.prefix}:*"
    return "(" + " && ".join(parts) + ")", params


def _matches(message: type[ChatMessage], tsquery: str, params: dict[str, str]) -> ColumnElement[bool]:
    return func.to_tsvector(SIMPLE, message.text).bool_op("@@")(text(tsquery).bindparams(**params))


async def _estimated_matches(session: AsyncSession, tsquery: str, params: dict[str, str]) -> int:
    """The planner's estimate of matching messages, from the index statistics (EXPLAIN runs nothing)."""
    # Only our SQL is joined here: the user's words are bound parameters.
    explain = text(ESTIMATE_SQL + tsquery).bindparams(**params)
    plan = (await session.execute(explain)).scalar_one()
    if isinstance(plan, str):
        plan = orjson.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


async def _find_in_index(
    session: AsyncSession,
    tsquery: str,
    params: dict[str, str],
    readable: uuid.UUID | list[uuid.UUID],
    filters: SearchFilters,
    before_id: uuid.UUID | None,
    count: int,
) -> list[ChatMessage]:
    """Every match from the GIN index, then filtered and sorted. OFFSET 0 fences the match in, so the
    planner can neither walk the primary key instead nor AND the index with a large channel bitmap."""
    fenced = select(ChatMessage).where(_matches(ChatMessage, tsquery, params)).offset(0).subquery()
    found = aliased(ChatMessage, fenced)
    return await _newest(session, found, _conditions(found, readable, filters, before_id), count)


async def _newest(
    session: AsyncSession, message: type[ChatMessage], where: list[ColumnElement[bool]], count: int
) -> list[ChatMessage]:
    """Newest first by id: ids are UUIDv7, so the primary key is in sending order (to the millisecond)."""
    query = select(message).where(*where).order_by(message.id.desc()).limit(count)
    return list((await session.execute(query)).scalars())


def _page(messages: list[ChatMessage], limit: int) -> tuple[list[ChatMessage], str | None]:
    """A page of `limit` from up to `limit + 1` messages, the extra one saying that there are more."""
    if len(messages) <= limit:
        return messages, None
    return messages[:limit], _encode_cursor(str(messages[limit - 1].id))


async def get_channels(session: AsyncSession, channel_ids: set[uuid.UUID]) -> dict[uuid.UUID, ChatChannel]:
    if not channel_ids:
        return {}
    rows = (await session.execute(select(ChatChannel).where(ChatChannel.id.in_(channel_ids)))).scalars()
    return {channel.id: channel for channel in rows}


# ---------------------------------------------------------------- searching


def _as_utc(moment: datetime | None) -> datetime | None:
    """Times without a zone are taken as UTC, like every time the API returns."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


async def search_messages(
    chat: ChatContext,
    query: str,
    filters: SearchFilters,
    *,
    before: str | None,
    limit: int,
) -> SearchPage:
    """Search the messages the chat actor may read (see the module docstring for the rules)."""
    terms = parse_query(query)
    actor, session = chat.actor, chat.session
    filters = replace(filters, since=_as_utc(filters.since), until=_as_utc(filters.until))
    scope: Scope
    if filters.channel_id is not None:
        # One channel: the same check as reading its history (404 if unseen, 403 if banned).
        scope = (await chat.access(filters.channel_id)).channel.id
    else:
        banned = await repository.banned_channel_ids(session, actor.tenant.id, actor.user_id)
        if None in banned:
            return SearchPage(results=[], has_more=False, next_before=None)
        scope = readable_channel_ids(actor.tenant.id, actor.user_id, {c for c in banned if c is not None})
    messages, cursor = await find_messages(session, terms, scope, filters, before=before, limit=limit)
    channels = await get_channels(session, {m.channel_id for m in messages})
    views = await chat.views.build(messages)
    return SearchPage(
        results=[
            SearchResult(message=view, channel=_channel_ref(channels[view.channel_id])) for view in views
        ],
        has_more=cursor is not None,
        next_before=cursor,
    )


def _channel_ref(channel: ChatChannel) -> SearchChannel:
    return SearchChannel(id=channel.id, name=channel.name, kind=channel.kind)
