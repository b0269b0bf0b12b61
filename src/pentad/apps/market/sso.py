"""EVE SSO v2: OAuth 2.0 authorization code with PKCE (S256), token refresh and revocation.

The flow (developers.eveonline.com, "Single Sign-On"): the user is sent to `/v2/oauth/authorize` with our
client id, redirect URI, scopes, a `state` and the PKCE `code_challenge` (S256 of a random verifier); the
SSO sends them back to the redirect URI with `code` and `state`; we POST the code with the verifier to
`/v2/oauth/token` and get a short-lived access token (a JWT, checked by sso_jwks) and a refresh token.
Refreshing answers a new refresh token (store it: the old one may stop working); `/v2/oauth/revoke` ends
a refresh token. With a client secret the token endpoint is called with HTTP Basic auth; without one (a
public PKCE client) the client id goes in the form.

Errors: `InvalidGrant` when the SSO refuses the code or refresh token (used, expired, revoked: the user
must sign in again); `SsoUnavailable` when it cannot be reached or answers 5xx (try later); `SsoError`
for anything else (our configuration is wrong). Tokens are never put in an exception or a log line.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

AUTHORIZE_PATH = "/v2/oauth/authorize"
TOKEN_PATH = "/v2/oauth/token"  # noqa: S105 - a path, not a secret
REVOKE_PATH = "/v2/oauth/revoke"
TIMEOUT = httpx.Timeout(15.0, connect=5.0)


class SsoError(Exception):
    """The SSO refused a request for a reason the user cannot fix (our client id or secret)."""

    def __init__(self, message: str, *, error: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.status = status


class InvalidGrant(SsoError):
    """The code or refresh token is not (or no longer) valid: the character must be linked again."""


class SsoUnavailable(SsoError):
    """The SSO could not be reached or failed (5xx, timeout): try again later."""


@dataclass(frozen=True)
class SsoConfig:
    """One registered SSO application: where the SSO is, who we are, where it sends users back."""

    base_url: str
    client_id: str
    redirect_uri: str
    client_secret: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TokenSet:
    """What the token endpoint answers. Never logged (repr hides the tokens)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - a token kind, not a secret


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def new_verifier() -> str:
    """A PKCE code verifier: 86 characters of the unreserved set (RFC 7636 asks for 43 to 128)."""
    return secrets.token_urlsafe(64)


def code_challenge(verifier: str) -> str:
    """The S256 challenge of a verifier: BASE64URL(SHA256(verifier)) without padding (RFC 7636 §4.2)."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def new_state() -> str:
    """An unguessable `state` (256 bits)."""
    return secrets.token_urlsafe(32)


def authorize_url(
    config: SsoConfig, *, state: str, challenge: str, scopes: Sequence[str] | None = None
) -> str:
    """Where to send the user: the SSO's consent page for our application."""
    query = {
        "response_type": "code",
        "redirect_uri": config.redirect_uri,
        "client_id": config.client_id,
        "scope": " ".join(config.scopes if scopes is None else scopes),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": state,
    }
    return f"{config.base_url.rstrip('/')}{AUTHORIZE_PATH}?{urlencode(query)}"


class SsoClient:
    """Calls the SSO's token and revocation endpoints for one application."""

    def __init__(self, config: SsoConfig, *, http: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._http = http

    def _auth(self, form: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        if self.config.client_secret:
            pair = f"{self.config.client_id}:{self.config.client_secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        else:
            form["client_id"] = self.config.client_id
        return form, headers

    async def _post(self, path: str, form: dict[str, str]) -> httpx.Response:
        body, headers = self._auth(form)
        client = self._http or httpx.AsyncClient(timeout=TIMEOUT)
        try:
            return await client.post(self.config.base_url.rstrip("/") + path, data=body, headers=headers)
        except httpx.HTTPError as error:
            raise SsoUnavailable(f"the SSO could not be reached ({type(error).__name__})") from None
        finally:
            if self._http is None:
                await client.aclose()

    @staticmethod
    def _refused(response: httpx.Response) -> SsoError:
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, str) else None
        if response.status_code >= 500 or response.status_code == 429:
            return SsoUnavailable(
                f"the SSO answered {response.status_code}", error=error, status=response.status_code
            )
        if error == "invalid_grant":
            return InvalidGrant("the SSO refused the grant", error=error, status=response.status_code)
        return SsoError(
            f"the SSO refused the request ({error or response.status_code})",
            error=error,
            status=response.status_code,
        )

    async def _token(self, form: dict[str, str]) -> TokenSet:
        response = await self._post(TOKEN_PATH, form)
        if response.status_code != 200:
            raise self._refused(response)
        try:
            body = response.json()
            return TokenSet(
                access_token=str(body["access_token"]),
                refresh_token=str(body["refresh_token"]),
                expires_in=int(body.get("expires_in", 1199)),
                token_type=str(body.get("token_type", "Bearer")),
            )
        except (ValueError, KeyError, TypeError):
            raise SsoUnavailable("the SSO's token answer was malformed") from None

    async def exchange_code(self, code: str, verifier: str) -> TokenSet:
        """Trade the authorization code (with its PKCE verifier) for tokens."""
        return await self._token(
            {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
        )

    async def refresh(self, refresh_token: str) -> TokenSet:
        """A new access token, and the refresh token to keep from now on."""
        return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def revoke(self, refresh_token: str) -> None:
        """End a refresh token at the SSO (an unknown or already revoked one is not an error)."""
        response = await self._post(REVOKE_PATH, {"token_type_hint": "refresh_token", "token": refresh_token})
        if response.status_code != 200:
            error = self._refused(response)
            if not isinstance(error, InvalidGrant):
                raise error
