"""A fake ESI on loopback, speaking ESI's wire protocol for the market routes.

`GET /markets/{region_id}/orders/?order_type=all|buy|sell&page=N` serves a region's book in pages of
`page_size` orders with the headers real ESI sends: `X-Pages`, `Expires`, `Last-Modified` (the same on
every page of a generation), `Date`, a per-page `ETag` (304 on a matching `If-None-Match`), the
floating-window rate limit of the route's group (`X-Ratelimit-Group`, `-Limit` `N/15m`, `-Remaining`,
`-Used`, charged 2xx: 2, 3xx: 1, 4xx: 5, 5xx and 429: 0; an empty bucket answers 429 with `Retry-After`),
or, for routes on the older scheme, the error limit (`X-ESI-Error-Limit-Remain`, `-Reset`; past it every
route answers 420). `GET /status/` is such an older route.

`GET /universe/stations/{station_id}/` (public) and `GET /universe/structures/{structure_id}/` (a bearer
token whose character can dock there: `grant_structure(who, id)`, `who` the token itself or, once
`verify` is set (CharacterEsi sets it), the token's character id, the token holding
`esi-universe.read_structures.v1`; else 403, no or a bad token 401)
answer what `stations` / `structures` hold in ESI's shape, with `Date`, `Expires` (`location_expires_in`
on), an `ETag` (304 on a matching `If-None-Match`) and the error-limit headers; unknown ids 404. Faults
match them by `region=<location id>`.

Tests drive it through the `FakeEsi` control object: `set_book` / `generate_book` (a new generation),
`inject(...)` faults (a status N times, a malformed body, a hang, a regeneration or an `X-Pages` change
after N page requests), `advance(seconds)` of its clock, and read `requests` (everything asked, with
the headers that matter). `python -m tests.fakes.market.esi --port P --pages N --page-size M` serves a
generated book of region 10000002 for the bench and browser tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import math
import random
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ORDERS_GROUP = "market-orders"
HISTORY_GROUP = "market-history"
WINDOW_SECONDS = 900
JITA_REGION = 10000002
JITA_STATION = 60003760
JITA_SYSTEM = 30000142
STRUCTURES_SCOPE = "esi-universe.read_structures.v1"
RANGES = ("station", "solarsystem", "region", "1", "5", "10", "20", "40")


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)


@dataclass
class Generation:
    """One regeneration of a region's book, pre-serialised page by page."""

    orders: list[dict[str, Any]]
    page_size: int
    last_modified: datetime
    expires_at: datetime
    bodies: list[bytes] = field(default_factory=list)
    etags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        chunks = [self.orders[i : i + self.page_size] for i in range(0, len(self.orders), self.page_size)]
        for chunk in chunks or [[]]:
            body = orjson.dumps(chunk)
            self.bodies.append(body)
            self.etags.append(f'"{hashlib.sha256(body).hexdigest()[:32]}"')

    @property
    def pages(self) -> int:
        return len(self.bodies)


@dataclass
class Fault:
    """One injected misbehaviour. kind: `status` (answer `status`), `malformed` (a 200 with a cut body),
    `hang` (answer after `seconds`), `regenerate` (a new generation of the book is made just before
    answering), `pages` (answer with `X-Pages` = `pages`). Matches requests of `region`/`page` (None: any)
    after `after` matching ones went by, `times` times."""

    kind: str
    times: int = 1
    page: int | None = None
    region: int | None = None
    after: int = 0
    status: int = 503
    seconds: float = 0.0
    pages: int = 0
    seen: int = 0


@dataclass
class Seen:
    """One request as the fake received it."""

    path: str
    page: int | None
    status: int
    if_none_match: str | None
    user_agent: str | None
    compatibility_date: str | None
    authorization: str | None


