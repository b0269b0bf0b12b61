"""A paginated ESI resource (`X-Pages`) fetched as one consistent generation.

ESI regenerates a paginated resource (a region's order book) as a whole, every page with the same
`Last-Modified`, and serves it until `Expires` (developers.eveonline.com, "Pagination" and "Best
Practices"). A fetch that straddles a regeneration mixes two books: orders missing or counted twice.
So (1) page 1 is asked first, with the ETag it had in the previous snapshot: a 304 whose `Last-Modified`
(if any) is the stored one means the book did not change, and nothing more is asked; (2) a first page
that expires within `expiry_margin` seconds is not used: wait past `Expires` and start again; (3) pages
2..N go out concurrently (`page_concurrency`), each with its own previous ETag (a 304 page is "the same as
in the previous snapshot"); (4) every fetched page must carry page 1's `Last-Modified` and `X-Pages`, else
the whole fetch starts again, at most `inconsistent_restarts` times, then EsiInconsistentPages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Generic, TypeVar

import structlog

from pentad.apps.market.esi.client import CacheState, EsiClient, EsiResponse, parse_json
from pentad.apps.market.esi.errors import EsiInconsistentPages, EsiMalformed
from pentad.apps.market.esi.governor import INGEST, Lane

logger = structlog.get_logger(__name__)

T = TypeVar("T")
PageParse = Callable[[int, bytes], T]
"""Turns page N's body into data (ValueError, TypeError or KeyError when it is malformed)."""


def json_page(page: int, body: bytes) -> Any:
    return parse_json(body)


@dataclass(frozen=True)
class PreviousPages:
    """What the last stored generation said: page -> ETag, and its Last-Modified and Expires."""

    etags: Mapping[int, str] = field(default_factory=dict)
    last_modified: datetime | None = None
    expires_at: datetime | None = None


@dataclass
class PagedResult(Generic[T]):
    """One generation. `not_modified`: page 1 answered 304 for the stored generation (nothing else asked;
    `pages` is then the stored count, 0 when unknown). `data[page]` is the parsed page, or None for a page
    that answered 304 (same as in the previous generation)."""

    not_modified: bool
    pages: int
    last_modified: datetime | None
    expires_at: datetime | None
    etags: dict[int, str]
    data: dict[int, T | None]
    restarts: int = 0

    @property
    def unchanged_pages(self) -> list[int]:
        return sorted(page for page, value in self.data.items() if value is None)


async def fetch_pages(
    client: EsiClient,
    path: str,
    *,
    params: Mapping[str, str | int] | None = None,
    previous: PreviousPages | None = None,
    lane: Lane = INGEST,
    parse: PageParse[T] = json_page,
    token: str | None = None,
) -> PagedResult[T]:
    """Every page of `path` from one generation (see the module's doc); raises EsiError subclasses."""
    previous = previous or PreviousPages()
    config = client.config
    restarts = 0
    expiry_waits = 0
    while True:
        first = await client.get(
            path,
            params=_with_page(params, 1),
            state=CacheState(previous.etags.get(1), previous.expires_at, previous.last_modified),
            lane=lane,
            parse=partial(parse, 1),
            token=token,
        )
        if first.not_modified and (
            first.last_modified is None
            or previous.last_modified is None
            or first.last_modified == previous.last_modified
        ):
            return PagedResult(
                not_modified=True,
                pages=len(previous.etags),
                last_modified=previous.last_modified,
                expires_at=first.expires_at or previous.expires_at,
                etags=dict(previous.etags),
                data={},
                restarts=restarts,
            )
        now = client.now()
        if (
            first.expires_at is not None
            and (first.expires_at - now).total_seconds() < config.expiry_margin
            and expiry_waits < config.inconsistent_restarts
        ):
            expiry_waits += 1
            await client.sleep(max((first.expires_at - now).total_seconds(), 0.0) + 1.0)
            continue
        pages = first.pages or 1
        results: dict[int, EsiResponse[T]] = {1: first}
        semaphore = asyncio.Semaphore(config.page_concurrency)

        async def one(page: int, semaphore: asyncio.Semaphore = semaphore) -> tuple[int, EsiResponse[T]]:
            async with semaphore:
                etag = previous.etags.get(page)
                answer = await client.get(
                    path,
                    params=_with_page(params, page),
                    state=CacheState(etag) if etag else None,
                    lane=lane,
                    parse=partial(parse, page),
                    token=token,
                    ignore_expires=True,
                )
                return page, answer

        tasks = [asyncio.create_task(one(page)) for page in range(2, pages + 1)]
        try:
            for page, answer in await asyncio.gather(*tasks):
                results[page] = answer
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        problem = _inconsistency(first, results, pages)
        if problem is None:
            return PagedResult(
                not_modified=False,
                pages=pages,
                last_modified=first.last_modified,
                expires_at=first.expires_at,
                etags={page: answer.etag for page, answer in results.items() if answer.etag},
                data={page: answer.data for page, answer in sorted(results.items())},
                restarts=restarts,
            )
        restarts += 1
        logger.info("esi_pages_inconsistent", path=path, problem=problem, restart=restarts)
        if restarts > config.inconsistent_restarts:
            raise EsiInconsistentPages(
                f"ESI {path}: {problem}, {restarts} times", retry_after=config.expiry_margin + 1.0
            )


def _inconsistency(first: EsiResponse[T], results: Mapping[int, EsiResponse[T]], pages: int) -> str | None:
    for page, answer in sorted(results.items()):
        if answer.pages is not None and answer.pages != pages:
            return f"page {page} says X-Pages {answer.pages}, page 1 said {pages}"
        if answer.not_modified:
            continue
        if answer.data is None:
            raise EsiMalformed(f"page {page} answered without a body")
        if answer.last_modified != first.last_modified:
            return f"page {page} has another Last-Modified than page 1"
    return None


def _with_page(params: Mapping[str, str | int] | None, page: int) -> dict[str, str | int]:
    return {**(params or {}), "page": page}
