"""ESI's budgets, as this process sees them: the floating-window rate limit per route group, the error
limit, and the lanes that share them.

ESI (developers.eveonline.com, "Rate Limiting") gives each route group a bucket of tokens over a
floating window, announced on every answer: `X-Ratelimit-Group`, `X-Ratelimit-Limit` (`150/15m`),
`X-Ratelimit-Remaining`, `X-Ratelimit-Used`. A request spends by its answer's status (2xx: 2, 3xx: 1, 4xx:
5, 5xx: 0, 429: 0), and spent tokens come back one window later. A spent bucket answers 429 with
`Retry-After`. Routes not yet under that scheme keep the older error limit (`X-ESI-Error-Limit-Remain`,
`-Reset` seconds): past it, every route answers 420 until the reset.

The governor keeps, per group, the last announced balance and a ledger of what our own requests spent,
so it knows when tokens come back; in-flight requests reserve their worst success cost, so a burst of
concurrent page fetches cannot overshoot. Two lanes share a group:

- `ingest` (the platform's scheduled market refreshes) stops while fewer than `ingest_floor` x limit
  tokens are left, so an unknown other consumer on the same bucket still has some;
- `user` (work a user asked for) stops earlier, below `reserve_fraction` x limit, so users together never
  eat the ingest's share; and each user may spend at most `user_share` x limit per window, so one user's
  action cannot burn what the others need.

A 429 blocks its group until `Retry-After`; a 420, or an error balance at `error_floor` or below, blocks
every group until the error reset. Blocks are shared with the platform's other processes through the
platform cache (Redis at scale) when one is given.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from pentad.apps.market.esi.errors import EsiBudgetExhausted, EsiErrorLimited, EsiRateLimited

_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
SUCCESS_COST = 2
"""What a request reserves while in flight: the cost of a 2xx, the most an answer we hope for costs."""
BLOCK_KEY = "market:esi:block:"
"""Cache key prefix of shared blocks, by scope (`Governor.blocked_until`)."""


def token_cost(status: int) -> int:
    """Tokens ESI charges for an answer with this status."""
    if status == 429 or status >= 500:
        return 0
    if status >= 400:
        return 5
    if status >= 300:
        return 1
    return SUCCESS_COST


def parse_limit(value: str) -> tuple[int, float] | None:
    """`150/15m` -> (150 tokens, 900 s); None when it does not read as a limit."""
    match = _LIMIT.match(value)
    if match is None:
        return None
    tokens, amount, unit = int(match[1]), int(match[2]), match[3]
    if tokens <= 0 or amount <= 0:
        return None
    return tokens, float(amount * _UNIT_SECONDS[unit])


def route_key(path: str) -> str:
    """The route a path belongs to, ids replaced (`/markets/10000002/orders/` -> `/markets/{id}/orders/`):
    which group a route is in is learned from answers, before the first one the route has no group."""
    return re.sub(r"/\d+(?=/|$)", "/{id}", path)


@dataclass(frozen=True)
class Lane:
    """Who a request is for: the platform's ingest, or a user (by id)."""

    kind: str
    user: str | None = None

    @classmethod
    def ingest(cls) -> Lane:
        return cls("ingest")

    @classmethod
    def for_user(cls, user_id: object) -> Lane:
        return cls("user", str(user_id))


INGEST = Lane.ingest()


class SharedBlocks(Protocol):
    """The part of the platform cache the governor uses (core/cache.py `Cache`)."""

    async def get_many(self, keys: list[str]) -> list[object]: ...

    async def set(self, key: str, value: object, ttl: float | None = None) -> None: ...


@dataclass
class _Spend:
    at: float
    tokens: int
    user: str | None