def make_orders(
    region_id: int,
    *,
    count: int,
    seed: int = 1,
    types: int = 200,
    locations: Sequence[tuple[int, int]] = ((JITA_STATION, JITA_SYSTEM),),
    issued: datetime | None = None,
) -> list[dict[str, Any]]:
    """A deterministic book of `count` orders in ESI's shape, sorted by order id."""
    rng = random.Random(seed * 1_000_003 + region_id)
    issued = issued or datetime(2026, 1, 1, tzinfo=UTC)
    orders = []
    for index in range(count):
        type_id = 34 + rng.randrange(types)
        is_buy = rng.random() < 0.45
        location_id, system_id = locations[rng.randrange(len(locations))]
        base = 5.0 + (type_id % 97) * 13.0
        price = round(base * (0.9 + rng.random() * 0.1 if is_buy else 1.0 + rng.random() * 0.1), 2)
        total = rng.randrange(1, 5000)
        orders.append(
            {
                "duration": 90,
                "is_buy_order": is_buy,
                "issued": (issued + timedelta(minutes=rng.randrange(0, 60 * 24 * 30))).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
                "location_id": location_id,
                "min_volume": 1,
                "order_id": 6_000_000_000 + region_id % 1000 * 10_000_000 + index,
                "price": price,
                "range": rng.choice(RANGES) if is_buy else "region",
                "system_id": system_id,
                "type_id": type_id,
                "volume_remain": rng.randrange(1, total + 1),
                "volume_total": total,
            }
        )
    return orders


