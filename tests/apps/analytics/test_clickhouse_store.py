"""The ClickHouse events store against a real server (Debian's clickhouse-server, started once per run):
with PENTAD_ANALYTICS__STORE=clickhouse the tracker's events go to ClickHouse (not the database) and the
dashboard answers from there, for its owner only; the schema is made at start, versioned and idempotent; a
replayed batch — whole or partly stored — is stored exactly once; retention drops whole months and deletes a
site's older events; a deleted site's events go; funnels (each step after the last one, within a visit or
a visitor's day), entry and exit pages and custom properties; filters and goals; a server that does not
answer is a 503 and a failing /readyz, never a wrong answer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from pentad.apps.analytics import query, store
from pentad.apps.analytics.funnels import Step
from pentad.apps.analytics.goals import GoalRule, compile_pattern
from pentad.apps.analytics.ingest import EVENTS, EventRow
from pentad.apps.analytics.models import AnalyticsEvent, AnalyticsSite
from pentad.apps.analytics.settings import AnalyticsSettings, ClickHouseSettings
from pentad.apps.analytics.store.clickhouse import (
    EVENTS_TABLE,
    ClickHouse,
    ClickHouseEventStore,
    ClickHouseUnavailable,
)
from pentad.apps.analytics.tasks import run_retention
from pentad.core.config import Settings, SettingsError
from pentad.core.ingest import FlushContext
from pentad.core.platform import Platform
from tests.apps.analytics.test_ingest import event, post
from tests.apps.analytics.test_store_parity import clickhouse_store, drop
from tests.conftest import make_settings
from tests.factories import Account, account, bearer, free_port
from tests.servers import ClickHouseServer

pytestmark = pytest.mark.one_engine

NOW = datetime(2026, 3, 20, 14, 25, tzinfo=UTC)
MINUTE = 60_000


@pytest.fixture
def ch_database(clickhouse: ClickHouseServer) -> Iterator[str]:
    name = f"pentad_test_{uuid.uuid4().hex[:12]}"
    yield name
    asyncio.run(_drop_database(clickhouse, name))


async def _drop_database(server: ClickHouseServer, name: str) -> None:
    client = ClickHouse(ClickHouseSettings(url=server.url, user=server.user, password=server.password))
    await client.execute(f"DROP DATABASE IF EXISTS {name}")
    await client.close()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, clickhouse: ClickHouseServer, ch_database: str) -> Settings:
    """The analytics tests' settings with the ClickHouse store on a database of the test's own."""
    return make_settings(
        tmp_path,
        database_url,
        apps=["analytics"],
        ratelimit={"enabled": False},
        security={"trusted_proxies": ["127.0.0.1"]},
        analytics={
            "max_clock_skew": 7200,
            "session_timeout": 600,
            "store": "clickhouse",
            "clickhouse": {
                "url": clickhouse.url,
                "database": ch_database,
                "user": clickhouse.user,
                "password": clickhouse.password,
            },
        },
    )


@pytest.fixture
async def ch_store(clickhouse: ClickHouseServer) -> AsyncIterator[ClickHouseEventStore]:
    found = await clickhouse_store(clickhouse)
    yield found
    await drop(found)


def _context(batch: uuid.UUID | None = None, *, replay: bool = False) -> FlushContext:
    return FlushContext(None, None, EVENTS, batch or uuid.uuid4(), replay=replay)  # type: ignore[arg-type]


def _row(
    site_key: int, ts: int, visitor: int, path: str = "/", name: str = "pageview", **more: object
) -> EventRow:
    return EventRow(
        site_key=site_key, ts=ts, visitor_id=visitor, name=name, hostname="shop.example", path=path, **more
    )  # type: ignore[arg-type]


async def _count(found: ClickHouseEventStore, where: str = "1") -> int:
    rows = await found.client.execute(f"SELECT count() FROM {found.table} WHERE {where}")  # noqa: S608
    return int(rows[0][0])


async def _mutations_done(client: ClickHouse) -> None:
    """ALTER … DELETE runs in the background: wait until the server applied it."""
    for _ in range(200):
        pending = await client.execute(
            "SELECT count() FROM system.mutations WHERE database = %(db)s AND is_done = 0",
            {"db": client.database},
        )
        if not pending[0][0]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the mutation did not finish")


# ------------------------------------------------------------------ end to end through the app


async def test_events_go_to_clickhouse_and_the_dashboard_answers_from_there(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, str]
) -> None:
    sent = [
        ("alice", event(path="/", ago=100, r="https://www.google.com/search?q=shop")),
        ("alice", event(path="/pricing", ago=40)),
        ("alice", event("Signup", path="/pricing", ago=10, p={"plan": "pro"})),
        ("bob", event(path="/pricing?utm_source=newsletter&utm_campaign=dec", ago=30)),
        ("carol", event(path="/", ago=3000)),
        ("carol", event(path="/blog/1", ago=0)),
    ]
    for who, body in sent:
        assert (await post(client, body, who=who)).status_code == 202
    assert await platform.ingest.flush() == 6
    ch: ClickHouseEventStore = platform.resource(store.CLICKHOUSE)  # type: ignore[assignment]
    assert await _count(ch) == 6
    async with platform.database.transaction(writes=False) as session:  # nothing raw in the database
        assert await session.scalar(select(func.count()).select_from(AnalyticsEvent)) == 0

    base = f"/api/analytics/sites/{site['id']}/stats"
    totals = (await client.get(f"{base}/aggregate?period=7d&compare=previous", headers=owner.headers)).json()
    assert {k: totals[k] for k in ("visitors", "visits", "pageviews", "events", "bounce_rate")} == {
        "visitors": 3,
        "visits": 4,
        "pageviews": 5,
        "events": 1,
        "bounce_rate": 75.0,
    }
    assert totals["visit_duration"] == pytest.approx(90 / 4, abs=0.2)
    assert totals["comparison"]["visitors"] == 0
    series = (await client.get(f"{base}/timeseries?period=7d", headers=owner.headers)).json()
    assert sum(point["pageviews"] for point in series["points"]) == 5
    sources = (await client.get(f"{base}/breakdown/sources?period=7d", headers=owner.headers)).json()
    assert {r["value"]: (r["visitors"], r["pageviews"]) for r in sources["rows"]} == {
        "Google": (1, 2),
        "newsletter": (1, 1),
        "Direct / None": (1, 2),
    }
    # who is on the site now (the live panel and topic) comes from ClickHouse too
    live = (await client.get(f"{base}/live", headers=owner.headers)).json()
    assert (live["visitors"], live["pageviews"]) == (3, 4)
    assert [(page["path"], page["visitors"]) for page in live["top_pages"]] == [
        ("/pricing", 2),
        ("/", 1),
        ("/blog/1", 1),
    ]
    made = await client.post(
        "/api/analytics/keys", json={"name": "reporting", "site_ids": [site["id"]]}, headers=owner.headers
    )
    realtime = await client.get(
        "/api/analytics/v1/stats/realtime/visitors",
        params={"site_id": site["domain"]},
        headers=bearer(made.json()["key"]),
    )
    assert realtime.json() == 3
    # the panels rollups do not keep come from ClickHouse when unfiltered
    entry = (await client.get(f"{base}/breakdown/entry_pages?period=7d", headers=owner.headers)).json()
    assert [(r["value"], r["visitors"]) for r in entry["rows"]] == [("/", 2), ("/blog/1", 1), ("/pricing", 1)]
    keys = (await client.get(f"{base}/props?period=7d", headers=owner.headers)).json()
    assert [(r["value"], r["visitors"], r["events"]) for r in keys["rows"]] == [("plan", 1, 1)]
    plans = (await client.get(f"{base}/props?period=7d&key=plan", headers=owner.headers)).json()
    assert [(r["value"], r["visitors"]) for r in plans["rows"]] == [("pro", 1)]
    # filters, goals and funnels are answered by ClickHouse too (never from the empty SQL table)
    filtered = await client.get(f"{base}/aggregate?period=7d&filter=page:is:/pricing", headers=owner.headers)
    assert filtered.status_code == 200, filtered.text
    assert {k: filtered.json()[k] for k in ("visitors", "visits", "pageviews", "events")} == {
        "visitors": 2,
        "visits": 2,
        "pageviews": 2,
        "events": 1,
    }
    signup = await client.post(
        f"/api/analytics/sites/{site['id']}/goals",
        json={"kind": "event", "event_name": "Signup"},
        headers=owner.headers,
    )
    assert signup.status_code == 201, signup.text
    conversions = (await client.get(f"{base}/goals?period=7d", headers=owner.headers)).json()
    assert [(g["visitors"], g["completions"], g["conversion_rate"]) for g in conversions["goals"]] == [
        (1, 1, 33.3)
    ]
    funnels = f"/api/analytics/sites/{site['id']}/funnels"
    made_funnel = await client.post(
        funnels,
        json={
            "name": "Flow",
            "steps": [{"path": "/"}, {"path": "/pricing"}, {"goal_id": signup.json()["id"]}],
        },
        headers=owner.headers,
    )
    report = await client.get(f"{funnels}/{made_funnel.json()['id']}/report?period=7d", headers=owner.headers)
    assert report.status_code == 200, report.text
    assert (report.json()["units"], [step["units"] for step in report.json()["steps"]]) == (4, [2, 1, 1])
    # the owner's only: a stranger learns nothing, not even that the site exists
    stranger = await account(platform)
    assert (await client.get(f"{base}/aggregate?period=7d", headers=stranger.headers)).status_code == 404

    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["analytics.clickhouse"] == "ok"

    # a deleted site's events are deleted in ClickHouse too (its key may be handed to the next site)
    gone = await client.delete(f"/api/analytics/sites/{site['id']}", headers=owner.headers)
    assert gone.status_code == 204, gone.text
    await _mutations_done(ch.client)
    assert await _count(ch) == 0


async def test_the_schema_is_made_at_start_versioned_and_idempotent(platform: Platform) -> None:
    ch: ClickHouseEventStore = platform.resource(store.CLICKHOUSE)  # type: ignore[assignment]
    database = ch.client.database
    assert await ch.client.execute(f"SELECT version FROM {database}.pentad_schema") == [(1,)]  # noqa: S608
    assert await ch.client.migrate() == 1  # a second process starting: nothing to do, nothing doubled
    assert await ch.client.execute(f"SELECT count() FROM {database}.pentad_schema") == [(1,)]  # noqa: S608
    (engine,) = await ch.client.execute(
        "SELECT engine_full FROM system.tables WHERE database = %(db)s AND name = %(table)s",
        {"db": database, "table": EVENTS_TABLE},
    )
    assert "PARTITION BY toYYYYMM(ts)" in engine[0]
    assert "ORDER BY (site_key, ts)" in engine[0]


# ------------------------------------------------------------------ the store itself


async def test_a_replayed_batch_is_stored_exactly_once(ch_store: ClickHouseEventStore) -> None:
    # a batch across a month boundary: two partitions, so ClickHouse may have taken only one of them
    start = int(datetime(2026, 2, 28, 23, 50, tzinfo=UTC).timestamp() * 1000)
    rows = [_row(1, start + number * MINUTE, 7, f"/p{number}") for number in range(20)]
    batch = uuid.uuid4()
    await ch_store.insert(_context(batch), rows)
    await ch_store.insert(_context(batch, replay=True), rows)  # the process died before the commit
    assert await _count(ch_store) == 20

    partial = uuid.uuid4()
    await ch_store.insert(_context(partial), rows[:10])  # only February's part got in
    await ch_store.insert(_context(partial, replay=True), rows)
    assert await _count(ch_store, f"batch_id = toUUID('{partial}')") == 20
    paths = await ch_store.client.execute(
        f"SELECT path, count() FROM {ch_store.table} WHERE batch_id = toUUID('{partial}') GROUP BY path"  # noqa: S608
    )
    assert sorted(paths) == sorted((f"/p{number}", 1) for number in range(20))

    # the same events in a new batch (a visitor really sending them again) are stored again
    await ch_store.insert(_context(), rows[:3])
    assert await _count(ch_store) == 43


async def test_funnels_entry_exit_pages_and_properties(ch_store: ClickHouseEventStore) -> None:
    base = int(datetime(2026, 3, 18, 9, 0, tzinfo=UTC).timestamp() * 1000)
    rows = [
        # visitor 1: the whole funnel within ten minutes
        _row(1, base, 1, "/"),
        _row(1, base + 2 * MINUTE, 1, "/pricing"),
        _row(1, base + 3 * MINUTE, 1, "/pricing", "Signup", props={"plan": "pro"}),
        # visitor 2: home, pricing, then leaves
        _row(1, base, 2, "/"),
        _row(1, base + MINUTE, 2, "/pricing"),
        # visitor 3: signs up, but only two hours after the pricing page (outside the one-hour window)
        _row(1, base, 3, "/"),
        _row(1, base + MINUTE, 3, "/pricing"),
        _row(1, base + 121 * MINUTE, 3, "/pricing", "Signup", props={"plan": "basic"}),
        # visitor 4: pricing first, home later: the funnel's first step only
        _row(1, base, 4, "/pricing/annual"),
        _row(1, base + MINUTE, 4, "/"),
        # another site's visitor on the same paths counts nowhere here
        _row(2, base, 5, "/"),
        _row(2, base + MINUTE, 5, "/pricing"),
    ]
    await ch_store.insert(_context(), rows)
    span = query.resolve_range("7d", "UTC", now=NOW)
    signup = GoalRule(uuid.uuid4(), "Signed up", "event", "Signup", None, None)
    steps = [
        Step("Visit /", pattern=compile_pattern("/"), path="/"),
        Step("Visit /pricing*", pattern=compile_pattern("/pricing*"), path="/pricing*"),
        Step("Signed up", goal=signup),
    ]
    # within a visit (10 minutes): visitor 3's sign-up is a visit of its own; within the visitor's day
    # it completes the funnel; visitor 4 reached "/" only after "/pricing/annual"
    visit = await ch_store.filtered_funnel(1, span, 600, [], [signup], steps, "visit")
    assert visit == (5, [(4, 4), (3, 3), (1, 1)])
    day = await ch_store.filtered_funnel(1, span, 600, [], [signup], steps, "day")
    assert day == (4, [(4, 4), (3, 3), (2, 2)])

    def rows(found: list[query.Row]) -> list[tuple[str, int, int, int]]:
        return [(row.value, row.visitors, row.pageviews, row.events) for row in found]

    async def pages(kind: str) -> list[tuple[str, int, int, int]]:
        return rows(await ch_store.breakdown(None, 1, span, kind, session_timeout=600))  # type: ignore[arg-type]

    # a visit's first event's page (visitor 3's second visit is its sign-up alone), and its last one's
    assert await pages("entry_pages") == [("/", 3, 6, 1), ("/pricing/annual", 1, 2, 0), ("/pricing", 1, 0, 1)]
    assert await pages("exit_pages") == [("/pricing", 3, 6, 2), ("/", 1, 2, 0)]

    plans = await ch_store.props(1, span, "plan", event="Signup")
    assert plans == [("basic", 1, 1), ("pro", 1, 1)]
    assert await ch_store.props(1, span, None) == [("plan", 2, 2)]
    assert await ch_store.props(1, span, "missing") == []
    earlier = query.resolve_range("custom", "UTC", start=span.start.date() - timedelta(days=30),
                                  end=span.start.date() - timedelta(days=1))  # fmt: skip
    assert await ch_store.filtered_funnel(1, earlier, 600, [], [signup], steps, "day") == (0, [(0, 0)] * 3)


async def test_retention_drops_old_months_and_deletes_a_sites_older_events(
    platform: Platform, client: httpx.AsyncClient, owner: Account, site: dict[str, str]
) -> None:
    ch: ClickHouseEventStore = platform.resource(store.CLICKHOUSE)  # type: ignore[assignment]
    patched = await client.patch(
        f"/api/analytics/sites/{site['id']}", json={"retention": {"raw": "30d"}}, headers=owner.headers
    )
    assert patched.status_code == 200, patched.text
    other = await client.post(
        "/api/analytics/sites", json={"domain": "keeper.example"}, headers=owner.headers
    )
    assert other.status_code == 201, other.text
    forever = {"raw": "forever", "hourly": "forever"}
    kept = await client.patch(
        f"/api/analytics/sites/{other.json()['id']}", json={"retention": forever}, headers=owner.headers
    )
    assert kept.status_code == 200, kept.text
    async with platform.database.transaction(writes=False) as session:
        found = await session.execute(select(AnalyticsSite.domain, AnalyticsSite.key))
        keys: dict[str, int] = {str(row[0]): int(row[1]) for row in found.all()}
    short, keeper = keys["shop.example"], keys["keeper.example"]

    def at(day: datetime) -> int:
        return int(day.timestamp() * 1000)

    rows = [
        _row(short, at(datetime(2025, 12, 5, tzinfo=UTC)), 1),  # December: only the short site -> dropped
        _row(short, at(datetime(2026, 1, 10, tzinfo=UTC)), 1),  # January: shared with the keeper
        _row(keeper, at(datetime(2026, 1, 11, tzinfo=UTC)), 2),
        _row(short, at(datetime(2026, 2, 10, tzinfo=UTC)), 3),  # older than 30 days -> deleted
        _row(short, at(datetime(2026, 3, 1, tzinfo=UTC)), 3),  # within 30 days -> kept
        _row(keeper, at(datetime(2026, 3, 2, tzinfo=UTC)), 4),
    ]
    await ch.insert(_context(), rows)
    pruned = await run_retention(platform, now=NOW)
    assert pruned.events == 3
    await _mutations_done(ch.client)
    left = await ch.client.execute(f"SELECT site_key, ts_ms FROM {ch.table} ORDER BY ts_ms")  # noqa: S608
    assert left == [(keeper, rows[2].ts), (short, rows[4].ts), (keeper, rows[5].ts)]
    months = await ch.client.execute(
        "SELECT DISTINCT partition FROM system.parts"
        " WHERE database = %(db)s AND table = %(table)s AND active",
        {"db": ch.client.database, "table": EVENTS_TABLE},
    )
    assert "202512" not in {row[0] for row in months}  # dropped whole, no mutation needed
    assert (await run_retention(platform, now=NOW)).events == 0  # nothing left to do


async def test_a_server_that_does_not_answer_is_a_503_not_an_answer(clickhouse: ClickHouseServer) -> None:
    nowhere = ClickHouse(ClickHouseSettings(url=f"clickhouse://127.0.0.1:{free_port()}", timeout=2))
    with pytest.raises(ClickHouseUnavailable) as raised:
        await nowhere.execute("SELECT 1")
    assert raised.value.status == 503
    wrong = ClickHouse(
        ClickHouseSettings(url=clickhouse.url, user=clickhouse.user, password="not-the-password", timeout=5)
    )
    with pytest.raises(ClickHouseUnavailable):
        await wrong.execute("SELECT 1")
    assert "not-the-password" not in repr(wrong.settings)
    await nowhere.close()
    await wrong.close()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PENTAD_ANALYTICS__STORE", "mongodb"),
        ("PENTAD_ANALYTICS__CLICKHOUSE__URL", "http://127.0.0.1:8123"),
        ("PENTAD_ANALYTICS__CLICKHOUSE__URL", "clickhouse://user:secret@127.0.0.1:9000"),
        ("PENTAD_ANALYTICS__CLICKHOUSE__DATABASE", "pentad; DROP DATABASE system"),
    ],
)
def test_bad_clickhouse_settings_are_refused_by_name(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(variable, value)
    settings = Settings(data_dir=tmp_path, apps=["analytics"])  # type: ignore[call-arg]
    with pytest.raises(SettingsError, match=variable):
        settings.app_settings("analytics", AnalyticsSettings)


def test_the_password_is_a_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PENTAD_ANALYTICS__STORE", "clickhouse")
    monkeypatch.setenv("PENTAD_ANALYTICS__CLICKHOUSE__PASSWORD", "s3cret-clickhouse")
    settings = Settings(data_dir=tmp_path, apps=["analytics"])  # type: ignore[call-arg]
    found = settings.app_settings("analytics", AnalyticsSettings)
    assert found.store == "clickhouse"
    assert found.clickhouse.password is not None
    assert found.clickhouse.password.get_secret_value() == "s3cret-clickhouse"
    assert "s3cret-clickhouse" not in repr(found) + str(found.model_dump())


async def test_page_traffic_by_source_category_comes_from_clickhouse(
    client: httpx.AsyncClient, platform: Platform, site: dict[str, str]
) -> None:
    """ads' reports ask `analytics.page_traffic` by source category: with this store the raw events are
    in ClickHouse, and so is the answer (pageviews only; custom events do not count)."""
    sent = [
        ("alice", event(path="/", ago=100, r="https://www.google.com/search?q=shop")),
        ("alice", event(path="/pricing", ago=40, r="https://www.google.com/search?q=shop")),
        ("alice", event("Signup", path="/pricing", ago=10, r="https://www.google.com/search?q=shop")),
        ("bob", event(path="/pricing?utm_source=newsletter&utm_medium=email", ago=30)),
        ("carol", event(path="/", ago=3000)),
        ("carol", event(path="/blog/1", ago=0)),
    ]
    for who, body in sent:
        assert (await post(client, body, who=who)).status_code == 202
    assert await platform.ingest.flush() == len(sent)
    today = datetime.now(UTC).date()
    ask = {"site_domain": site["domain"], "since": str(today - timedelta(days=1)), "until": str(today)}
    async with platform.database.transaction(writes=False) as session:
        answer = await platform.query(session, "analytics.page_traffic", {**ask, "by": "medium"})
        other = await platform.query(
            session, "analytics.page_traffic", {**ask, "site_domain": "other.example"}
        )
    assert answer["unavailable"] is None
    assert [(row["key"], row["visitors"], row["pageviews"]) for row in answer["rows"]] == [
        ("direct", 1, 2),
        ("search", 1, 2),
        ("email", 1, 1),
    ]
    assert (other["tracked"], other["rows"]) == (False, [])
