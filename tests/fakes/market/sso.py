"""A fake EVE SSO (v2) on loopback, speaking its wire protocol, with real signed JWTs.

Endpoints, as the real SSO has them:
- `GET /.well-known/oauth-authorization-server`: metadata (issuer, endpoints, `jwks_uri`).
- `GET /v2/oauth/authorize`: checks client id, redirect URI, `response_type=code`, the S256 challenge and
  the state, then consents at once for the character signed in at the fake (`login_as`) and answers 302 to
  the redirect URI with `code` and `state`; a refused consent (`deny_next`) redirects with
  `error=access_denied`.
- `POST /v2/oauth/token` (form): `authorization_code` (single-use code, redirect URI, PKCE S256 verifier)
  and `refresh_token` (rotation: the old refresh token stops working). Client authentication by HTTP Basic
  when the client has a secret, else `client_id` in the form. Errors as OAuth 2.0 JSON
  (`invalid_grant`, `invalid_client`, `invalid_request`, `unsupported_grant_type`).
- `POST /v2/oauth/revoke` (form): `token` + `token_type_hint=refresh_token`; 200 also for unknown tokens.
- `GET /oauth/jwks`: an RS256 key and an ES256 key (kid, alg, public parts), as the SSO publishes them.

Access tokens are JWTs like the SSO's (scp, jti, kid, sub `CHARACTER:EVE:<id>`, azp, tenant, tier, region,
aud [client id, "EVE Online"], name, owner, exp, iat, iss). Controls for tests: `rotate_keys()` (new kid:
the app must refetch the JWKS), `sign_with("ES256")`, `mint(...)` (a token with chosen claims, or signed by
a foreign key), `revoke_character(id)`, `transfer(id)` (new owner hash: the character was sold),
`fail_next(status, times)`. It counts requests per path (`hits`).

Run alone (bench, browser tests): `python -m tests.fakes.market.sso --client-id ID --redirect-uri URI`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import secrets
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

ACCESS_LIFETIME = 1199
CODE_LIFETIME = 300


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass
class Client:
    client_id: str
    redirect_uri: str
    secret: str | None = None


@dataclass
class Character:
    character_id: int
    name: str
    owner_hash: str = field(default_factory=lambda: _b64url(secrets.token_bytes(20)))


@dataclass
class Code:
    client_id: str
    redirect_uri: str
    challenge: str
    character_id: int
    scopes: list[str]
    issued: float
    used: bool = False


@dataclass
class Grant:
    client_id: str
    character_id: int
    scopes: list[str]
    active: bool = True


@dataclass
class SigningKey:
    kid: str
    algorithm: str
    private: Any

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(
            jwt.algorithms.get_default_algorithms()[self.algorithm].to_jwk(self.private.public_key())
        )
        jwk.update({"kid": self.kid, "alg": self.algorithm, "use": "sig"})
        return jwk


def _new_key(algorithm: str, kid: str | None = None) -> SigningKey:
    if algorithm == "RS256":
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        private = ec.generate_private_key(ec.SECP256R1())
    return SigningKey(kid or f"JWT-Signature-Key-{uuid.uuid4().hex[:8]}", algorithm, private)


def _oauth_error(error: str, description: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


class FakeSso:
    """The fake's state and its Starlette app; `serve()` runs it on a loopback port in a thread."""

    def __init__(self) -> None:
        self.base_url = ""
        self.clients: dict[str, Client] = {}
        self.characters: dict[int, Character] = {}
        self.codes: dict[str, Code] = {}
        self.grants: dict[str, Grant] = {}
        self.revoked: list[str] = []
        self.hits: Counter[str] = Counter()
        self.keys = {"RS256": _new_key("RS256"), "ES256": _new_key("ES256")}
        self.signing = "RS256"
        self.signed_in: int | None = None
        self.jwks_down = False
        """The JWKS endpoint answers 503."""
        self.forge_tokens = False
        """Sign access tokens with a key the JWKS does not hold (under a published kid): a forger's."""
        self._deny_next = False
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/.well-known/oauth-authorization-server", self._metadata),
                Route("/v2/oauth/authorize", self._authorize),
                Route("/v2/oauth/authorize/", self._authorize),
                Route("/v2/oauth/token", self._token, methods=["POST"]),
                Route("/v2/oauth/revoke", self._revoke, methods=["POST"]),
                Route("/oauth/jwks", self._jwks),
            ]
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # controls ------------------------------------------------------------------------------------

    def register(self, client_id: str, redirect_uri: str, secret: str | None = None) -> Client:
        client = Client(client_id, redirect_uri, secret)
        self.clients[client_id] = client
        return client

    def add_character(self, character_id: int, name: str) -> Character:
        character = Character(character_id, name)
        self.characters[character_id] = character
        return character

    def login_as(self, character_id: int) -> None:
        """The character the next consents are given for (the user's session at the SSO)."""
        self.signed_in = character_id

    def deny_next(self) -> None:
        self._deny_next = True

    def fail_next(self, status: int, times: int = 1) -> None:
        """The next `times` token/revoke requests answer `status` (5xx: the SSO is down)."""
        self._failures.extend([status] * times)

    def rotate_keys(self) -> None:
        """New signing keys under new kids; the old ones are no longer published."""
        self.keys = {"RS256": _new_key("RS256"), "ES256": _new_key("ES256")}

    def sign_with(self, algorithm: str) -> None:
        self.signing = algorithm

    def revoke_character(self, character_id: int) -> None:
        """The player revoked our application's access (every refresh token of the character dies)."""
        for grant in self.grants.values():
            if grant.character_id == character_id:
                grant.active = False

    def transfer(self, character_id: int) -> None:
        """The character moved to another EVE account: new owner hash."""
        self.characters[character_id].owner_hash = _b64url(secrets.token_bytes(20))

    def active_refresh_tokens(self, character_id: int) -> list[str]:
        return [t for t, g in self.grants.items() if g.character_id == character_id and g.active]

    def reset(self) -> None:
        self.codes.clear()
        self.grants.clear()
        self.revoked.clear()
        self.hits.clear()
        self._failures.clear()
        self._deny_next = False
        self.forge_tokens = False
        self.jwks_down = False
        self.signing = "RS256"

    def mint(
        self,
        character_id: int,
        client_id: str,
        *,
        scopes: list[str] | None = None,
        algorithm: str | None = None,
        key: SigningKey | None = None,
        lifetime: int = ACCESS_LIFETIME,
        overrides: dict[str, Any] | None = None,
    ) -> str:
        """An access token as the SSO signs it; `overrides` replace claims (None drops one), `key` signs
        with another key (its kid in the header)."""
        character = self.characters[character_id]
        signer = key or self.keys[algorithm or self.signing]
        now = int(time.time())
        claims: dict[str, Any] = {
            "scp": scopes if scopes is None or len(scopes) != 1 else scopes[0],
            "jti": str(uuid.uuid4()),
            "kid": signer.kid,
            "sub": f"CHARACTER:EVE:{character.character_id}",
            "azp": client_id,
            "tenant": "tranquility",
            "tier": "live",
            "region": "world",
            "aud": [client_id, "EVE Online"],
            "name": character.name,
            "owner": character.owner_hash,
            "exp": now + lifetime,
            "iat": now,
            "iss": self.base_url,
        }
        if claims["scp"] is None:
            del claims["scp"]
        for name, value in (overrides or {}).items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return jwt.encode(
            claims, signer.private, algorithm=signer.algorithm, headers={"kid": signer.kid, "typ": "JWT"}
        )

    # endpoints -----------------------------------------------------------------------------------

    async def _metadata(self, request: Request) -> Response:
        self.hits["metadata"] += 1
        base = self.base_url
        return JSONResponse(
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/v2/oauth/authorize",
                "token_endpoint": f"{base}/v2/oauth/token",
                "response_types_supported": ["code", "token"],
                "jwks_uri": f"{base}/oauth/jwks",
                "revocation_endpoint": f"{base}/v2/oauth/revoke",
                "revocation_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                    "client_secret_jwt",
                ],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                    "client_secret_jwt",
                ],
                "token_endpoint_auth_signing_alg_values_supported": ["HS256"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def _jwks(self, request: Request) -> Response:
        self.hits["jwks"] += 1
        if self.jwks_down:
            return JSONResponse({"error": "server_error"}, status_code=503)
        return JSONResponse(
            {"keys": [key.public_jwk() for key in self.keys.values()], "SkipUnresolvedJsonWebKeys": True}
        )

    async def _authorize(self, request: Request) -> Response:
        self.hits["authorize"] += 1
        query = request.query_params
        client = self.clients.get(query.get("client_id", ""))
        if client is None or query.get("redirect_uri") != client.redirect_uri:
            return JSONResponse(
                {"error": "invalid_request", "error_description": "bad client or redirect"}, status_code=400
            )
        state = query.get("state", "")
        if query.get("response_type") != "code" or not state:
            return _oauth_error("invalid_request", "response_type=code and state are required")
        if query.get("code_challenge_method") != "S256" or len(query.get("code_challenge", "")) != 43:
            return _oauth_error("invalid_request", "an S256 code_challenge is required")
        if self._deny_next:
            self._deny_next = False
            return RedirectResponse(
                f"{client.redirect_uri}?{urlencode({'error': 'access_denied', 'state': state})}", 302
            )
        character_id = self.signed_in
        if character_id is None or character_id not in self.characters:
            return _oauth_error("invalid_request", "no character is signed in at the fake SSO")
        code = secrets.token_urlsafe(16)
        self.codes[code] = Code(
            client_id=client.client_id,
            redirect_uri=client.redirect_uri,
            challenge=query["code_challenge"],
            character_id=character_id,
            scopes=[scope for scope in query.get("scope", "").split(" ") if scope],
            issued=time.time(),
        )
        return RedirectResponse(f"{client.redirect_uri}?{urlencode({'code': code, 'state': state})}", 302)

    def _client(self, request: Request, form: dict[str, str]) -> Client | None:
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return None
            client = self.clients.get(client_id)
            return (
                client
                if client is not None and client.secret is not None and client.secret == secret
                else None
            )
        client = self.clients.get(form.get("client_id", ""))
        return client if client is not None and client.secret is None else None

    def _failure(self) -> Response | None:
        with self._lock:
            status = self._failures.pop(0) if self._failures else None
        if status is None:
            return None
        return JSONResponse({"error": "server_error"}, status_code=status)

    def _issue(self, client: Client, character_id: int, scopes: list[str]) -> dict[str, Any]:
        refresh = _b64url(secrets.token_bytes(24))
        self.grants[refresh] = Grant(client.client_id, character_id, scopes)
        forged = _new_key(self.signing, kid=self.keys[self.signing].kid) if self.forge_tokens else None
        return {
            "access_token": self.mint(character_id, client.client_id, scopes=scopes, key=forged),
            "expires_in": ACCESS_LIFETIME,
            "token_type": "Bearer",
            "refresh_token": refresh,
        }

    async def _token(self, request: Request) -> Response:
        self.hits["token"] += 1
        failure = self._failure()
        if failure is not None:
            return failure
        if request.headers.get("content-type", "").split(";")[0] != "application/x-www-form-urlencoded":
            return _oauth_error("invalid_request", "the body must be form-encoded")
        form = {key: str(value) for key, value in (await request.form()).items()}
        client = self._client(request, form)
        if client is None:
            return _oauth_error("invalid_client", "unknown client or bad credentials", 401)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            code = self.codes.get(form.get("code", ""))
            if code is None or code.used or code.client_id != client.client_id:
                return _oauth_error("invalid_grant", "unknown or used authorization code")
            code.used = True
            if time.time() - code.issued > CODE_LIFETIME:
                return _oauth_error("invalid_grant", "the authorization code expired")
            if "redirect_uri" in form and form["redirect_uri"] != code.redirect_uri:
                return _oauth_error("invalid_grant", "redirect_uri does not match")
            verifier = form.get("code_verifier", "")
            if _b64url(hashlib.sha256(verifier.encode()).digest()) != code.challenge:
                return _oauth_error("invalid_grant", "code_verifier does not match the challenge")
            return JSONResponse(self._issue(client, code.character_id, code.scopes))
        if grant_type == "refresh_token":
            grant = self.grants.get(form.get("refresh_token", ""))
            if grant is None or not grant.active or grant.client_id != client.client_id:
                return _oauth_error("invalid_grant", "invalid refresh token")
            grant.active = False  # rotation: the old refresh token stops working
            return JSONResponse(self._issue(client, grant.character_id, grant.scopes))
        return _oauth_error("unsupported_grant_type", "authorization_code or refresh_token")

    async def _revoke(self, request: Request) -> Response:
        self.hits["revoke"] += 1
        failure = self._failure()
        if failure is not None:
            return failure
        form = {key: str(value) for key, value in (await request.form()).items()}
        if self._client(request, form) is None:
            return _oauth_error("invalid_client", "unknown client or bad credentials", 401)
        token = form.get("token", "")
        grant = self.grants.get(token)
        if grant is not None:
            grant.active = False
            self.revoked.append(token)
        return Response(status_code=200)

    # running -------------------------------------------------------------------------------------

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start on a free loopback port in a thread of its own; returns the base URL."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        self.base_url = f"http://{host}:{sock.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])), name="fake-sso", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake SSO did not start")
            time.sleep(0.01)
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None


def main() -> None:
    parser = argparse.ArgumentParser(description="A fake EVE SSO on loopback.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--client-id", default="pentad-dev")
    parser.add_argument("--redirect-uri", default="http://127.0.0.1:8000/market/sso/callback")
    parser.add_argument("--character", type=int, default=90000001)
    args = parser.parse_args()
    fake = FakeSso()
    fake.register(args.client_id, args.redirect_uri)
    fake.add_character(args.character, "Fake Trader")
    fake.login_as(args.character)
    print(fake.serve(port=args.port), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