class FakeEsi:
    """The fake's state and controls; `app` is its ASGI application."""

    def __init__(self, *, rate_limit: int = 3000, error_limit: int = 100, expires_in: float = 300.0) -> None:
        self.rate_limit = rate_limit
        self.error_limit = error_limit
        self.expires_in = expires_in
        self.offset = timedelta()
        self.frozen: datetime | None = None
        self.epoch = 0
        """Counts resets: a request that hung across one is not recorded for the next test."""
        self.books: dict[int, Generation] = {}
        self.generators: dict[int, tuple[int, int, int]] = {}
        self.faults: list[Fault] = []
        self.requests: list[Seen] = []
        self.spends: dict[str, deque[tuple[float, int]]] = {}
        self.errors: deque[float] = deque()
        self.legacy_orders = False
        """True: the orders route is on the error-limit scheme instead of a rate-limit group."""
        self.histories: dict[tuple[int, int], list[dict[str, Any]]] = {}
        """(region, type) -> the days `/markets/{region}/history/?type_id=` answers (none: an empty list)."""
        self.stations: dict[int, dict[str, Any]] = {}
        self.structures: dict[int, dict[str, Any]] = {}
        self.structure_access: dict[str | int, set[int]] = {}
        """Bearer token (or character id, with `verify`) -> the structures its character may see."""
        self.verify: Callable[[str], tuple[int, list[str]] | None] | None = None
        """token -> (character id, scopes), or None for a token SSO did not issue."""
        self.location_expires_in = 3600.0
        self.app = Starlette(
            routes=[
                Route("/markets/{region_id:int}/orders/", self.orders),
                Route("/markets/{region_id:int}/history/", self.history),
                Route("/status/", self.status),
                Route("/universe/stations/{location_id:int}/", self.station),
                Route("/universe/structures/{location_id:int}/", self.structure),
            ]
        )

    # --- controls ---------------------------------------------------------------------------------------

    def now(self) -> datetime:
        return (self.frozen or datetime.now(UTC)) + self.offset

    def freeze(self, moment: datetime) -> None:
        """Stop the fake's clock at `moment`; from then on only `advance` moves it."""
        self.frozen = moment
        self.offset = timedelta()

    def advance(self, seconds: float) -> None:
        """Move the fake's clock (Date, Expires, Last-Modified, the limit windows) forward."""
        self.offset += timedelta(seconds=seconds)

    def reset(self) -> None:
        self.epoch += 1
        self.offset = timedelta()
        self.frozen = None
        self.books.clear()
        self.generators.clear()
        self.faults.clear()
        self.requests.clear()
        self.spends.clear()
        self.errors.clear()
        self.legacy_orders = False
        self.histories.clear()
        self.stations.clear()
        self.structures.clear()
        self.structure_access.clear()
        self.verify = None
        self.location_expires_in = 3600.0

    def set_book(self, region_id: int, orders: list[dict[str, Any]], *, page_size: int = 1000) -> Generation:
        """Make `orders` the region's book: a new generation, modified now, expiring in `expires_in`."""
        now = self.now().replace(microsecond=0)
        previous = self.books.get(region_id)
        if previous is not None:  # Last-Modified has whole seconds: two generations never share one
            now = max(now, previous.last_modified + timedelta(seconds=1))
        generation = Generation(orders, page_size, now, now + timedelta(seconds=self.expires_in))
        self.books[region_id] = generation
        return generation

    def generate_book(
        self, region_id: int, *, pages: int, page_size: int, seed: int = 1, **kw: Any
    ) -> Generation:
        """A deterministic book of `pages` full pages; `regenerate` faults make the next seed's book."""
        self.generators[region_id] = (pages, page_size, seed)
        orders = make_orders(region_id, count=pages * page_size, seed=seed, **kw)
        return self.set_book(region_id, orders, page_size=page_size)

    def regenerate(self, region_id: int) -> Generation:
        """A new generation: the next seed's book when generated, else the same orders re-dated."""
        if region_id in self.generators:
            pages, page_size, seed = self.generators[region_id]
            return self.generate_book(region_id, pages=pages, page_size=page_size, seed=seed + 1)
        current = self.books[region_id]
        return self.set_book(region_id, [dict(o, price=o["price"] + 0.01) for o in current.orders],
                             page_size=current.page_size)  # fmt: skip

    def _current(self, region_id: int) -> Generation | None:
        """The region's book as served now: past its Expires, a generated book is regenerated (the next
        seed), a set one is served again unchanged (same Last-Modified and ETags) with a new Expires."""
        book = self.books.get(region_id)
        if book is None or self.now() < book.expires_at:
            return book
        if region_id in self.generators:
            return self.regenerate(region_id)
        book.expires_at = self.now().replace(microsecond=0) + timedelta(seconds=self.expires_in)
        return book

    def inject(self, kind: str, **options: Any) -> Fault:
        fault = Fault(kind, **options)
        self.faults.append(fault)
        return fault

    def grant_structure(self, who: str | int, structure_id: int) -> None:
        """The character of `who` (a token, or a character id with `verify`) may dock at `structure_id`."""
        self.structure_access.setdefault(who, set()).add(structure_id)

    def location_requests(self) -> list[Seen]:
        return [seen for seen in self.requests if seen.path.startswith("/universe/")]

    def page_requests(self, region_id: int | None = None) -> list[Seen]:
        prefix = "/markets/" if region_id is None else f"/markets/{region_id}/"
        return [seen for seen in self.requests if seen.path.startswith(prefix)]

    # --- limits -----------------------------------------------------------------------------------------

    def _clock(self) -> float:
        return self.now().timestamp()

    def _bucket(self, group: str) -> deque[tuple[float, int]]:
        spends = self.spends.setdefault(group, deque())
        cutoff = self._clock() - WINDOW_SECONDS
        while spends and spends[0][0] <= cutoff:
            spends.popleft()
        return spends

    def _rate_headers(self, group: str, status: int) -> dict[str, str]:
        cost = 0 if status == 429 or status >= 500 else 5 if status >= 400 else 1 if status >= 300 else 2
        spends = self._bucket(group)
        if cost:
            spends.append((self._clock(), cost))
        remaining = self.rate_limit - sum(tokens for _, tokens in spends)
        return {
            "X-Ratelimit-Group": group,
            "X-Ratelimit-Limit": f"{self.rate_limit}/15m",
            "X-Ratelimit-Remaining": str(max(remaining, 0)),
            "X-Ratelimit-Used": str(cost),
        }

    def _error_window(self) -> tuple[int, int]:
        """Errors left in this minute's window, and the seconds until it resets."""
        now = self._clock()
        window_start = now - now % 60
        while self.errors and self.errors[0] < window_start:
            self.errors.popleft()
        reset = math.ceil(window_start + 60 - now)
        return self.error_limit - len(self.errors), max(reset, 1)

    def _error_headers(self, status: int) -> dict[str, str]:
        if status >= 400 and status != 420:
            self.errors.append(self._clock())
        remain, reset = self._error_window()
        return {"X-ESI-Error-Limit-Remain": str(max(remain, 0)), "X-ESI-Error-Limit-Reset": str(reset)}

    def _limited(self, group: str | None) -> Response | None:
        """420 while the error limit is spent (every route); 429 while the group's bucket is empty."""
        remain, reset = self._error_window()
        if remain <= 0:
            return self._json(
                {"error": "This software has exceeded the error limit for ESI."},
                420,
                {"X-ESI-Error-Limit-Remain": "0", "X-ESI-Error-Limit-Reset": str(reset)},
            )
        if group is not None:
            spends = self._bucket(group)
            if self.rate_limit - sum(tokens for _, tokens in spends) < 2:
                retry_after = int(spends[0][0] + WINDOW_SECONDS - self._clock()) + 1
                headers = self._rate_headers(group, 429)
                headers["Retry-After"] = str(max(retry_after, 1))
                return self._json({"error": "Too many requests"}, 429, headers)
        return None

    # --- routes -----------------------------------------------------------------------------------------

    def _json(self, body: Any, status: int, headers: dict[str, str]) -> Response:
        return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")

    def _fault(self, region: int | None, page: int | None) -> Fault | None:
        for fault in self.faults:
            if fault.times <= 0:
                continue
            if fault.region is not None and fault.region != region:
                continue
            if fault.page is not None and fault.page != page:
                continue
            fault.seen += 1
            if fault.seen <= fault.after:
                continue
            fault.times -= 1
            return fault
        return None

    async def orders(self, request: Request) -> Response:
        region_id = int(request.path_params["region_id"])
        page_text = request.query_params.get("page", "1")
        page = int(page_text) if page_text.isdigit() else 0
        epoch = self.epoch
        response = await self._orders(request, region_id, page)
        if epoch == self.epoch:
            self.record(request, response, page)
        return response

    def record(self, request: Request, response: Response, page: int | None) -> None:
        """Keep a request this fake answered in `requests` (the routes leave out one a reset cut off)."""
        self.requests.append(
            Seen(
                path=request.url.path,
                page=page,
                status=response.status_code,
                if_none_match=request.headers.get("if-none-match"),
                user_agent=request.headers.get("user-agent"),
                compatibility_date=request.headers.get("x-compatibility-date"),
                authorization=request.headers.get("authorization"),
            )
        )

    async def _orders(self, request: Request, region_id: int, page: int) -> Response:
        group = None if self.legacy_orders else ORDERS_GROUP

        def limit_headers(status: int) -> dict[str, str]:
            return self._error_headers(status) if group is None else self._rate_headers(group, status)

        limited = self._limited(group)
        if limited is not None:
            return limited
        fault = self._fault(region_id, page)
        if fault is not None and fault.kind == "hang":
            await asyncio.sleep(fault.seconds)
        if fault is not None and fault.kind == "regenerate":
            self.regenerate(region_id)
        if fault is not None and fault.kind == "status":
            return self._json(
                {"error": f"fake status {fault.status}"}, fault.status, limit_headers(fault.status)
            )
        book = self._current(region_id)
        if book is None:
            return self._json({"error": "Region not found"}, 404, limit_headers(404))
        order_type = request.query_params.get("order_type", "all")
        if order_type not in ("all", "buy", "sell") or page < 1 or page > book.pages:
            return self._json({"error": "Requested page does not exist!"}, 404, limit_headers(404))
        now = self.now()
        headers = {
            "Date": http_date(now),
            "Expires": http_date(book.expires_at),
            "Last-Modified": http_date(book.last_modified),
            "X-Pages": str(fault.pages if fault is not None and fault.kind == "pages" else book.pages),
            "ETag": book.etags[page - 1],
            "Cache-Control": "public",
        }
        if request.headers.get("if-none-match") == book.etags[page - 1]:
            return Response(b"", 304, headers={**headers, **limit_headers(304)})
        body = book.bodies[page - 1]
        if fault is not None and fault.kind == "malformed":
            body = body[: max(len(body) // 2, 1)]
        return Response(body, 200, headers={**headers, **limit_headers(200)}, media_type="application/json")

    async def history(self, request: Request) -> Response:
        """`GET /markets/{region_id}/history/?type_id=`: the days set for the type, expiring at the next
        11:05 UTC as ESI's do; the same faults as the orders route (matched by region)."""
        region_id = int(request.path_params["region_id"])
        type_text = request.query_params.get("type_id", "")
        self.requests.append(
            Seen(
                path=request.url.path,
                page=None,
                status=200,
                if_none_match=None,
                user_agent=request.headers.get("user-agent"),
                compatibility_date=request.headers.get("x-compatibility-date"),
                authorization=None,
            )
        )
        limited = self._limited(HISTORY_GROUP)
        if limited is not None:
            return limited
        fault = self._fault(region_id, None)
        if fault is not None and fault.kind == "hang":
            await asyncio.sleep(fault.seconds)
        if fault is not None and fault.kind == "status":
            return self._json(
                {"error": f"fake status {fault.status}"},
                fault.status,
                self._rate_headers(HISTORY_GROUP, fault.status),
            )
        if not type_text.isdigit():
            return self._json({"error": "type_id is required"}, 400, self._rate_headers(HISTORY_GROUP, 400))
        now = self.now()
        regenerated = now.replace(hour=11, minute=5, second=0, microsecond=0)
        expires = regenerated if regenerated > now else regenerated + timedelta(days=1)
        headers = {"Date": http_date(now), "Expires": http_date(expires), "Cache-Control": "public"}
        body = orjson.dumps(self.histories.get((region_id, int(type_text)), []))
        if fault is not None and fault.kind == "malformed":
            body = body[: max(len(body) // 2, 1)]
        return Response(
            body,
            200,
            headers={**headers, **self._rate_headers(HISTORY_GROUP, 200)},
            media_type="application/json",
        )

    async def status(self, request: Request) -> Response:
        limited = self._limited(None)
        if limited is not None:
            return limited
        fault = self._fault(None, None)
        status = fault.status if fault is not None and fault.kind == "status" else 200
        body = {"players": 23_000, "server_version": "2900000", "start_time": "2026-01-01T11:05:00Z"}
        return self._json(body if status == 200 else {"error": "fake"}, status, self._error_headers(status))

    async def station(self, request: Request) -> Response:
        station_id = int(request.path_params["location_id"])
        return await self._location(request, station_id, self.stations.get(station_id), needs_token=False)

    async def structure(self, request: Request) -> Response:
        structure_id = int(request.path_params["location_id"])
        return await self._location(
            request, structure_id, self.structures.get(structure_id), needs_token=True
        )

    async def _location(
        self, request: Request, location_id: int, item: dict[str, Any] | None, *, needs_token: bool
    ) -> Response:
        epoch = self.epoch
        response = await self._location_answer(request, location_id, item, needs_token=needs_token)
        if epoch == self.epoch:
            self.record(request, response, None)
        return response

    async def _location_answer(
        self, request: Request, location_id: int, item: dict[str, Any] | None, *, needs_token: bool
    ) -> Response:
        limited = self._limited(None)
        if limited is not None:
            return limited
        fault = self._fault(location_id, None)
        if fault is not None and fault.kind == "hang":
            await asyncio.sleep(fault.seconds)
        if fault is not None and fault.kind == "status":
            return self._json({"error": f"fake status {fault.status}"}, fault.status,
                              self._error_headers(fault.status))  # fmt: skip
        if needs_token:
            authorization = request.headers.get("authorization", "")
            if not authorization.startswith("Bearer "):
                return self._json({"error": "authentication failure"}, 401, self._error_headers(401))
            token = authorization.removeprefix("Bearer ")
            who: str | int = token
            if self.verify is not None:
                verified = self.verify(token)
                if verified is None:
                    return self._json({"error": "authentication failure"}, 401, self._error_headers(401))
                who, scopes = verified
                if STRUCTURES_SCOPE not in scopes:
                    return self._json({"error": "token not valid for scope"}, 403, self._error_headers(403))
            if location_id not in self.structure_access.get(who, set()):
                return self._json({"error": "Forbidden"}, 403, self._error_headers(403))
        if item is None:
            what = "Structure" if needs_token else "Station"
            return self._json({"error": f"{what} not found"}, 404, self._error_headers(404))
        now = self.now().replace(microsecond=0)
        body = orjson.dumps(item)
        etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
        headers = {
            "Date": http_date(now),
            "Expires": http_date(now + timedelta(seconds=self.location_expires_in)),
            "ETag": etag,
            "Cache-Control": "private" if needs_token else "public",
            **self._error_headers(200),
        }
        if request.headers.get("if-none-match") == etag:
            return Response(b"", 304, headers=headers)
        if fault is not None and fault.kind == "malformed":
            body = body[: max(len(body) // 2, 1)]
        return Response(body, 200, headers=headers, media_type="application/json")


@contextlib.asynccontextmanager
async def serving(fake: FakeEsi, port: int = 0) -> AsyncIterator[str]:
    """Serve `fake` on 127.0.0.1 in this event loop until the block ends; yields its base URL."""
    config = uvicorn.Config(
        fake.app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        date_header=False,
        server_header=False,
        access_log=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the fake ESI stopped before it started")
            await asyncio.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{bound}"
    finally:
        server.should_exit = True
        await task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--region", type=int, default=JITA_REGION)
    parser.add_argument("--pages", type=int, default=5)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--rate-limit", type=int, default=1_000_000)
    args = parser.parse_args()
    fake = FakeEsi(rate_limit=args.rate_limit)
    fake.generate_book(args.region, pages=args.pages, page_size=args.page_size)

    async def run() -> None:
        async with serving(fake, args.port) as url:
            print(url, flush=True)
            await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
