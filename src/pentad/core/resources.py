"""Per-process resources of apps (`AppSpec.resources`): opened once in every process, closed at shutdown.

What an app would otherwise keep in a module-level global (a GeoIP reader, a client pool, a registry held in
memory) is a `ResourceSpec` (core/context.py). The platform opens every enabled app's resources in
declaration order once it is built (`pentad serve` and each of its workers, `pentad worker`,
`pentad run-service`, every CLI command run through core/cli_support.py), before jobs, services and ingest
start, and closes them in reverse order at shutdown, after those stopped. A resource that fails to open
stops the process's start (the ones already opened are closed again); one that fails to close is logged and
the others still close.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import structlog

from pentad.core.context import AppContext, ResourceSpec

logger = structlog.get_logger("pentad.resources")


class Resources:
    """The declared resources of the enabled apps and, once opened, their values in this process."""

    def __init__(self, specs: Iterable[ResourceSpec[Any]]) -> None:
        self._specs: dict[str, ResourceSpec[Any]] = {}
        for spec in specs:
            if spec.name in self._specs:
                raise ValueError(f"resource {spec.name!r} is declared twice")
            if "." not in spec.name.strip("."):
                raise ValueError(f"resource {spec.name!r}: name it <app>.<what>")
            self._specs[spec.name] = spec
        self._values: dict[str, Any] = {}
        self._opened = False

    @property
    def names(self) -> list[str]:
        return list(self._specs)

    @property
    def opened(self) -> bool:
        return self._opened

    async def open(self, context: AppContext) -> None:
        """Open every resource once (a second call does nothing). When one fails, those already open are
        closed and the error is raised."""
        if self._opened:
            return
        self._opened = True
        for spec in self._specs.values():
            try:
                self._values[spec.name] = await spec.open(context)
            except BaseException:
                await self.close()
                raise

    async def close(self) -> None:
        """Close the open resources, last opened first; a failing close is logged, the others still run."""
        while self._values:
            name, value = self._values.popitem()
            close = self._specs[name].close
            if close is None:
                continue
            try:
                await close(value)
            except Exception:
                logger.warning("resource_close_failed", resource=name, exc_info=True)
        self._opened = False

    def get(self, spec: ResourceSpec[Any] | str) -> Any:
        name = spec if isinstance(spec, str) else spec.name
        declared = self._specs.get(name)
        if declared is None:
            raise LookupError(f"no enabled app declares the resource {name!r}")
        if not isinstance(spec, str) and spec is not declared:
            raise LookupError(f"the resource {name!r} is declared by another spec of that name")
        if name not in self._values:
            raise LookupError(f"the resource {name!r} is not open in this process")
        return self._values[name]
