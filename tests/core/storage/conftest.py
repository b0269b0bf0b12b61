"""Storage fixtures: the local backend inside a running app (its signed URLs are served by the app), and
the S3 backend against a real `moto_server` process on a loopback port, each test in a fresh bucket."""

from __future__ import annotations

import hashlib
import random
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiobotocore.session import get_session  # type: ignore[import-untyped]
from fastapi import FastAPI

from pentad.app import create_app
from pentad.core.config import Settings
from pentad.core.platform import Platform
from pentad.core.storage import Storage, build_storage
from pentad.core.storage import s3 as s3_module
from tests.conftest import make_settings
from tests.factories import TEST_SECRET_KEY, free_port
from tests.servers import running

MOTO_ACCESS_KEY = "testing"
MOTO_SECRET_KEY = "testing-secret"
MIB = 1024 * 1024
MAX_OBJECT_BYTES = 64 * MIB
PART_SIZE = 5 * MIB
"""S3's smallest part, so that multi-MiB test objects take the multipart path."""
BLOCK_BYTES = 65_536

Fetch = Callable[..., Awaitable[httpx.Response]]


async def chunks_of(data: bytes, size: int = 65_536) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _block(counter: int) -> bytes:
    return random.Random(counter).randbytes(BLOCK_BYTES)


async def patterned(total: int) -> AsyncIterator[bytes]:
    """`total` reproducible bytes without short repeats, made as they are consumed."""
    for counter, start in enumerate(range(0, total, BLOCK_BYTES)):
        yield _block(counter)[: total - start]


def patterned_digest(total: int) -> str:
    """SHA-256 of `patterned(total)`."""
    digest = hashlib.sha256()
    for counter, start in enumerate(range(0, total, BLOCK_BYTES)):
        digest.update(_block(counter)[: total - start])
    return digest.hexdigest()


async def read_all(body: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in body])


@dataclass
class Backend:
    """A storage backend under test, and how a client fetches one of its signed URLs."""

    name: str
    storage: Storage
    fetch: Fetch


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3-compatible HTTP server (moto) on a spare loopback port, for the whole run."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    moto_server = Path(sys.executable).parent / "moto_server"
    command = [str(moto_server), "-H", "127.0.0.1", "-p", str(port)]
    # Any HTTP answer means moto is up; its root need not be a 2xx.
    with running(command, endpoint, log_path, ready_status=False):
        yield endpoint


def s3_settings(tmp_path: Path, endpoint: str, bucket: str, **storage: object) -> Settings:
    return make_settings(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        storage={
            "backend": "s3",
            "s3_endpoint_url": endpoint,
            "s3_bucket": bucket,
            "s3_access_key": MOTO_ACCESS_KEY,
            "s3_secret_key": MOTO_SECRET_KEY,
            "s3_part_size": PART_SIZE,
            "max_object_bytes": MAX_OBJECT_BYTES,
            **storage,
        },
    )


@pytest.fixture(scope="session")
def botocore_session() -> Any:
    """One session for every client of the run: each new session parses S3's service model again."""
    return get_session()


def raw_s3_client(session: Any, endpoint: str) -> Any:
    """A plain client for what the storage interface does not offer: creating buckets, inspecting uploads."""
    return session.create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=MOTO_ACCESS_KEY,
        aws_secret_access_key=MOTO_SECRET_KEY,
    )


@pytest.fixture
async def s3_bucket(botocore_session: Any, moto_endpoint: str) -> str:
    bucket = f"pentad-test-{uuid.uuid4().hex[:12]}"
    async with raw_s3_client(botocore_session, moto_endpoint) as s3:
        await s3.create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture
async def s3_storage(
    tmp_path: Path, moto_endpoint: str, s3_bucket: str, botocore_session: Any, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Storage]:
    monkeypatch.setattr(s3_module, "get_session", lambda: botocore_session)
    storage = build_storage(s3_settings(tmp_path, moto_endpoint, s3_bucket), TEST_SECRET_KEY.encode())
    yield storage
    await storage.close()


def local_settings(tmp_path: Path, **storage: object) -> Settings:
    return make_settings(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        storage={"local_path": tmp_path / "files", "max_object_bytes": MAX_OBJECT_BYTES, **storage},
    )


@pytest.fixture
async def files_app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    """An app on the local backend, with no database behind it: serving files never needs one."""
    app = create_app(local_settings(tmp_path), apps=[])
    yield app
    platform: Platform = app.state.platform
    await platform.close()


@pytest.fixture
async def files_client(files_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=files_app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def local_storage(files_app: FastAPI) -> Storage:
    storage: Storage = files_app.state.platform.storage
    return storage


@pytest.fixture
async def s3_http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each backend in turn, for the behaviour both must share."""
    if request.param == "local":
        client: httpx.AsyncClient = request.getfixturevalue("files_client")
        return Backend("local", request.getfixturevalue("local_storage"), client.get)
    http: httpx.AsyncClient = request.getfixturevalue("s3_http")
    return Backend("s3", request.getfixturevalue("s3_storage"), http.get)
