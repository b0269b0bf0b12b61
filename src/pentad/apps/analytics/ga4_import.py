"""Importing GA4 history from its CSV exports into the daily rollups, marked `imported`.

An owner uploads a CSV exported from a GA4 report (`POST /api/analytics/sites/{id}/imports`, the file as
the body). Supported, recognised by their columns:

- users over time — `Date` (YYYYMMDD) or `Nth day` (counted from the `# Start date:` line) with
  `Active users`/`Users`/`Total users`, and any of `Sessions`, `Views`, `Bounce rate`,
  `Average session duration`: the site's top stats per day;
- "Pages and screens" — `Page path and screen class` (or `Page path + query string and screen class`,
  `Page path`) with `Views` and `Active users`/`Users`: the pages panel;
- "Traffic acquisition" — `Session source / medium` (or `Session source`) with `Sessions`,
  `Active users`/`Users`, `Engaged sessions`: the sources panel (`(direct)` is Direct / None);
- "Demographic details: Country" — `Country` (or `Country ID`) with `Active users`/`Users`: the countries
  panel.

The panels' exports need a `Date` column (add "Date" as a secondary dimension in GA4) unless the export
covers one day (`# Start date` = `# End date`). GA4's days are taken as the site's days (set the site's
time zone to the GA4 property's).

The request checks the whole file first: a file we cannot read is 422 `bad_import` with the `line` it
failed on, and nothing is stored. A good file is stored (core storage) and imported by the job
`analytics.ga4_import`, which reports its progress on the job's topic. Days on or after the site's first
own event are skipped (counted), so imported and collected numbers never add up twice. A day's imported
rows of the report's dimension are replaced, so importing a file again changes nothing, and the same file
(by its SHA-256) is recognised and not queued twice. The months touched are rebuilt from their days.

Visitors: GA4 gives counts, not visitors, so each imported row carries a sketch of as many synthetic
visitors (hll.py): a day's number is exact (up to the sketch's error beyond 128) and several days add
up, as Pentad counts its own daily visitor ids.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
import re
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics import rollups
from pentad.apps.analytics.access import access_site
from pentad.apps.analytics.hll import Sketch
from pentad.apps.analytics.models import (
    AnalyticsEvent,
    AnalyticsImport,
    AnalyticsRollupDaily,
    AnalyticsRollupHourly,
    AnalyticsRollupMonthly,
    AnalyticsSite,
)
from pentad.apps.analytics.permissions import ANALYTICS_USE, SITE_MANAGE
from pentad.apps.analytics.settings import AnalyticsSettings
from pentad.core import audit
from pentad.core.auth.dependencies import db_session, request_actor, require
from pentad.core.auth.principal import Principal
from pentad.core.context import JobContext
from pentad.core.errors import AppError, NotFound, PayloadTooLarge, problem_responses
from pentad.core.jobs.queue import enqueue
from pentad.core.jobs.registry import JobSpec
from pentad.core.platform import get_platform
from pentad.core.policy import route_policy

IMPORT = "analytics.ga4_import"
DAYS_PER_STEP = 31
UNMAPPED_COUNTRY = None

# ---------------------------------------------------------------- reading an export


class ImportRejected(AppError):
    status, code = 422, "bad_import"

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"Line {line}: {message}", line=line)


def _key(name: str) -> str:
    return re.sub(r"\s+", " ", name.strip().lower())


DATE_COLUMNS = ("date",)
NTH_DAY = "nth day"
USERS = ("active users", "users", "total users")
LAYOUTS: dict[str, tuple[tuple[str, ...], int]] = {
    "pages": (
        ("page path and screen class", "page path + query string and screen class", "page path"),
        rollups.DIMS["pages"],
    ),
    "sources": (("session source / medium", "session source"), rollups.DIMS["sources"]),
    "countries": (("country", "country id"), rollups.DIMS["countries"]),
}
"""Report → (its dimension's column names, the rollup dimension it fills)."""
SOURCE_NAMES = {
    "google": "Google", "bing": "Bing", "duckduckgo": "DuckDuckGo", "yahoo": "Yahoo!", "baidu": "Baidu",
    "yandex": "Yandex", "ecosia.org": "Ecosia", "facebook.com": "Facebook", "m.facebook.com": "Facebook",
    "l.facebook.com": "Facebook", "t.co": "Twitter", "twitter.com": "Twitter", "x.com": "Twitter",
    "linkedin.com": "LinkedIn", "reddit.com": "Reddit", "instagram.com": "Instagram",
    "youtube.com": "YouTube",
    "news.ycombinator.com": "Hacker News", "github.com": "GitHub",
}  # fmt: skip
"""GA4's source names (hosts, lower case) as Pentad's referrer classification names them."""
NOT_SET = frozenset({"(not set)", "(direct)", "(none)", ""})
TOTAL_LABELS = frozenset({"total", "totals", "grand total", "gesamt", "summe", "total général", "totale"})
"""First cells of the totals row some exports carry (in the export's language): not a day or a value."""
THOUSANDS = re.compile(r"\d{1,3}(?:[.,\u00a0\u202f ]\d{3})+")


@dataclass
class Numbers:
    visitors: int = 0
    visits: int = 0
    pageviews: int = 0
    bounces: int = 0
    duration_ms: int = 0

    def add(self, other: Numbers) -> None:
        self.visitors += other.visitors
        self.visits += other.visits
        self.pageviews += other.pageviews
        self.bounces += other.bounces
        self.duration_ms += other.duration_ms


@dataclass
class ParsedExport:
    report: str
    """`totals` (users over time), `pages`, `sources` or `countries`."""
    dim: int
    days: dict[date, dict[str | None, Numbers]] = field(default_factory=lambda: defaultdict(dict))
    rows: int = 0
    unmapped: int = 0


def _count(text: str, line: int, column: str) -> int:
    """A count (users, sessions, views): also written with thousands separators (`1,234`, `1.234`)."""
    value = text.strip()
    if THOUSANDS.fullmatch(value):
        return int(re.sub(r"\D", "", value))
    return round(_number(value, line, column))


def _number(text: str, line: int, column: str) -> float:
    value = text.strip().replace(",", "")
    if value.endswith("%"):
        try:
            return float(value[:-1]) / 100
        except ValueError:
            pass
    elif ":" in value:
        parts = value.split(":")
        if len(parts) == 3 and all(part.isdigit() for part in parts):
            hours, minutes, seconds = map(int, parts)
            return hours * 3600 + minutes * 60 + seconds
    else:
        try:
            number = float(value or "0")
        except ValueError:
            pass
        else:
            if number >= 0 and number == number and number != float("inf"):
                return number
    raise ImportRejected(line, f"{text!r} in column {column!r} is not a number.")


def _ga4_date(text: str, line: int) -> date:
    try:
        return datetime.strptime(text.strip(), "%Y%m%d").date()
    except ValueError:
        raise ImportRejected(line, f"{text!r} is not a GA4 date (YYYYMMDD).") from None


def _country(name: str) -> str | bool | None:
    """The ISO code of a GA4 country name; None for "(not set)"; False when we do not know it."""
    key = _country_key(name)
    if key in NOT_SET:
        return None
    if len(key) == 2 and key.upper() in COUNTRY_CODES:
        return key.upper()
    return COUNTRIES.get(key, False)


def _source(value: str) -> str | None:
    source = value.split(" / ")[0].strip()
    if source.lower() in NOT_SET:
        return None
    return SOURCE_NAMES.get(source.lower(), source)


def parse_export(data: bytes) -> ParsedExport:
    """A GA4 CSV export read into per-day numbers; ImportRejected (422, with the line) if it cannot be.

    GA4 writes `#` comment lines (the report, `# Start date: YYYYMMDD`, `# End date: …`) above each table;
    a file with several tables (the reports snapshot) is read up to the first table we support."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportRejected(data[: exc.start].count(b"\n") + 1, "the file is not UTF-8 text.") from None
    start: date | None = None
    end: date | None = None
    table: ParsedExport | None = None
    columns: dict[str, int] = {}
    header_line = 0
    skipping = False
    refusal: ImportRejected | None = None
    reader = csv.reader(io.StringIO(text))
    try:
        for row in reader:
            line = reader.line_num
            blank = not row or not any(cell.strip() for cell in row)
            if blank or row[0].startswith("#"):
                if table is not None:
                    if table.rows:
                        return table
                    refusal = refusal or ImportRejected(
                        header_line, "the export has no rows under its header."
                    )
                    table = None
                skipping = False
                if not blank:
                    label, _, value = row[0].lstrip("#").partition(":")
                    if _key(label) == "start date" and value.strip():
                        start = _ga4_date(value, line)
                    elif _key(label) == "end date" and value.strip():
                        end = _ga4_date(value, line)
                continue
            if skipping:
                continue
            if table is None:
                columns = {_key(name): index for index, name in enumerate(row)}
                header_line = line
                try:
                    table = _layout(columns, line, start, end)
                except ImportRejected as exc:
                    refusal, skipping = refusal or exc, True
                continue
            _read_row(table, columns, row, line, start, end)
    except csv.Error as exc:
        raise ImportRejected(reader.line_num, f"not CSV ({exc}).") from None
    if table is not None and table.rows:
        return table
    if table is not None:
        refusal = refusal or ImportRejected(header_line, "the export has no rows under its header.")
    raise refusal or ImportRejected(max(reader.line_num, 1), "no header row: is this a GA4 CSV export?")


def _layout(columns: dict[str, int], line: int, start: date | None, end: date | None) -> ParsedExport:
    if not any(name in columns for name in USERS):
        raise ImportRejected(
            line, "no users column (Active users, Users or Total users): not a supported export."
        )
    for report, (names, dim) in LAYOUTS.items():
        if any(name in columns for name in names):
            if not any(name in columns for name in DATE_COLUMNS) and (start is None or start != end):
                raise ImportRejected(
                    line,
                    f"a {report} export needs a Date column (add Date as a secondary dimension in GA4) "
                    "or a range of one day.",
                )
            return ParsedExport(report, dim)
    if any(name in columns for name in (*DATE_COLUMNS, NTH_DAY)):
        if NTH_DAY in columns and "date" not in columns and start is None:
            raise ImportRejected(line, "an Nth day column needs the export's `# Start date:` line above it.")
        return ParsedExport("totals", rollups.TOTALS)
    raise ImportRejected(
        line,
        "unknown export: expected a Date, Page path, Session source / medium or Country column.",
    )


def _cell(columns: dict[str, int], row: list[str], names: tuple[str, ...]) -> tuple[str, str] | None:
    for name in names:
        index = columns.get(name)
        if index is not None and index < len(row):
            return name, row[index]
    return None


def _read_row(
    parsed: ParsedExport,
    columns: dict[str, int],
    row: list[str],
    line: int,
    start: date | None,
    end: date | None,
) -> None:
    if len(row) < len(columns):
        raise ImportRejected(line, f"{len(row)} columns where the header has {len(columns)}.")
    if _key(row[0]) in TOTAL_LABELS:
        return
    dated = _cell(columns, row, DATE_COLUMNS)
    if dated is not None:
        day = _ga4_date(dated[1], line)
    elif (nth := _cell(columns, row, (NTH_DAY,))) is not None:
        assert start is not None
        day = start + timedelta(days=int(_number(nth[1], line, "Nth day")))
    else:
        assert start is not None
        day = start
    if end is not None and start is not None and not start <= day <= end:
        raise ImportRejected(line, f"{day.isoformat()} lies outside the export's range.")

    def metric(names: tuple[str, ...]) -> float:
        found = _cell(columns, row, names)
        return _number(found[1], line, found[0]) if found is not None else 0.0

    def count(names: tuple[str, ...]) -> int:
        found = _cell(columns, row, names)
        return _count(found[1], line, found[0]) if found is not None else 0

    numbers = Numbers(visitors=count(USERS), visits=count(("sessions",)))
    numbers.pageviews = count(("views", "screen page views", "pageviews"))
    if parsed.report == "totals":
        rate = metric(("bounce rate",))
        numbers.bounces = round((rate if rate <= 1 else rate / 100) * numbers.visits)
        numbers.duration_ms = round(metric(("average session duration",)) * numbers.visits * 1000)
    elif parsed.report == "sources" and (engaged := _cell(columns, row, ("engaged sessions",))) is not None:
        numbers.bounces = max(numbers.visits - _count(engaged[1], line, engaged[0]), 0)
    value: str | None = None
    if parsed.report != "totals":
        names = LAYOUTS[parsed.report][0]
        found = _cell(columns, row, names)
        assert found is not None
        raw = found[1].strip()
        if parsed.report == "pages":
            if raw.lower() in NOT_SET:
                value = None
            elif raw.startswith("/"):
                value = raw.split("?")[0][:2000]
            else:
                raise ImportRejected(line, f"{raw[:80]!r} is not a page path.")
        elif parsed.report == "sources":
            value = _source(raw)
        else:
            code = _country(raw)
            if code is False:
                parsed.unmapped += 1
                code = UNMAPPED_COUNTRY
            value = code if isinstance(code, str) else None
    parsed.rows += 1
    cell = parsed.days[day]
    if value in cell:
        cell[value].add(numbers)
    else:
        cell[value] = numbers


# ---------------------------------------------------------------- writing rollups


def _synthetic_sketch(count: int, seed: str) -> Sketch:
    """A sketch of `count` distinct made-up visitors (the same ones for the same seed)."""
    sketch = Sketch()
    rng = random.Random(seed)
    for _ in range(count):
        sketch.add_hash(rng.getrandbits(64))
    sketch.compact()
    return sketch


async def first_native_day(session: AsyncSession, site: AnalyticsSite) -> date | None:
    """The first site-local day with events of the site's own (collected, not imported)."""
    zone = ZoneInfo(site.timezone)
    candidates: list[date] = []
    first_ts = await session.scalar(
        select(func.min(AnalyticsEvent.ts)).where(AnalyticsEvent.site_key == site.key)
    )
    if first_ts is not None:
        candidates.append(datetime.fromtimestamp(first_ts / 1000, UTC).astimezone(zone).date())
    first_hour = await session.scalar(
        select(func.min(AnalyticsRollupHourly.bucket)).where(AnalyticsRollupHourly.site_key == site.key)
    )
    if first_hour is not None:
        candidates.append(rollups.local_day_of_hour(int(first_hour), zone))
    first_day = await session.scalar(
        select(func.min(AnalyticsRollupDaily.bucket)).where(
            AnalyticsRollupDaily.site_key == site.key, AnalyticsRollupDaily.imported.is_(False)
        )
    )
    if first_day is not None:
        candidates.append(date.fromordinal(int(first_day) + rollups.EPOCH_DAY))
    return min(candidates) if candidates else None


async def write_days(
    session: AsyncSession, site: AnalyticsSite, parsed: ParsedExport, days: list[date]
) -> None:
    """Replace the imported rows of the export's dimension on `days` with its numbers."""
    buckets = [rollups.day_number(day) for day in days]
    await session.execute(
        delete(AnalyticsRollupDaily).where(
            AnalyticsRollupDaily.site_key == site.key,
            AnalyticsRollupDaily.dim == parsed.dim,
            AnalyticsRollupDaily.bucket.in_(buckets),
            AnalyticsRollupDaily.imported.is_(True),
        )
    )
    rows: list[dict[str, Any]] = []
    for day, bucket in zip(days, buckets, strict=True):
        for value, numbers in parsed.days[day].items():
            key = "" if parsed.dim == rollups.TOTALS else value
            sketch = _synthetic_sketch(numbers.visitors, f"{site.key}:{bucket}:{parsed.dim}:{key}")
            rows.append(
                {
                    "site_key": site.key, "dim": parsed.dim, "bucket": bucket,
                    "value_hash": rollups.value_hash(key), "value": key, "visitors": numbers.visitors,
                    "visits": numbers.visits,
                    "pageviews": numbers.pageviews, "events": 0, "bounces": numbers.bounces,
                    "duration_ms": numbers.duration_ms, "revenue_micros": 0,
                    "visitors_sketch": sketch.to_text(), "imported": True,
                }
            )  # fmt: skip
    if rows:
        await session.execute(insert(AnalyticsRollupDaily), rows)


async def finish_months(session: AsyncSession, site: AnalyticsSite, days: list[date]) -> None:
    months = sorted({day.replace(day=1) for day in days})
    for first in months:
        await rollups.rebuild_month(session, site.key, first)
    await session.execute(
        update(AnalyticsRollupMonthly)
        .where(
            AnalyticsRollupMonthly.site_key == site.key,
            AnalyticsRollupMonthly.bucket.in_([rollups.month_number(first) for first in months]),
        )
        .values(imported=True)
    )
    site.version += 1  # the planner's cache of closed parts is keyed by it


async def run_import(context: JobContext, payload: dict[str, Any]) -> None:
    """Job `analytics.ga4_import`: read the stored export and write its days, reporting progress."""
    platform = context.platform
    import_id = uuid.UUID(payload["import_id"])
    async with platform.database.transaction() as session:
        job = await session.get(AnalyticsImport, import_id)
        if job is None or job.status == "done" or job.storage_key is None:
            return
        job.status = "running"
        storage_key, site_id = job.storage_key, job.site_id
    _, body = await platform.storage.get(storage_key)
    data = b"".join([chunk async for chunk in body])
    try:
        parsed = parse_export(data)
    except ImportRejected as exc:
        async with platform.database.transaction() as session:
            await session.execute(
                update(AnalyticsImport)
                .where(AnalyticsImport.id == import_id)
                .values(status="failed", error=exc.message)
            )
        return
    async with platform.database.transaction() as session:
        site = await session.get(AnalyticsSite, site_id)
        if site is None:
            return
        native = await first_native_day(session, site)
    days = sorted(day for day in parsed.days if native is None or day < native)
    skipped = len(parsed.days) - len(days)
    for index in range(0, len(days), DAYS_PER_STEP):
        step = days[index : index + DAYS_PER_STEP]
        async with platform.database.transaction() as session:
            site = await session.get(AnalyticsSite, site_id)
            assert site is not None
            await write_days(session, site, parsed, step)
        await context.progress(
            (index + len(step)) / max(len(days), 1), f"{index + len(step)} of {len(days)} days"
        )
    async with platform.database.transaction() as session:
        site = await session.get(AnalyticsSite, site_id)
        assert site is not None
        if days:
            await finish_months(session, site, days)
        note = (
            f"{parsed.unmapped} rows of unknown countries counted as (unknown)" if parsed.unmapped else None
        )
        await session.execute(
            update(AnalyticsImport)
            .where(AnalyticsImport.id == import_id)
            .values(status="done", rows=parsed.rows, days=len(days), skipped_days=skipped, error=note)
        )
    await platform.storage.delete(storage_key)


JOBS = (JobSpec(IMPORT, run_import, queue="analytics", concurrency=1, timeout=3600),)


# ---------------------------------------------------------------- the API


class ImportRead(BaseModel):
    id: uuid.UUID
    filename: str
    report: str
    status: str
    job_id: uuid.UUID | None
    rows: int
    days: int
    skipped_days: int
    error: str | None
    created_at: datetime


def _read(job: AnalyticsImport) -> ImportRead:
    return ImportRead(
        id=job.id, filename=job.filename, report=job.report, status=job.status, job_id=job.job_id,
        rows=job.rows, days=job.days, skipped_days=job.skipped_days, error=job.error,
        created_at=job.created_at,
    )  # fmt: skip


class ImportNotFound(NotFound):
    code = "import_not_found"

    def __init__(self) -> None:
        super().__init__("No such import.")


router = APIRouter(
    prefix="/api/analytics/sites/{site_id}/imports",
    tags=["analytics"],
    responses=problem_responses(400, 401, 403, 404, 413, 422, 429),
)
Session = Annotated[AsyncSession, Depends(db_session)]
Member = Annotated[Principal, Depends(require(ANALYTICS_USE))]
SiteId = Annotated[uuid.UUID, Path(description="Site id.")]


async def _read_body(request: Request, limit: int) -> bytes:
    received = bytearray()
    stream: AsyncIterator[bytes] = request.stream()
    async for chunk in stream:
        received += chunk
        if len(received) > limit:
            raise PayloadTooLarge(f"An export may be at most {limit} bytes.")
    return bytes(received)


@router.post(
    "",
    status_code=202,
    summary="Import a GA4 CSV export (the file as the body; owners)",
    responses={200: {"description": "This file was imported already: the earlier import."}},
)
@route_policy(body_limit="upload")
async def create_import(
    site_id: SiteId,
    request: Request,
    session: Session,
    principal: Member,
    filename: Annotated[
        str, Query(min_length=1, max_length=200, description="The export's file name.")
    ] = "ga4.csv",
) -> JSONResponse:
    platform = get_platform(request)
    site = (await access_site(session, platform, principal, site_id, SITE_MANAGE)).site
    data = await _read_body(request, platform.app_settings(AnalyticsSettings).ga4_import_max_bytes)
    parsed = parse_export(data)
    digest = hashlib.sha256(data).hexdigest()
    earlier = await session.scalar(
        select(AnalyticsImport).where(AnalyticsImport.site_id == site.id, AnalyticsImport.digest == digest)
    )
    if earlier is not None:
        return JSONResponse(_read(earlier).model_dump(mode="json"), status_code=200)
    import_id = uuid.uuid4()
    storage_key = f"analytics/imports/{site.id}/{import_id}.csv"

    async def chunks() -> AsyncIterator[bytes]:
        yield data

    await platform.storage.put(storage_key, chunks(), content_type="text/csv")
    job = AnalyticsImport(
        id=import_id, site_id=site.id, digest=digest, filename=filename, report=parsed.report,
        status="queued", storage_key=storage_key, rows=parsed.rows,
    )  # fmt: skip
    session.add(job)
    await session.flush()
    job.job_id = await enqueue(session, IMPORT, {"import_id": str(import_id)})
    audit.record(
        session, request_actor(request, principal), "analytics.ga4.import", resource_type="analytics.site",
        resource_id=site.id, report=parsed.report, rows=parsed.rows,
    )  # fmt: skip
    return JSONResponse(_read(job).model_dump(mode="json"), status_code=202)


@router.get("", summary="The site's imports (owners)")
async def list_imports(
    site_id: SiteId, request: Request, session: Session, principal: Member
) -> list[ImportRead]:
    site = (await access_site(session, get_platform(request), principal, site_id, SITE_MANAGE)).site
    found = await session.scalars(
        select(AnalyticsImport).where(AnalyticsImport.site_id == site.id).order_by(AnalyticsImport.created_at)
    )
    return [_read(job) for job in found]


@router.get("/{import_id}", summary="One import and how far it got (owners)")
async def get_import(
    site_id: SiteId,
    import_id: Annotated[uuid.UUID, Path(description="The import's id.")],
    request: Request,
    session: Session,
    principal: Member,
) -> ImportRead:
    site = (await access_site(session, get_platform(request), principal, site_id, SITE_MANAGE)).site
    job = await session.get(AnalyticsImport, import_id)
    if job is None or job.site_id != site.id:
        raise ImportNotFound()
    return _read(job)


# ---------------------------------------------------------------- GA4's country names


def _country_key(name: str) -> str:
    return re.sub(r"\s+", " ", name.strip().lower().replace("\u2019", "'").replace("st. ", "st "))


_ISO_NAMES = (
    "AD Andorra|AE United Arab Emirates|AF Afghanistan|AG Antigua & Barbuda|AI Anguilla|AL Albania|"
    "AM Armenia|AO Angola|AQ Antarctica|AR Argentina|AS American Samoa|AT Austria|AU Australia|"
    "AW Aruba|AX Åland Islands|AZ Azerbaijan|BA Bosnia & Herzegovina|BB Barbados|BD Bangladesh|"
    "BE Belgium|BF Burkina Faso|BG Bulgaria|BH Bahrain|BI Burundi|BJ Benin|BL St Barthélemy|BM Bermuda|"
    "BN Brunei|BO Bolivia|BQ Caribbean Netherlands|BR Brazil|BS Bahamas|BT Bhutan|BV Bouvet Island|"
    "BW Botswana|BY Belarus|BZ Belize|CA Canada|CC Cocos (Keeling) Islands|CD Congo - Kinshasa|"
    "CF Central African Republic|CG Congo - Brazzaville|CH Switzerland|CI Côte d'Ivoire|"
    "CK Cook Islands|CL Chile|CM Cameroon|CN China|CO Colombia|CR Costa Rica|CU Cuba|CV Cape Verde|"
    "CW Curaçao|CX Christmas Island|CY Cyprus|CZ Czechia|DE Germany|DJ Djibouti|DK Denmark|DM Dominica|"
    "DO Dominican Republic|DZ Algeria|EC Ecuador|EE Estonia|EG Egypt|EH Western Sahara|ER Eritrea|"
    "ES Spain|ET Ethiopia|FI Finland|FJ Fiji|FK Falkland Islands (Islas Malvinas)|FM Micronesia|"
    "FO Faroe Islands|FR France|GA Gabon|GB United Kingdom|GD Grenada|GE Georgia|GF French Guiana|"
    "GG Guernsey|GH Ghana|GI Gibraltar|GL Greenland|GM Gambia|GN Guinea|GP Guadeloupe|"
    "GQ Equatorial Guinea|GR Greece|GS South Georgia & South Sandwich Islands|GT Guatemala|GU Guam|"
    "GW Guinea-Bissau|GY Guyana|HK Hong Kong|HM Heard & McDonald Islands|HN Honduras|HR Croatia|"
    "HT Haiti|HU Hungary|ID Indonesia|IE Ireland|IL Israel|IM Isle of Man|IN India|"
    "IO British Indian Ocean Territory|IQ Iraq|IR Iran|IS Iceland|IT Italy|JE Jersey|JM Jamaica|"
    "JO Jordan|JP Japan|KE Kenya|KG Kyrgyzstan|KH Cambodia|KI Kiribati|KM Comoros|KN St Kitts & Nevis|"
    "KP North Korea|KR South Korea|KW Kuwait|KY Cayman Islands|KZ Kazakhstan|LA Laos|LB Lebanon|"
    "LC St Lucia|LI Liechtenstein|LK Sri Lanka|LR Liberia|LS Lesotho|LT Lithuania|LU Luxembourg|"
    "LV Latvia|LY Libya|MA Morocco|MC Monaco|MD Moldova|ME Montenegro|MF St Martin|MG Madagascar|"
    "MH Marshall Islands|MK North Macedonia|ML Mali|MM Myanmar (Burma)|MN Mongolia|MO Macao|"
    "MP Northern Mariana Islands|MQ Martinique|MR Mauritania|MS Montserrat|MT Malta|MU Mauritius|"
    "MV Maldives|MW Malawi|MX Mexico|MY Malaysia|MZ Mozambique|NA Namibia|NC New Caledonia|NE Niger|"
    "NF Norfolk Island|NG Nigeria|NI Nicaragua|NL Netherlands|NO Norway|NP Nepal|NR Nauru|NU Niue|"
    "NZ New Zealand|OM Oman|PA Panama|PE Peru|PF French Polynesia|PG Papua New Guinea|PH Philippines|"
    "PK Pakistan|PL Poland|PM St Pierre & Miquelon|PN Pitcairn Islands|PR Puerto Rico|PS Palestine|"
    "PT Portugal|PW Palau|PY Paraguay|QA Qatar|RE Réunion|RO Romania|RS Serbia|RU Russia|RW Rwanda|"
    "SA Saudi Arabia|SB Solomon Islands|SC Seychelles|SD Sudan|SE Sweden|SG Singapore|SH St Helena|"
    "SI Slovenia|SJ Svalbard & Jan Mayen|SK Slovakia|SL Sierra Leone|SM San Marino|SN Senegal|"
    "SO Somalia|SR Suriname|SS South Sudan|ST São Tomé & Príncipe|SV El Salvador|SX Sint Maarten|"
    "SY Syria|SZ Eswatini|TC Turks & Caicos Islands|TD Chad|TF French Southern Territories|TG Togo|"
    "TH Thailand|TJ Tajikistan|TK Tokelau|TL Timor-Leste|TM Turkmenistan|TN Tunisia|TO Tonga|"
    "TR Türkiye|TT Trinidad & Tobago|TV Tuvalu|TW Taiwan|TZ Tanzania|UA Ukraine|UG Uganda|"
    "UM U.S. Outlying Islands|US United States|UY Uruguay|UZ Uzbekistan|VA Vatican City|"
    "VC St Vincent & Grenadines|VE Venezuela|VG British Virgin Islands|VI U.S. Virgin Islands|"
    "VN Vietnam|VU Vanuatu|WF Wallis & Futuna|WS Samoa|XK Kosovo|YE Yemen|YT Mayotte|ZA South Africa|"
    "ZM Zambia|ZW Zimbabwe"
)
"""ISO 3166-1 alpha-2 codes with the English short names GA4 reports (CLDR's)."""
_ALIASES = (
    "GB Britain (UK)|GB Great Britain|KR Korea (South)|KP Korea (North)|CZ Czech Republic|TR Turkey|"
    "CD Congo (Dem. Rep.)|CG Congo (Rep.)|CI Ivory Coast|MO Macau|MM Myanmar|SZ Swaziland|TL East Timor|"
    "CV Cabo Verde|US USA|FK Falkland Islands|VA Holy See|RU Russian Federation"
)
COUNTRIES: dict[str, str] = {
    _country_key(entry[3:]): entry[:2] for entry in (_ISO_NAMES + "|" + _ALIASES).split("|")
}
COUNTRY_CODES = frozenset(COUNTRIES.values())
