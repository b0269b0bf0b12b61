"""Cross-app queries: one app answers a read another app asks for, without either importing the other.

The provider declares a query with pydantic models of its input and output and a handler; the caller names
it and passes a plain dict (it cannot import the provider's models), in its own transaction:

    # apps/analytics/spec.py
    PAGE_TRAFFIC = QuerySpec("analytics.page_traffic", PageTrafficIn, PageTrafficOut, page_traffic)
    APP = AppSpec(name="analytics", ..., queries=[PAGE_TRAFFIC])

    # apps/ads/reports.py
    try:
        traffic = await context.query(session, "analytics.page_traffic", {"site": ..., "days": 7})
    except QueryUnavailable:
        traffic = None                      # analytics is installed but not enabled: omit its columns

The core validates the input against the provider's input model (a ValidationError is the caller's bug)
and the handler's answer against its output model, and returns the answer as JSON-able dict. A name whose
app (its first part) is installed but not enabled raises QueryUnavailable (an AppError, 503, for a caller
that does not handle it); a name no enabled app declares otherwise raises UnknownQuery at once: a typo, or
an app that is not installed, as with domain events (core/events.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core.context import AppContext
from pentad.core.errors import ServiceUnavailable

QueryHandler = Callable[[AppContext, AsyncSession, Any], Awaitable[BaseModel]]


@dataclass(frozen=True)
class QuerySpec:
    """A read an app answers for other apps, named `<app>.<what>`: `handler(context, session, input)` gets
    the validated `input` model and returns an `output` model."""

    name: str
    input: type[BaseModel]
    output: type[BaseModel]
    handler: QueryHandler


class UnknownQuery(LookupError):
    """No enabled app declares the query, and its app is not an installed one that is switched off."""


class QueryUnavailable(ServiceUnavailable):
    code = "query_unavailable"

    def __init__(self, name: str) -> None:
        super().__init__(f"The data of {name.partition('.')[0]} is not available: that app is not enabled.")
        self.name = name


class Queries:
    """The queries of the enabled apps; checked when the platform is built."""

    def __init__(self, declared: Iterable[tuple[str, QuerySpec]], *, disabled_apps: Collection[str] = ()):
        self._specs: dict[str, QuerySpec] = {}
        for app, spec in declared:
            if not spec.name.startswith(f"{app}."):
                raise ValueError(f"app {app!r} declares the query {spec.name!r} outside its name space")
            if spec.name in self._specs:
                raise ValueError(f"query {spec.name!r} is declared twice")
            for model in (spec.input, spec.output):
                if not (isinstance(model, type) and issubclass(model, BaseModel)):
                    raise ValueError(f"query {spec.name!r}: input and output must be pydantic models")
            self._specs[spec.name] = spec
        self._disabled_apps = frozenset(disabled_apps)

    @property
    def names(self) -> list[str]:
        return sorted(self._specs)

    def spec(self, name: str) -> QuerySpec:
        spec = self._specs.get(name)
        if spec is not None:
            return spec
        if name.partition(".")[0] in self._disabled_apps:
            raise QueryUnavailable(name)
        raise UnknownQuery(f"no enabled app declares the query {name!r}")

    async def run(
        self,
        context: AppContext,
        session: AsyncSession,
        name: str,
        payload: Mapping[str, Any] | BaseModel,
    ) -> dict[str, Any]:
        spec = self.spec(name)
        raw = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else dict(payload)
        query = spec.input.model_validate(raw)
        answer = await spec.handler(context, session, query)
        checked = spec.output.model_validate(
            answer.model_dump(mode="json") if isinstance(answer, BaseModel) else answer
        )
        result: dict[str, Any] = checked.model_dump(mode="json")
        return result
