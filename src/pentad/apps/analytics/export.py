"""CSV export of the dashboard's panels, with the range and filters of the request.

`panel_csv` answers one panel as CSV; `zip_of_panels` answers every panel, one CSV per file, in a ZIP.
The numbers are read first (the request's database session), then the bytes are streamed: the CSV row by
row, the ZIP file by file through a write-only ZIP stream (zipfile writes data descriptors when it cannot
seek), so neither is held whole in memory. Breakdowns export up to EXPORT_ROWS rows.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from datetime import timedelta
from typing import Any, Final, get_args

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import StreamingResponse

from pentad.apps.analytics import query, stats
from pentad.apps.analytics.retention import RawDataExpired
from pentad.core.errors import NotFound

EXPORT_ROWS: Final = 1000
BREAKDOWN_PANELS: Final = get_args(query.Dimension)
"""Every breakdown, in the dashboard's order."""
PANELS: Final = ("aggregate", "timeseries", *BREAKDOWN_PANELS, "goals", "props")
RAW_ONLY: Final = frozenset({"goals", "props"})
"""Panels only raw events answer in a time zone whose midnight is not on a UTC hour (hours do not add up
to its days; the breakdowns read raw events there without a retention check): left out of the ZIP (with
a note) when the raw tier no longer keeps the range."""

Table = tuple[list[str], list[list[Any]]]


async def panel_table(session: AsyncSession, ask: stats.Ask, panel: str) -> Table:
    """The panel's header and rows; NotFound for an unknown panel."""
    if panel == "aggregate":
        top = await stats.aggregate(session, ask)
        return ["metric", "value"], [[name, getattr(top, name)] for name in stats.METRICS]
    if panel == "timeseries":
        series = await stats.timeseries(session, ask)
        return ["start", "visitors", "pageviews"], [
            [p.start.isoformat(), p.visitors, p.pageviews] for p in series.points
        ]
    if panel in BREAKDOWN_PANELS:
        found = await stats.breakdown(session, ask, panel, EXPORT_ROWS)
        return [panel, "visitors", "pageviews", "events"], [
            [r.value, r.visitors, r.pageviews, r.events] for r in found.rows
        ]
    if panel == "goals":
        conversions = await stats.goals(session, ask)
        return ["goal", "visitors", "completions", "conversion_rate", "revenue", "currency"], [
            [g.name, g.visitors, g.completions, g.conversion_rate, g.revenue, g.currency]
            for g in conversions.goals
        ]
    if panel == "props":
        props = await stats.props(session, ask, None, EXPORT_ROWS)
        return ["property", "visitors", "events"], [[r.value, r.visitors, r.events] for r in props.rows]
    raise NotFound(f"No panel {panel[:40]!r}; panels are {', '.join(PANELS)}.", code="unknown_panel")


def _safe(value: Any) -> Any:
    """Neutralise spreadsheet formulas in text cells (CSV injection): a leading = + - @ gets a quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[bytes]:
    """The CSV, a line at a time (UTF-8)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in (header, *rows):
        writer.writerow([_safe(value) for value in row])
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()


async def stream_csv(table: Table) -> AsyncIterator[bytes]:
    for line in csv_lines(*table):
        yield line


class _Sink(io.RawIOBase):
    """A write-only, unseekable file collecting what zipfile writes until it is taken."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.chunks.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        found, self.chunks = b"".join(self.chunks), []
        return found


async def stream_zip(tables: Sequence[tuple[str, Table]]) -> AsyncIterator[bytes]:
    """A ZIP of `name.csv` files, yielded file by file."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, (header, rows) in tables:
            with archive.open(f"{name}.csv", "w") as member:
                for line in csv_lines(header, rows):
                    member.write(line)
            yield sink.take()
    yield sink.take()


async def export_response(session: AsyncSession, ask: stats.Ask, panel: str) -> StreamingResponse:
    """One panel as CSV (`<panel>.csv`) or every panel as a ZIP (`all.zip`)."""
    stem = f"{ask.site.domain}-{ask.span.start.date()}-{(ask.span.end - timedelta(days=1)).date()}"
    if panel == "all.zip":
        tables: list[tuple[str, Table]] = []
        skipped: list[list[str]] = []
        for name in PANELS:
            try:
                tables.append((name, await panel_table(session, ask, name)))
            except RawDataExpired as exc:
                if name not in RAW_ONLY:
                    raise
                skipped.append([name, exc.message])
        if skipped:
            tables.append(("skipped", (["panel", "reason"], skipped)))
        return StreamingResponse(
            stream_zip(tables),
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{stem}.zip"'},
        )
    name = panel.removesuffix(".csv")
    if name == panel:
        raise NotFound("Export `<panel>.csv` or `all.zip`.", code="unknown_panel")
    table = await panel_table(session, ask, name)
    return StreamingResponse(
        stream_csv(table),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{stem}-{name}.csv"'},
    )
