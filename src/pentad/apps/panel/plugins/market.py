"""The marketplace: signed plugin indexes served by any static HTTP host, and their packages.

A source is the URL of an `index.json`; its ed25519 signature is at the same URL plus `.sig` (base64). The
index must be signed by one of PENTAD_PANEL__MARKET_TRUSTED_KEYS:

    {"name": "Example market", "plugins": [
      {"manifest": {... pentad-plugin.json ...}, "url": "packages/webhook-notifier-1.0.0.zip",
       "sha256": "<hex of the zip>", "signature": "<publisher's signature of the zip, base64>",
       "publisher_key": "<publisher's public key, base64>"}]}

A package (`url`, relative to the index) is a zip with `pentad-plugin.json` at its root. Before anything
is unpacked: its SHA-256 must be the index's, its publisher (manifest `publisher` + `publisher_key`) must
be trusted by an admin, and the signature must be that key's over the zip's bytes. Unpacking refuses
absolute paths, `..`, links, more than MAX_ENTRIES entries or MAX_UNPACKED_BYTES, and a manifest that is
not the index's.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urljoin

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pentad.apps.panel.plugins.manifest import MANIFEST_FILE, InvalidManifest, Manifest, parse_manifest
from pentad.apps.panel.plugins.signing import SignatureInvalid, sign, verify, verify_any
from pentad.core.errors import AppError, BadRequest

MAX_INDEX_BYTES = 4 * 1024 * 1024
MAX_PACKAGE_BYTES = 20 * 1024 * 1024
MAX_UNPACKED_BYTES = 50 * 1024 * 1024
MAX_ENTRIES = 2000
FETCH_TIMEOUT = 15.0


class MarketUnreachable(AppError):
    status, code = 502, "market_unreachable"


class IndexSignatureInvalid(AppError):
    status, code = 422, "index_signature_invalid"

    def __init__(self, source: str, **kwargs: Any) -> None:
        super().__init__(
            f"The index at {source} is not signed by a trusted market key; it was not used.", **kwargs
        )


class PackageRefused(AppError):
    """A package that fails a check: tampered (SHA-256), unknown publisher, bad signature, bad content."""

    status, code = 422, "package_refused"

    def __init__(self, reason: str, message: str, **kwargs: Any) -> None:
        super().__init__(message, reason=reason, **kwargs)


class MarketEntryNotFound(BadRequest):
    code = "market_entry_not_found"


class IndexEntry(BaseModel):
    model_config = ConfigDict(extra="ignore")

    manifest: dict[str, Any]
    url: str = Field(min_length=1, max_length=2000)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    signature: str = Field(min_length=1, max_length=200)
    publisher_key: str = Field(min_length=1, max_length=100)


class MarketPlugin(BaseModel):
    """A plugin offered by a source, as the API shows it."""

    source: str
    manifest: Manifest
    url: str
    sha256: str
    signature: str
    publisher_key: str


async def _get(client: httpx.AsyncClient, url: str, limit: int) -> bytes:
    try:
        async with client.stream("GET", url) as response:
            if response.status_code != 200:
                raise MarketUnreachable(f"{url} answered {response.status_code}.")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    raise MarketUnreachable(f"{url} is larger than {limit} bytes.")
            return bytes(body)
    except httpx.HTTPError as exc:
        raise MarketUnreachable(f"{url} could not be fetched: {type(exc).__name__}.") from None


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=False, trust_env=False)


async def fetch_index(
    source: str, trusted_keys: list[str], problems: list[str] | None = None
) -> list[MarketPlugin]:
    """The plugins a source offers, once its index's signature checked; entries that are not valid are
    left out (a market's typo does not hide the rest) and described in `problems` (JSON pointers into the
    index: `/plugins/2/manifest/capabilities: ...`)."""
    async with _client() as client:
        data = await _get(client, source, MAX_INDEX_BYTES)
        signature = (await _get(client, source + ".sig", 1024)).decode(errors="replace")
    try:
        verify_any(trusted_keys, data, signature)
    except SignatureInvalid:
        raise IndexSignatureInvalid(source) from None
    try:
        document = json.loads(data)
        entries = document["plugins"]
        assert isinstance(entries, list)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise MarketUnreachable(f"{source} is not a plugin index.") from None
    found = []
    for number, raw in enumerate(entries):
        try:
            entry = IndexEntry.model_validate(raw)
            manifest = parse_manifest(entry.manifest)
        except ValidationError as exc:
            if problems is not None:
                problems += [
                    f"/plugins/{number}/{'/'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
                ]
            continue
        except InvalidManifest as exc:
            if problems is not None:
                problems += [f"/plugins/{number}/manifest{issue['msg']}" for issue in exc.extra["errors"]]
            continue
        found.append(
            MarketPlugin(
                source=source,
                manifest=manifest,
                url=urljoin(source, entry.url),
                sha256=entry.sha256,
                signature=entry.signature,
                publisher_key=entry.publisher_key,
            )
        )
    return found


def check_package(offer: MarketPlugin, data: bytes, trusted: dict[str, list[str]]) -> None:
    """PackageRefused unless `data` is the package `offer` describes, signed by a trusted publisher key."""
    if hashlib.sha256(data).hexdigest() != offer.sha256:
        raise PackageRefused("tampered", "The package's SHA-256 is not the one in the signed index.")
    publisher = offer.manifest.publisher
    if offer.publisher_key not in trusted.get(publisher, []):
        raise PackageRefused(
            "unknown_publisher",
            f"The publisher {publisher!r} with this key is not trusted; an admin adds it first "
            "(`pentad panel plugins trust-key`).",
        )
    try:
        verify(offer.publisher_key, data, offer.signature)
    except SignatureInvalid:
        raise PackageRefused(
            "bad_signature", "The publisher's signature of the package is not valid."
        ) from None


async def fetch_package(offer: MarketPlugin, trusted: dict[str, list[str]]) -> bytes:
    async with _client() as client:
        data = await _get(client, offer.url, MAX_PACKAGE_BYTES)
    check_package(offer, data, trusted)
    return data


def unpack(data: bytes, target: Path, expected: Manifest) -> Manifest:
    """Unpack the checked package into `target` (replaced); its manifest, which must be `expected`."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except zipfile.BadZipFile:
        raise PackageRefused("bad_package", "The package is not a zip archive.") from None
    if len(infos) > MAX_ENTRIES or sum(info.file_size for info in infos) > MAX_UNPACKED_BYTES:
        raise PackageRefused("bad_package", "The package unpacks to too many files or bytes.")
    for info in infos:
        path = PurePosixPath(info.filename)
        mode = info.external_attr >> 16
        if path.is_absolute() or ".." in path.parts or "\\" in info.filename or stat.S_ISLNK(mode):
            raise PackageRefused("bad_package", f"The package entry {info.filename!r} is not allowed.")
    try:
        manifest = parse_manifest(json.loads(archive.read(MANIFEST_FILE)))
    except (KeyError, ValueError):
        raise PackageRefused("bad_package", f"The package has no valid {MANIFEST_FILE}.") from None
    if manifest != expected:
        raise PackageRefused("bad_package", "The package's manifest is not the one in the signed index.")
    staging = target.with_name(target.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for info in infos:
        destination = staging / info.filename
        if info.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as source, destination.open("wb") as sink:
            shutil.copyfileobj(source, sink)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return manifest


def build_package(folder: Path) -> bytes:
    """A package (zip) of a plugin's folder, for publishers (`pentad panel plugins pack`)."""
    parse_manifest(json.loads((folder / MANIFEST_FILE).read_text()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=(2000, 1, 1, 0, 0, 0))
                archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def index_entry(package: bytes, url: str, private_key: str, public_key: str) -> dict[str, Any]:
    """The index entry of a package signed with the publisher's `private_key`."""
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        manifest = json.loads(archive.read(MANIFEST_FILE))
    return {
        "manifest": manifest, "url": url, "sha256": hashlib.sha256(package).hexdigest(),
        "signature": sign(private_key, package), "publisher_key": public_key,
    }  # fmt: skip
