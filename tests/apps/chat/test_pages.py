"""The /chat page without a browser: who may open it, what it is made of, and the token it starts from;
and that the browser SDK's types and docs/chat.md keep up with the SDK and the server's events.

What the page does is checked in Chromium by tests/browser/test_chat.py.
"""

from __future__ import annotations

import re
import typing
from html.parser import HTMLParser
from pathlib import Path

import httpx
from pydantic import BaseModel

from pentad.apps.chat import events
from pentad.apps.chat.settings import ChatSettings
from pentad.core.auth.models import User
from pentad.core.platform import Platform
from pentad.core.security import CONTENT_SECURITY_POLICY
from tests.factories import DEFAULT_PASSWORD, bearer, create_user

STATIC_FILES = ("chat-sdk.js", "chat-sdk.d.ts", "chat.js", "chat.css", "sw.js")
STATIC = Path(events.__file__).parent / "static"
DOCS = Path(__file__).parents[3] / "docs" / "chat.md"


async def _sign_in(client: httpx.AsyncClient, user: User) -> None:
    response = await client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 303, response.text


def _csrf_meta(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', html)
    assert found, "the page has no CSRF meta tag"
    return found.group(1)


class _InlineCode(HTMLParser):
    """Collects what the Content-Security-Policy would block: inline scripts, styles and handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.found.append("inline <script>")
        if tag == "style":
            self.found.append("<style>")
        self.found += [f"{tag}[{name}]" for name in names if name == "style" or name.startswith("on")]


async def test_anonymous_visitors_are_sent_to_sign_in(client: httpx.AsyncClient) -> None:
    response = await client.get("/chat")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fchat"


async def test_the_page_renders_for_a_member(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform, display_name="Ada")
    await _sign_in(client, user)
    response = await client.get("/chat")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    page = response.text
    assert '<script type="module" src="/static/chat/chat.js"></script>' in page
    assert '<link rel="stylesheet" href="/static/chat/chat.css">' in page
    assert _csrf_meta(page)
    assert 'id="messages" role="log" aria-live="polite"' in page
    assert f'maxlength="{platform.app_settings(ChatSettings).max_message_length}"' in page
    assert user.email in page  # the site header, as on every page
    for control in ("composer-text", "search-q", "thread-text", "channel-name", "direct-q", "slow-mode"):
        assert f'<label for="{control}"' in page, control
    inline = _InlineCode()
    inline.feed(page)
    assert inline.found == []


async def test_an_account_without_chat_use_gets_a_403_page(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    user = await create_user(platform, roles=())
    await _sign_in(client, user)
    response = await client.get("/chat")
    assert response.status_code == 403
    assert "chat.use" in response.text


async def test_the_page_gets_a_user_token_with_its_csrf_token(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    user = await create_user(platform, display_name="Grace")
    await _sign_in(client, user)
    csrf = _csrf_meta((await client.get("/chat")).text)

    refused = await client.post("/api/chat/session-token")
    assert refused.status_code == 403
    assert refused.json()["code"] == "csrf_failed"

    response = await client.post("/api/chat/session-token", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200
    token = response.json()
    assert token["token"].startswith("pcu_")
    assert token["user"]["name"] == "Grace"
    # The page then speaks like any embedded client: with the user token, without the cookie.
    client.cookies.clear()
    me = await client.get("/api/chat/me", headers=bearer(token["token"]))
    assert me.status_code == 200
    assert me.json()["id"] == token["user"]["id"]


async def test_the_scripts_are_served_from_the_apps_static_folder(client: httpx.AsyncClient) -> None:
    for name in STATIC_FILES:
        response = await client.get(f"/static/chat/{name}")
        assert response.status_code == 200, name
    sdk = await client.get("/static/chat/chat-sdk.js")
    assert "javascript" in sdk.headers["content-type"]
    # chat-sdk.js imports the realtime client relative to its own URL.
    assert 'from "../js/realtime.js"' in sdk.text
    assert (await client.get("/static/js/realtime.js")).status_code == 200
    assert (await client.get("/static/chat/nothing.js")).status_code == 404


def _event_types() -> set[str]:
    types: set[str] = set()
    for model in vars(events).values():
        if isinstance(model, type) and issubclass(model, BaseModel) and "type" in model.model_fields:
            types |= set(typing.get_args(model.model_fields["type"].annotation))
    return types


def test_every_realtime_event_is_documented_and_typed() -> None:
    types = _event_types()
    assert len(types) >= 19
    docs = DOCS.read_text()
    declarations = (STATIC / "chat-sdk.d.ts").read_text()
    assert sorted(t for t in types if f"`{t}`" not in docs) == []
    assert sorted(t for t in types if f'"{t}"' not in declarations) == []


def test_every_sdk_method_is_declared_and_documented() -> None:
    sdk = (STATIC / "chat-sdk.js").read_text()
    client = sdk[sdk.index("export class ChatClient") :]
    methods = set(re.findall(r"^  (?:async )?(?:get )?([a-z][A-Za-z]*)\(", client, re.MULTILINE))
    methods -= {"constructor"}
    assert {"send", "watch", "sync", "markRead", "upload", "search", "pending"} <= methods
    declarations = (STATIC / "chat-sdk.d.ts").read_text()
    text = DOCS.read_text()
    guide = text[text.index("## Browser SDK") : text.index("### React")]
    assert sorted(m for m in methods if not re.search(rf"\b{m}[(:<]", declarations)) == []
    assert sorted(m for m in methods if not re.search(rf"\b{m}\b", guide)) == []
