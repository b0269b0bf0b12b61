"""The authenticated character routes of the fake ESI (tests/fakes/market/esi.py), as ESI serves them.

`CharacterEsi(fake_esi, verify)` adds to the fake's app:

- `GET /characters/{id}/orders/` (open orders; `is_buy_order` absent when false, cache 1200 s),
- `GET /characters/{id}/orders/history/?page=N` (closed orders with `state` expired|cancelled, `X-Pages`),
- `GET /characters/{id}/wallet/transactions/?from_id=` (the newest `batch` transactions at or below
  `from_id`, newest first; cache 3600 s),
- `GET /characters/{id}/wallet/journal/?page=N` (newest first, `X-Pages`; cache 3600 s),
- `GET /characters/{id}/skills/` (`skills` with active/trained levels, `total_sp`; cache 120 s),
- `GET /characters/{id}/standings/` (`from_id`, `from_type` agent|npc_corp|faction, `standing`; 3600 s).

Each needs `Authorization: Bearer <access token>`: `verify(token)` answers the token's (character id,
scopes) or None (401 `authentication failure`, like an expired or forged token); a token of another
character is 403, a token without the route's scope 403 `token not valid for scope`. Answers carry
`Date`, `Expires`, `Last-Modified`, an `ETag` (304 on `If-None-Match`) and the rate-limit headers of the
route's group (`char-wallet`, `char-detail`, `char-industry`... as ESI names them). `fail(route, status,
times)` injects a status on one route (`orders`, `history`, `transactions`, `journal`, `skills`,
`standings`); `malformed(route)` answers a cut body once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.market.esi import FakeEsi, Seen, http_date

Verify = Callable[[str], tuple[int, list[str]] | None]

SCOPES = {
    "orders": "esi-markets.read_character_orders.v1",
    "history": "esi-markets.read_character_orders.v1",
    "transactions": "esi-wallet.read_character_wallet.v1",
    "journal": "esi-wallet.read_character_wallet.v1",
    "skills": "esi-skills.read_skills.v1",
    "standings": "esi-characters.read_standings.v1",
}
CACHE_SECONDS = {
    "orders": 1200,
    "history": 3600,
    "transactions": 3600,
    "journal": 3600,
    "skills": 120,
    "standings": 3600,
}
GROUPS = {
    "orders": "char-market",
    "history": "char-market",
    "transactions": "char-wallet",
    "journal": "char-wallet",
    "skills": "char-detail",
    "standings": "char-social",
}


@dataclass
class CharacterData:
    """What ESI knows of one character."""

    orders: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    transactions: list[dict[str, Any]] = field(default_factory=list)
    journal: list[dict[str, Any]] = field(default_factory=list)
    skills: dict[int, int] = field(default_factory=dict)
    standings: list[dict[str, Any]] = field(default_factory=list)


def order(
    order_id: int,
    type_id: int,
    price: float,
    *,
    is_buy: bool = False,
    volume_total: int = 100,
    volume_remain: int | None = None,
    location_id: int = 60003760,
    region_id: int = 10000002,
    issued: str = "2026-03-01T12:00:00Z",
    duration: int = 90,
    range_: str = "region",
    state: str | None = None,
) -> dict[str, Any]:
    """An order in ESI's shape (`is_buy_order` only when true, as ESI sends it)."""
    body: dict[str, Any] = {
        "duration": duration,
        "is_corporation": False,
        "issued": issued,
        "location_id": location_id,
        "order_id": order_id,
        "price": price,
        "range": range_,
        "region_id": region_id,
        "type_id": type_id,
        "volume_remain": volume_total if volume_remain is None else volume_remain,
        "volume_total": volume_total,
    }
    if is_buy:
        body["is_buy_order"] = True
        body["escrow"] = round(price * body["volume_remain"], 2)
        body["min_volume"] = 1
    if state is not None:
        body["state"] = state
    return body