@dataclass
class GroupBudget:
    """One route group's bucket as last announced, and our spends since."""

    name: str
    limit: int
    window: float
    remaining: int
    seen_at: float
    spends: deque[_Spend] = field(default_factory=deque)
    in_flight: int = 0
    refill_at: float | None = None
    """After a 429: when its Retry-After said tokens are back (the announced balance is stale then)."""

    def forget_old(self, now: float) -> None:
        while self.spends and self.spends[0].at + self.window <= now - self.window:
            self.spends.popleft()

    def available(self, now: float) -> int:
        """Tokens left now: the announced balance, plus our spends that came back since it was announced,
        minus what requests in flight reserved."""
        returned = sum(s.tokens for s in self.spends if self.seen_at < s.at + self.window <= now)
        return min(self.limit, self.remaining + returned) - self.in_flight

    def user_spent(self, user: str, now: float) -> int:
        return sum(s.tokens for s in self.spends if s.user == user and s.at + self.window > now)

    def wait_for(self, tokens_needed: int, now: float, user: str | None = None) -> float:
        """Seconds until `tokens_needed` more of our spends (of `user`, when given) have come back; a whole
        window when the ledger cannot tell (someone else spent the bucket)."""
        freed = 0
        for spend in self.spends:
            if user is not None and spend.user != user:
                continue
            back = spend.at + self.window
            if back <= now:
                continue
            freed += spend.tokens
            if freed >= tokens_needed:
                return back - now
        return self.window


@dataclass(frozen=True)
class Admission:
    """A reservation for one request; hand it back to `Governor.record` with the answer."""

    group: str | None
    lane: Lane
    reserved: int


