"""EVE SSO access tokens: JWTs checked against the SSO's published keys (JWKS).

What is checked (developers.eveonline.com, "Validating JWT tokens"): the signature, with a key of the SSO's
JWKS found by the token's `kid` (RS256 or ES256, nothing else, never `none`); the issuer (the SSO's host,
with or without its scheme); the audience, which must hold both our client id and "EVE Online"; expiry
(with a small leeway for clock skew); `sub` of the form `CHARACTER:EVE:<id>`, and the character's name and
owner hash. A token that fails any check raises `TokenInvalid` with a short reason (never the token).

The JWKS is found through the SSO's metadata (`/.well-known/oauth-authorization-server` → `jwks_uri`),
kept for `ttl` seconds, and fetched again at once when a token names a key it does not hold (the SSO
rotated its keys). Unknown key ids cannot make us hammer the SSO: a refetch for an unknown kid happens at
most once per `cooldown` seconds (in between, such a token cannot be checked: JwksUnavailable, not a
verdict), and concurrent verifications share one fetch.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt

ALGORITHMS = ("RS256", "ES256")
EVE_AUDIENCE = "EVE Online"
SUBJECT = re.compile(r"CHARACTER:EVE:([1-9][0-9]{0,18})")
METADATA_PATH = "/.well-known/oauth-authorization-server"
DEFAULT_JWKS_PATH = "/oauth/jwks"


class TokenInvalid(Exception):
    """The access token is not one the SSO issued to us for a character, or it has expired."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JwksUnavailable(Exception):
    """The SSO's keys could not be fetched (network, 5xx, malformed document)."""


@dataclass(frozen=True)
class CharacterToken:
    """What a verified access token says about the character it was issued for."""

    character_id: int
    name: str
    owner_hash: str
    scopes: tuple[str, ...]
    expires_at: datetime
    claims: Mapping[str, Any] = field(repr=False)


def accepted_issuers(base_url: str) -> tuple[str, ...]:
    """The SSO writes `iss` as its host (`login.eveonline.com`) or its URL (`https://login.eveonline.com`)."""
    parts = urlsplit(base_url.rstrip("/"))
    return (parts.netloc, f"{parts.scheme}://{parts.netloc}")


def _scopes(claim: object) -> tuple[str, ...]:
    # One scope comes as a string, several as a list.
    if claim is None:
        return ()
    if isinstance(claim, str):
        return (claim,)
    if isinstance(claim, list) and all(isinstance(item, str) for item in claim):
        return tuple(claim)
    raise TokenInvalid("malformed scp claim")


class JwksCache:
    """The SSO's signing keys, fetched through its metadata and cached; `verify` checks an access token."""

    def __init__(
        self,
        base_url: str,
        *,
        http: httpx.AsyncClient | None = None,
        ttl: float = 3600.0,
        cooldown: float = 60.0,
        leeway: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = http
        self.ttl = ttl
        self.cooldown = cooldown
        self.leeway = leeway
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._unknown_refetch_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0
        """How many times the JWKS was fetched (tests and metrics)."""

    async def _get(self, url: str) -> Any:
        client = self._http or httpx.AsyncClient(timeout=10.0)
        try:
            response = await client.get(url, headers={"Accept": "application/json"})
            if response.status_code != 200:
                raise JwksUnavailable(f"{url} answered {response.status_code}")
            return response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise JwksUnavailable(f"{url}: {type(error).__name__}") from None
        finally:
            if self._http is None:
                await client.aclose()

    async def _fetch(self) -> None:
        metadata = await self._get(self.base_url + METADATA_PATH)
        jwks_uri = metadata.get("jwks_uri") if isinstance(metadata, dict) else None
        document = await self._get(
            jwks_uri if isinstance(jwks_uri, str) else self.base_url + DEFAULT_JWKS_PATH
        )
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise JwksUnavailable("the JWKS has no keys")
        keys: dict[str, jwt.PyJWK] = {}
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("alg") not in ALGORITHMS or not entry.get("kid"):
                continue  # SkipUnresolvedJsonWebKeys: keys we cannot use are left out
            try:
                keys[str(entry["kid"])] = jwt.PyJWK(entry)
            except jwt.PyJWTError:
                continue
        if not keys:
            raise JwksUnavailable("the JWKS has no RS256 or ES256 key")
        self._keys = keys
        self._fetched_at = self._clock()
        self.fetches += 1

    async def key(self, kid: str) -> jwt.PyJWK:
        """The key `kid`, fetching the JWKS when the cache is empty or stale, or when the kid is unknown
        (the SSO rotated its keys). TokenInvalid when a fresh JWKS does not hold it; JwksUnavailable when
        the JWKS cannot be fetched, or an unknown kid comes within `cooldown` seconds of the last refetch
        for one (it cannot be checked now; never a verdict on the token)."""
        async with self._lock:
            now = self._clock()
            if self._fetched_at is None or now - self._fetched_at >= self.ttl:
                await self._fetch()
            elif kid not in self._keys:
                if self._unknown_refetch_at is not None and now - self._unknown_refetch_at < self.cooldown:
                    raise JwksUnavailable("unknown signing key; the JWKS was fetched moments ago")
                await self._fetch()
                self._unknown_refetch_at = now
            found = self._keys.get(kid)
        if found is None:
            raise TokenInvalid("unknown signing key")
        return found

    async def verify(self, token: str, client_id: str) -> CharacterToken:
        """Check an access token issued to `client_id`; TokenInvalid with the reason when it fails."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenInvalid("not a JWT") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in ALGORITHMS:
            raise TokenInvalid("unsupported algorithm")
        if not isinstance(kid, str) or not kid:
            raise TokenInvalid("no key id")
        key = await self.key(kid)
        if key.algorithm_name != algorithm:
            raise TokenInvalid("algorithm does not match the key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=client_id,
                issuer=accepted_issuers(self.base_url),
                leeway=self.leeway,
                options={"require": ["exp", "iss", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenInvalid("expired") from None
        except jwt.InvalidAudienceError:
            raise TokenInvalid("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise TokenInvalid("wrong issuer") from None
        except jwt.InvalidSignatureError:
            raise TokenInvalid("bad signature") from None
        except jwt.PyJWTError as error:
            raise TokenInvalid(f"invalid token ({type(error).__name__})") from None
        audience = claims.get("aud")
        if not isinstance(audience, list) or EVE_AUDIENCE not in audience:
            raise TokenInvalid("wrong audience")
        match = SUBJECT.fullmatch(str(claims.get("sub", "")))
        if match is None:
            raise TokenInvalid("not a character token")
        name, owner = claims.get("name"), claims.get("owner")
        if not isinstance(name, str) or not name or not isinstance(owner, str) or not owner:
            raise TokenInvalid("no character name or owner hash")
        return CharacterToken(
            character_id=int(match.group(1)),
            name=name,
            owner_hash=owner,
            scopes=_scopes(claims.get("scp")),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            claims=claims,
        )
