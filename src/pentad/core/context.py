"""The platform as an app's callbacks see it: the declared public core API.

Credential schemes, topic authorisation and calls, job and event handlers and long-running services get an
`AppContext`, not the running Platform: the shared services an app may use (database, key ring, permission
registry, principal cache, rate limiter, storage, cache with counters, ingest streams, its own Prometheus
series, other apps' queries), its own validated settings, and the few facts of the core's configuration an
app needs (the public base URL, the token issuer, the data folder). The core's
own settings (secrets among them), its hub, job registry and supervisors stay out of reach. Platform
satisfies the protocol, so code that holds the Platform (a request) passes it as it is.

Mail goes through `enqueue_mail` (durable, encrypted, after the commit), realtime messages through
`publish(session, ...)` (or `publish_now(context, ...)` for data that touches no row); grants through
core/auth/grants.py.

Per-process resources an app declares (`AppSpec.resources`: a GeoIP reader, a client pool, an in-memory
registry) are opened once per process after the platform is built and closed at shutdown; callbacks get
them with `context.resource(SPEC)`, typed by the spec, instead of module-level globals.

This module sits low in the core (import-linter keeps it there): it imports only the modules that define
the services it names, never the platform, the apps' contract (AppSpec), the hub or the job worker.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, overload

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core.auth.cache import PrincipalCache
from pentad.core.auth.permissions import PermissionRegistry
from pentad.core.cache import Cache
from pentad.core.config import AppModel, OutboundSettings
from pentad.core.crypto import KeyRing
from pentad.core.db.engine import Database
from pentad.core.metrics import AppMetrics
from pentad.core.ratelimit import RateLimiter
from pentad.core.realtime.relay import Relay
from pentad.core.storage import Storage
from pentad.core.visitors import Visitors

T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class ResourceSpec(Generic[T]):
    """A per-process resource of an app, named `<app>.<what>`: `open(context)` builds it once in every
    process (serve workers, job workers, CLI commands) after the platform is built; `close(value)`, if
    given, releases it at shutdown. Got with `context.resource(SPEC)` (typed T) or by name."""

    name: str
    open: Callable[[AppContext], Awaitable[T]]
    close: Callable[[T], Awaitable[None]] | None = None


class IngestAppender(Protocol):
    """Appending to the enabled apps' buffered ingest streams (core/ingest.py)."""

    async def append(self, stream: str, *rows: BaseModel) -> None:
        """Accept rows durably: fsynced to this process's spool when this returns (UnknownStream when no
        enabled app declares the stream, TypeError for rows of another model)."""
        ...

    def append_nowait(self, stream: str, *rows: BaseModel) -> None:
        """Accept rows: written to the spool (they survive this process) when this returns, fsynced by the
        next group fsync."""
        ...


class MetricsSource(Protocol):
    """Where an app gets its Prometheus series (core/metrics.py)."""

    def for_app(self, app: str) -> AppMetrics:
        """The series of app `app`, every name prefixed `pentad_<app>_`."""
        ...


class AppContext(Protocol):
    """What an app's callback may use of the running platform."""

    @property
    def database(self) -> Database: ...

    @property
    def keyring(self) -> KeyRing: ...

    @property
    def signing_secret(self) -> bytes: ...

    @property
    def permissions(self) -> PermissionRegistry: ...

    @property
    def principals(self) -> PrincipalCache: ...

    @property
    def limiter(self) -> RateLimiter: ...

    @property
    def storage(self) -> Storage: ...

    @property
    def cache(self) -> Cache: ...

    @property
    def metrics(self) -> MetricsSource:
        """`metrics.for_app("<app>")`: the app's own Prometheus series on /metrics."""
        ...

    @property
    def ingest(self) -> IngestAppender:
        """The buffered ingest streams (`AppSpec.ingest`), for jobs and services as for requests."""
        ...

    @property
    def relay(self) -> Relay:
        """Messages and request/reply to the process holding an address (core/realtime/relay.py)."""
        ...

    @property
    def visitors(self) -> Visitors:
        """Visitor facts (daily id, geo, device, bot reason, source) for ingest routes (core/visitors)."""
        ...

    @property
    def base_url(self) -> str:
        """The public URL of this server (PENTAD_SERVER__BASE_URL), for links in mail and push."""
        ...

    @property
    def token_issuer(self) -> str:
        """The `iss` claim of the platform's signed tokens (PENTAD_AUTH__ISSUER)."""
        ...

    @property
    def data_dir(self) -> Path:
        """The node's local state folder (PENTAD_DATA_DIR)."""
        ...

    @property
    def outbound(self) -> OutboundSettings:
        """How requests to URLs users chose go out (PENTAD_OUTBOUND__*, for `netguard.GuardedClient`)."""
        ...

    def app_settings(self, model: type[AppModel]) -> AppModel:
        """The validated settings of the enabled app whose `AppSpec.settings` is `model` (LookupError when
        no enabled app has them)."""
        ...

    @overload
    def resource(self, spec: ResourceSpec[T], /) -> T: ...

    @overload
    def resource(self, spec: str, /) -> Any: ...

    def resource(self, spec: ResourceSpec[Any] | str, /) -> Any:
        """The open value of a per-process resource (`AppSpec.resources`), by its spec or its name
        (LookupError when no enabled app declares it or it is not open in this process)."""
        ...

    async def query(
        self, session: AsyncSession, name: str, payload: Mapping[str, Any] | BaseModel
    ) -> dict[str, Any]:
        """Ask another app's query (`AppSpec.queries`, core/queries.py) in `session`: its answer as a dict.
        QueryUnavailable when its app is installed but not enabled, UnknownQuery when none declares it."""
        ...


class JobContext(Protocol):
    """What a job or event handler gets besides its payload. Handlers own their transactions
    (`context.platform.database.transaction()`)."""

    @property
    def job_id(self) -> uuid.UUID: ...

    @property
    def name(self) -> str: ...

    @property
    def attempt(self) -> int:
        """1 on the first run, 2 on the first retry, ..."""
        ...

    @property
    def max_attempts(self) -> int:
        """Attempts this job gets: when `attempt` equals it and the run fails, the job is dead."""
        ...

    @property
    def platform(self) -> AppContext: ...

    @overload
    def resource(self, spec: ResourceSpec[T], /) -> T: ...

    @overload
    def resource(self, spec: str, /) -> Any: ...

    def resource(self, spec: ResourceSpec[Any] | str, /) -> Any:
        """`platform.resource(spec)`: the open value of a per-process resource."""
        ...

    def secret(self) -> dict[str, Any]:
        """The job's SecretPayload values, decrypted (LookupError when it carries none)."""
        ...

    async def progress(self, fraction: float, message: str | None = None) -> None:
        """Store how far the job got (0 to 1) and publish it on the job's realtime topic. Each call is a
        short write transaction: report meaningful steps, not every item."""
        ...