class CharacterEsi:
    """The fake's character data and routes (installed on `fake.app`)."""

    def __init__(self, fake: FakeEsi, verify: Verify, *, batch: int = 2500, journal_page: int = 2500) -> None:
        self.fake = fake
        self.verify = verify
        fake.verify = verify  # the structure route checks tokens the same way
        self.batch = batch
        self.journal_page = journal_page
        self.characters: dict[int, CharacterData] = {}
        self.faults: list[tuple[str, int, int]] = []
        self.cut: set[str] = set()
        self.modified = fake.now().replace(microsecond=0)
        self.changed: dict[tuple[int, str], Any] = {}
        base = "/characters/{character_id:int}"
        # One set of character routes per fake: a later CharacterEsi replaces an earlier one's.
        fake.app.router.routes[:] = [
            r for r in fake.app.router.routes if not getattr(r, "path", "").startswith("/characters/")
        ]
        for route, path in (
            ("orders", "/orders/"),
            ("history", "/orders/history/"),
            ("transactions", "/wallet/transactions/"),
            ("journal", "/wallet/journal/"),
            ("skills", "/skills/"),
            ("standings", "/standings/"),
        ):
            fake.app.router.routes.append(Route(base + path, self._handler(route)))

    # controls ------------------------------------------------------------------------------------

    def data(self, character_id: int) -> CharacterData:
        return self.characters.setdefault(character_id, CharacterData())

    def reset(self) -> None:
        self.characters.clear()
        self.faults.clear()
        self.cut.clear()

    def fail(self, route: str, status: int, times: int = 1) -> None:
        self.faults.append((route, status, times))

    def malformed(self, route: str) -> None:
        self.cut.add(route)

    def requests(self, character_id: int | None = None) -> list[Seen]:
        prefix = "/characters/" if character_id is None else f"/characters/{character_id}/"
        return [seen for seen in self.fake.requests if seen.path.startswith(prefix)]

    # routes --------------------------------------------------------------------------------------

    def _handler(self, route: str) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            response = self._answer(route, request)
            page_text = request.query_params.get("page", "1")
            self.fake.record(request, response, int(page_text) if page_text.isdigit() else 0)
            return response

        return handle

    def _json(self, body: Any, status: int, headers: dict[str, str]) -> Response:
        return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")

    def _answer(self, route: str, request: Request) -> Response:
        group = GROUPS[route]
        limited = self.fake._limited(group)
        if limited is not None:
            return limited
        auth = request.headers.get("authorization", "")
        verified = self.verify(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
        if verified is None:
            return self._json({"error": "authentication failure"}, 401, self.fake._rate_headers(group, 401))
        token_character, scopes = verified
        character_id = int(request.path_params["character_id"])
        if token_character != character_id:
            return self._json(
                {"error": "Token is not valid for this character"}, 403, self.fake._rate_headers(group, 403)
            )
        if SCOPES[route] not in scopes:
            return self._json(
                {"error": "token not valid for scope"}, 403, self.fake._rate_headers(group, 403)
            )
        for index, (name, status, times) in enumerate(self.faults):
            if name == route and times > 0:
                self.faults[index] = (name, status, times - 1)
                return self._json(
                    {"error": f"fake status {status}"}, status, self.fake._rate_headers(group, status)
                )
        data = self.data(character_id)
        body, pages = self._body(route, data, request)
        now = self.fake.now().replace(microsecond=0)
        raw = orjson.dumps(body)
        etag = f'"{hashlib.sha256(raw).hexdigest()[:32]}"'
        headers = {
            "Date": http_date(now),
            "Expires": http_date(now + timedelta(seconds=CACHE_SECONDS[route])),
            "Last-Modified": http_date(now),
            "ETag": etag,
            "Cache-Control": "private",
        }
        if pages is not None:
            headers["X-Pages"] = str(pages)
        if request.headers.get("if-none-match") == etag:
            return Response(b"", 304, headers={**headers, **self.fake._rate_headers(group, 304)})
        if route in self.cut:
            self.cut.discard(route)
            raw = raw[: max(len(raw) // 2, 1)]
        return Response(
            raw,
            200,
            headers={**headers, **self.fake._rate_headers(group, 200)},
            media_type="application/json",
        )

    def _body(self, route: str, data: CharacterData, request: Request) -> tuple[Any, int | None]:
        page_text = request.query_params.get("page", "1")
        page = int(page_text) if page_text.isdigit() and int(page_text) >= 1 else 1
        if route == "orders":
            return [{k: v for k, v in o.items() if k != "state"} for o in data.orders], None
        if route == "history":
            rows = data.history[(page - 1) * 1000 : page * 1000]
            return rows, max(1, -(-len(data.history) // 1000))
        if route == "transactions":
            newest_first = sorted(data.transactions, key=lambda t: -int(t["transaction_id"]))
            from_id = request.query_params.get("from_id")
            if from_id is not None and from_id.isdigit():
                newest_first = [t for t in newest_first if int(t["transaction_id"]) <= int(from_id)]
            return newest_first[: self.batch], None
        if route == "journal":
            newest_first = sorted(data.journal, key=lambda j: -int(j["id"]))
            size = self.journal_page
            return newest_first[(page - 1) * size : page * size], max(1, -(-len(newest_first) // size))
        if route == "skills":
            skills = [
                {
                    "skill_id": sid,
                    "active_skill_level": lvl,
                    "trained_skill_level": lvl,
                    "skillpoints_in_skill": 256000 if lvl == 5 else 1000 * lvl,
                }
                for sid, lvl in sorted(data.skills.items())
            ]
            return {"skills": skills, "total_sp": sum(s["skillpoints_in_skill"] for s in skills)}, None
        return data.standings, None