class Governor:
    """ESI budgets for this process: admit a request (or say how long to wait), record its answer."""

    def __init__(
        self,
        *,
        reserve_fraction: float = 0.2,
        ingest_floor: float = 0.05,
        user_share: float = 0.1,
        error_floor: int = 20,
        shared: SharedBlocks | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 <= ingest_floor <= reserve_fraction < 1:
            raise ValueError("need 0 <= ingest_floor <= reserve_fraction < 1")
        self.reserve_fraction = reserve_fraction
        self.ingest_floor = ingest_floor
        self.user_share = user_share
        self.error_floor = error_floor
        self.shared = shared
        self.clock = clock
        self.groups: dict[str, GroupBudget] = {}
        self.route_groups: dict[str, str] = {}
        self.blocked_until: dict[str, float] = {}
        """Scope -> wall-clock second until which nothing is sent there: `all` (error limit), `any` (a 429
        that named no group), or a group's name."""
        self.error_remain: int | None = None
        self.error_reset_at: float | None = None

    # --- admission ------------------------------------------------------------------------------------

    async def admit(self, path: str, lane: Lane) -> Admission:
        """Reserve the budget for one request to `path` in `lane`, or raise the ESI error that says how
        long to wait (EsiErrorLimited, EsiRateLimited, EsiBudgetExhausted)."""
        now = self.clock()
        group_name = self.route_groups.get(route_key(path))
        await self._load_shared(group_name)
        until = self.blocked_until.get("all", 0.0)
        if until > now:
            raise EsiErrorLimited("ESI error limit reached", retry_after=until - now)
        until = self.blocked_until.get("any", 0.0)
        if until > now:
            raise EsiRateLimited("ESI answered 429 without naming a group", retry_after=until - now)
        if group_name is not None:
            until = self.blocked_until.get(group_name, 0.0)
            if until > now:
                raise EsiRateLimited(f"ESI rate limit of {group_name} reached", retry_after=until - now)
            budget = self.groups.get(group_name)
            if budget is not None:
                self._check_budget(budget, lane, now)
                budget.in_flight += SUCCESS_COST
                return Admission(group_name, lane, SUCCESS_COST)
        return Admission(group_name, lane, 0)

    def _check_budget(self, budget: GroupBudget, lane: Lane, now: float) -> None:
        budget.forget_old(now)
        if budget.refill_at is not None and now >= budget.refill_at:
            return  # a 429's wait is over: probe, the answer announces the balance again
        fraction = self.ingest_floor if lane.kind == "ingest" else self.reserve_fraction
        floor = math.ceil(fraction * budget.limit)
        available = budget.available(now)
        if available - SUCCESS_COST < floor:
            wait = budget.wait_for(floor + SUCCESS_COST - available, now)
            error = EsiRateLimited if lane.kind == "ingest" else EsiBudgetExhausted
            raise error(
                f"ESI budget of {budget.name} kept in reserve ({available} of {budget.limit} left)",
                retry_after=max(wait, 1.0),
            )
        if lane.user is not None:
            share = max(SUCCESS_COST, math.floor(self.user_share * budget.limit))
            spent = budget.user_spent(lane.user, now)
            if spent + SUCCESS_COST > share:
                wait = budget.wait_for(spent + SUCCESS_COST - share, now, user=lane.user)
                raise EsiBudgetExhausted(
                    f"this user's share of the ESI budget of {budget.name} is spent",
                    retry_after=max(wait, 1.0),
                )

    def release(self, admission: Admission) -> None:
        """Give back a reservation whose request never got an answer (a transport error)."""
        budget = self.groups.get(admission.group) if admission.group else None
        if budget is not None:
            budget.in_flight = max(0, budget.in_flight - admission.reserved)

    # --- answers --------------------------------------------------------------------------------------

    async def record(
        self, admission: Admission, path: str, status: int, headers: Mapping[str, str]
    ) -> float | None:
        """Learn from an answer's headers; returns the seconds to wait before the next request when the
        answer says to stop (429 / 420 / error floor), else None."""
        now = self.clock()
        self.release(admission)
        group_name = headers.get("x-ratelimit-group")
        if group_name:
            self.route_groups[route_key(path)] = group_name
            self._note_group(group_name, headers, status, admission.lane, now)
        wait: float | None = None
        remain = _int(headers.get("x-esi-error-limit-remain"))
        reset = _float(headers.get("x-esi-error-limit-reset"))
        if remain is not None:
            self.error_remain = remain
            self.error_reset_at = now + (reset or 0.0)
        if status == 420 or (remain is not None and remain <= self.error_floor):
            wait = max(reset or 0.0, 1.0)
            await self._block("all", now + wait)
        if status == 429:
            retry_after = _float(headers.get("retry-after"))
            wait = max(retry_after if retry_after is not None else 60.0, wait or 0.0, 1.0)
            await self._block(group_name or "any", now + wait)
        return wait

    def _note_group(self, name: str, headers: Mapping[str, str], status: int, lane: Lane, now: float) -> None:
        parsed = parse_limit(headers.get("x-ratelimit-limit", ""))
        remaining = _int(headers.get("x-ratelimit-remaining"))
        used = _int(headers.get("x-ratelimit-used"))
        budget = self.groups.get(name)
        if parsed is not None and remaining is not None:
            limit, window = parsed
            if budget is None:
                budget = self.groups[name] = GroupBudget(name, limit, window, remaining, now)
            else:
                budget.limit, budget.window, budget.remaining, budget.seen_at = limit, window, remaining, now
            if status == 429:
                retry_after = _float(headers.get("retry-after"))
                budget.refill_at = now + (retry_after if retry_after is not None else window)
            else:
                budget.refill_at = None
        if budget is not None:
            tokens = used if used is not None else token_cost(status)
            if tokens > 0:
                budget.spends.append(_Spend(now, tokens, lane.user))

    async def _block(self, scope: str, until: float) -> None:
        if until <= self.blocked_until.get(scope, 0.0):
            return
        self.blocked_until[scope] = until
        if self.shared is not None:
            await self.shared.set(BLOCK_KEY + scope, until, ttl=max(until - self.clock(), 1.0))

    async def _load_shared(self, group: str | None) -> None:
        if self.shared is None:
            return
        scopes = ["all", "any"] if group is None else ["all", "any", group]
        values = await self.shared.get_many([BLOCK_KEY + scope for scope in scopes])
        for scope, value in zip(scopes, values, strict=True):
            if isinstance(value, int | float) and value > self.blocked_until.get(scope, 0.0):
                self.blocked_until[scope] = float(value)

    def snapshot(self) -> dict[str, object]:
        """What the governor knows, for status pages and logs."""
        now = self.clock()
        return {
            "groups": {
                name: {"limit": b.limit, "window": b.window, "available": b.available(now)}
                for name, b in self.groups.items()
            },
            "error_remain": self.error_remain,
            "blocked": {scope: until - now for scope, until in self.blocked_until.items() if until > now},
        }


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
