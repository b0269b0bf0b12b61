"""The jobs admin API: admins list, inspect and retry dead jobs; everyone else is refused."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from pentad.app import create_app
from pentad.core import audit
from pentad.core.config import Settings
from pentad.core.db.base import utcnow
from pentad.core.db.engine import Database
from pentad.core.jobs.queue import SecretPayload, enqueue
from pentad.core.jobs.registry import JobSpec
from pentad.core.platform import Platform
from tests.core.jobs.conftest import Recorder, app_with, set_job
from tests.factories import bearer, create_admin, create_user, issue_api_key, run_due_jobs

FAILING = "test.always_fails"
FINE = "test.fine"

JobsApp = tuple[httpx.AsyncClient, Platform, Recorder]


@pytest.fixture
async def jobs_app(settings: Settings, database: Database) -> AsyncIterator[JobsApp]:
    failing = Recorder(failures=2)
    app: FastAPI = create_app(
        settings,
        database=database,
        apps=[app_with(JobSpec(FAILING, failing, max_attempts=2), JobSpec(FINE, Recorder()))],
    )
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client, app.state.platform, failing


async def _admin(platform: Platform) -> dict[str, str]:
    return bearer(await issue_api_key(platform, await create_admin(platform)))


async def _enqueue(platform: Platform, name: str, secret: SecretPayload | None = None) -> uuid.UUID:
    async with platform.database.transaction() as session:
        job_id = await enqueue(session, name, {"n": 1}, secret=secret)
    assert job_id is not None
    return job_id


async def dead_job(platform: Platform) -> uuid.UUID:
    """A job of the always-failing kind, run until it is dead (each retry made due at once)."""
    job_id = await _enqueue(platform, FAILING, secret=SecretPayload(platform.keyring, {"token": "hidden"}))
    for _ in range(2):
        await run_due_jobs(platform)
        await set_job(platform, job_id, run_at=utcnow())
    return job_id


async def test_admins_list_dead_jobs_and_retry_them(jobs_app: JobsApp) -> None:
    client, platform, failing = jobs_app
    headers = await _admin(platform)
    dead = await dead_job(platform)
    fine = await _enqueue(platform, FINE)

    listed = await client.get("/api/jobs", params={"status": "dead"}, headers=headers)
    assert listed.status_code == 200
    assert [job["id"] for job in listed.json()["items"]] == [str(dead)]
    job = (await client.get(f"/api/jobs/{dead}", headers=headers)).json()
    assert (job["name"], job["status"], job["attempts"], job["max_attempts"]) == (FAILING, "dead", 2, 2)
    assert job["last_error"].endswith("RuntimeError: failing on purpose")
    assert "secret" not in job
    assert "hidden" not in listed.text

    retried = await client.post(f"/api/jobs/{dead}/retry", headers=headers)
    assert retried.status_code == 200
    assert (retried.json()["status"], retried.json()["attempts"]) == ("queued", 0)
    await run_due_jobs(platform)
    done = (await client.get(f"/api/jobs/{dead}", headers=headers)).json()
    assert (done["status"], done["attempts"]) == ("succeeded", 1)
    assert [attempt for attempt, _ in failing.calls] == [1, 2, 1]
    async with platform.database.transaction(writes=False) as session:
        events = await audit.list_events(session, action="job.retry")
    assert [e.resource_id for e in events] == [str(dead)]

    newest = await client.get("/api/jobs", params={"limit": 1}, headers=headers)
    assert [job["id"] for job in newest.json()["items"]] == [str(fine)]
    older = await client.get(
        "/api/jobs", params={"limit": 1, "before": newest.json()["next_before"]}, headers=headers
    )
    assert [job["id"] for job in older.json()["items"]] == [str(dead)]
    by_kind = await client.get("/api/jobs", params={"name": FINE}, headers=headers)
    assert [job["id"] for job in by_kind.json()["items"]] == [str(fine)]


async def test_only_dead_jobs_can_be_retried(jobs_app: JobsApp) -> None:
    client, platform, _ = jobs_app
    headers = await _admin(platform)
    queued = await _enqueue(platform, FINE)
    refused = await client.post(f"/api/jobs/{queued}/retry", headers=headers)
    assert refused.status_code == 409
    assert refused.json()["code"] == "job_not_retryable"
    missing = await client.post(f"/api/jobs/{uuid.uuid4()}/retry", headers=headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "job_not_found")
    assert (await client.get(f"/api/jobs/{uuid.uuid4()}", headers=headers)).status_code == 404
    assert (await client.get("/api/jobs", params={"status": "lost"}, headers=headers)).status_code == 422


async def test_a_kind_this_process_does_not_run_has_no_attempt_limit(jobs_app: JobsApp) -> None:
    client, platform, _ = jobs_app
    other = await _enqueue(platform, "elsewhere.only")
    job = (await client.get(f"/api/jobs/{other}", headers=await _admin(platform))).json()
    assert (job["status"], job["max_attempts"]) == ("queued", None)


async def test_members_and_anonymous_callers_are_refused(jobs_app: JobsApp) -> None:
    client, platform, _ = jobs_app
    dead = await dead_job(platform)
    member = bearer(await issue_api_key(platform, await create_user(platform)))
    for method, path in (
        ("GET", "/api/jobs"),
        ("GET", f"/api/jobs/{dead}"),
        ("POST", f"/api/jobs/{dead}/retry"),
    ):
        assert (await client.request(method, path)).status_code == 401
        denied = await client.request(method, path, headers=member)
        assert denied.status_code == 403
        assert denied.json()["code"] == "permission_denied"
    assert (await client.get(f"/api/jobs/{dead}", headers=await _admin(platform))).json()["status"] == "dead"
