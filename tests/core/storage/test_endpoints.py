"""`GET /files/{key}`, which serves the local backend's signed URLs: signatures, expiry, ranges, and the
headers that keep an uploaded file from acting as a page of the platform."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from pentad.core.storage import Storage, signing
from tests.core.storage.conftest import chunks_of

CONTENT = b"0123456789abcdef"


def path_of(url: str) -> str:
    """The URL without scheme and host: the test client talks to the app directly."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    query.update(changes)
    return f"{parts.path}?{urlencode(query)}"


@pytest.fixture
async def signed(local_storage: Storage) -> str:
    await local_storage.put("docs/digits.txt", chunks_of(CONTENT), content_type="text/plain")
    return path_of(await local_storage.signed_url("docs/digits.txt", expires_in=300))


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


async def test_a_signed_url_serves_the_file_with_protective_headers(
    files_client: httpx.AsyncClient, signed: str
) -> None:
    response = await files_client.get(signed)
    assert response.status_code == 200
    assert response.content == CONTENT
    headers = response.headers
    assert headers["content-type"] == "text/plain"
    assert headers["content-length"] == "16"
    assert headers["accept-ranges"] == "bytes"
    assert headers["etag"].startswith('"')
    assert headers["last-modified"].endswith(" GMT")
    assert "sandbox" in headers["content-security-policy"]
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"].startswith("private, max-age=")
    assert int(headers["cache-control"].rpartition("=")[2]) <= 300
    assert "content-disposition" not in headers


async def test_the_base_url_prefixes_signed_urls(local_storage: Storage) -> None:
    url = await local_storage.signed_url("docs/digits.txt")
    assert url.startswith("http://127.0.0.1:8000/files/docs/digits.txt?expires=")


@pytest.mark.parametrize(
    "tamper",
    [
        {"signature": "0" * 64},
        {"signature": ""},
        {"signature": "é"},
        {"expires": str(int(time.time()) + 10_000)},
        {"expires": "soon"},
        {"expires": "9" * 5000},
        {"filename": "other.txt"},
    ],
)
async def test_a_forged_or_altered_link_is_refused(
    files_client: httpx.AsyncClient, signed: str, tamper: dict[str, str]
) -> None:
    assert_problem(await files_client.get(with_query(signed, **tamper)), 403, "invalid_signature")


async def test_a_link_without_its_signature_is_refused(files_client: httpx.AsyncClient, signed: str) -> None:
    assert_problem(await files_client.get(urlsplit(signed).path), 403, "invalid_signature")
    assert_problem(await files_client.get("/files/docs/digits.txt?expires=1"), 403, "invalid_signature")


async def test_a_signature_is_bound_to_its_key(
    files_client: httpx.AsyncClient, local_storage: Storage, signed: str
) -> None:
    await local_storage.put("docs/secret.txt", chunks_of(b"secret"), content_type="text/plain")
    forged = signed.replace("/files/docs/digits.txt", "/files/docs/secret.txt")
    assert_problem(await files_client.get(forged), 403, "invalid_signature")


async def test_a_signature_from_another_secret_is_refused(
    files_client: httpx.AsyncClient, signed: str
) -> None:
    query = parse_qs(urlsplit(signed).query)
    expires = int(query["expires"][0])
    foreign = signing.UrlSigner(b"another-platform-secret-0123456789abcdef").sign(
        "docs/digits.txt", expires, None
    )
    assert_problem(await files_client.get(with_query(signed, signature=foreign)), 403, "invalid_signature")


async def test_a_link_works_until_it_expires(
    files_client: httpx.AsyncClient, local_storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    await local_storage.put("brief", chunks_of(b"now you see it"), content_type="text/plain")
    url = path_of(await local_storage.signed_url("brief", expires_in=5))
    assert (await files_client.get(url)).status_code == 200

    class Later:
        @staticmethod
        def time() -> float:
            return time.time() + 6

    monkeypatch.setattr(signing, "time", Later)
    assert_problem(await files_client.get(url), 403, "link_expired")


async def test_a_download_name_is_sanitised(files_client: httpx.AsyncClient, local_storage: Storage) -> None:
    await local_storage.put("report", chunks_of(b"a,b"), content_type="text/csv")
    url = await local_storage.signed_url("report", download_name='../../etc/"evil"\r\nSet-Cookie: x=1;.csv')
    response = await files_client.get(path_of(url))
    assert response.status_code == 200
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment; filename=\"_evil_Set-Cookie: x=1;.csv\"; filename*=UTF-8''")
    assert "\r" not in disposition
    assert "\n" not in disposition
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    ("range_header", "content_range", "expected"),
    [
        ("bytes=2-5", "bytes 2-5/16", b"2345"),
        ("bytes=10-", "bytes 10-15/16", b"abcdef"),
        ("bytes=-3", "bytes 13-15/16", b"def"),
        ("bytes=12-400", "bytes 12-15/16", b"cdef"),
    ],
)
async def test_a_range_gets_206_partial_content(
    files_client: httpx.AsyncClient, signed: str, range_header: str, content_range: str, expected: bytes
) -> None:
    response = await files_client.get(signed, headers={"Range": range_header})
    assert response.status_code == 206
    assert response.headers["content-range"] == content_range
    assert response.headers["content-length"] == str(len(expected))
    assert response.content == expected


async def test_an_unsatisfiable_range_gets_416(files_client: httpx.AsyncClient, signed: str) -> None:
    response = await files_client.get(signed, headers={"Range": "bytes=16-"})
    assert_problem(response, 416, "range_not_satisfiable")
    assert response.headers["content-range"] == "bytes */16"


@pytest.mark.parametrize("range_header", ["bytes=0-1,4-5", "pages=1-2", "bytes=9-3", "bytes=nonsense"])
async def test_a_range_http_says_to_ignore_gets_the_whole_file(
    files_client: httpx.AsyncClient, signed: str, range_header: str
) -> None:
    response = await files_client.get(signed, headers={"Range": range_header})
    assert (response.status_code, response.content) == (200, CONTENT)


async def test_if_range_gives_a_range_only_of_the_same_version(
    files_client: httpx.AsyncClient, local_storage: Storage, signed: str
) -> None:
    etag = (await files_client.get(signed)).headers["etag"]
    same = await files_client.get(signed, headers={"Range": "bytes=0-1", "If-Range": etag})
    assert (same.status_code, same.content) == (206, b"01")

    await local_storage.put("docs/digits.txt", chunks_of(b"new content"), content_type="text/plain")
    changed = await files_client.get(signed, headers={"Range": "bytes=0-1", "If-Range": etag})
    assert (changed.status_code, changed.content) == (200, b"new content")


async def test_a_deleted_file_is_404_even_with_a_valid_link(
    files_client: httpx.AsyncClient, local_storage: Storage, signed: str
) -> None:
    await local_storage.delete("docs/digits.txt")
    assert_problem(await files_client.get(signed), 404, "object_not_found")


def test_the_route_is_not_part_of_the_api_description(files_app: FastAPI) -> None:
    assert not [path for path in files_app.openapi()["paths"] if path.startswith("/files")]
