"""The jobs admin page: admins see the jobs and retry dead ones from a form; others are kept out."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from pentad.app import create_app
from pentad.core.auth.models import User
from pentad.core.config import Settings
from pentad.core.db.engine import Database
from pentad.core.jobs.models import JobStatus
from pentad.core.jobs.registry import JobSpec
from pentad.core.platform import Platform
from tests.core.jobs.conftest import Recorder, app_with, get_job
from tests.core.jobs.test_endpoints import FAILING, dead_job
from tests.factories import DEFAULT_PASSWORD, create_admin, create_user

Browser = tuple[httpx.AsyncClient, Platform]


@pytest.fixture
async def browser(settings: Settings, database: Database) -> AsyncIterator[Browser]:
    app: FastAPI = create_app(
        settings, database=database, apps=[app_with(JobSpec(FAILING, Recorder(failures=2), max_attempts=2))]
    )
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client, app.state.platform


async def _sign_in(client: httpx.AsyncClient, user: User) -> None:
    response = await client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 303


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found
    return found.group(1)


async def test_an_admin_sees_a_dead_job_and_retries_it(browser: Browser) -> None:
    client, platform = browser
    job_id = await dead_job(platform)
    await _sign_in(client, await create_admin(platform))

    page = await client.get("/admin/jobs", params={"status": "dead"})
    assert page.status_code == 200
    assert str(job_id) in page.text
    assert "RuntimeError: failing on purpose" in page.text
    assert f'action="/admin/jobs/{job_id}/retry"' in page.text

    retried = await client.post(
        f"/admin/jobs/{job_id}/retry", data={"csrf_token": _csrf(page.text), "status": "dead"}
    )
    assert retried.status_code == 303
    assert retried.headers["location"] == "/admin/jobs?status=dead&notice=job-retried"
    assert (await get_job(platform, job_id)).status == JobStatus.QUEUED
    after = await client.get(retried.headers["location"])
    assert "The job was queued again." in after.text
    assert str(job_id) not in after.text


async def test_retrying_a_job_that_is_not_dead_shows_why(browser: Browser) -> None:
    client, platform = browser
    job_id = await dead_job(platform)
    await _sign_in(client, await create_admin(platform))
    csrf = _csrf((await client.get("/admin/jobs")).text)
    await client.post(f"/admin/jobs/{job_id}/retry", data={"csrf_token": csrf})
    again = await client.post(f"/admin/jobs/{job_id}/retry", data={"csrf_token": csrf})
    assert again.status_code == 409
    assert "Only dead jobs can be retried; this one is queued." in again.text


async def test_the_page_filters_by_kind_and_ignores_broken_filters(browser: Browser) -> None:
    client, platform = browser
    job_id = await dead_job(platform)
    await _sign_in(client, await create_admin(platform))
    other = await client.get("/admin/jobs", params={"name": "nothing.like.this"})
    assert str(job_id) not in other.text
    assert "No jobs match." in other.text
    lenient = await client.get("/admin/jobs", params={"status": "bogus", "before": "not-an-id"})
    assert lenient.status_code == 200
    assert str(job_id) in lenient.text


async def test_members_get_a_403_page_and_visitors_the_sign_in(browser: Browser) -> None:
    client, platform = browser
    job_id = await dead_job(platform)
    anonymous = await client.get("/admin/jobs")
    assert (anonymous.status_code, anonymous.headers["location"]) == (303, "/login?next=%2Fadmin%2Fjobs")
    assert (await client.post(f"/admin/jobs/{uuid.uuid4()}/retry")).status_code == 303
    await _sign_in(client, await create_user(platform))
    assert (await client.get("/admin/jobs")).status_code == 403
    refused = await client.post(f"/admin/jobs/{job_id}/retry", data={"csrf_token": "0" * 64})
    assert refused.status_code == 403
    assert (await get_job(platform, job_id)).status == JobStatus.DEAD
