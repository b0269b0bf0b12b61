"""ChatServer against a real server process: users, tokens, channels, sends, tenant-wide moderation."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from pentad_chat import (
    ChannelState,
    ChatAPIError,
    ChatClient,
    ChatServer,
    ChatUserDetail,
    Member,
    Message,
    Restriction,
    UserToken,
)
from tests.sdk.conftest import PersonFactory
from tests.sdk.live_chat import ChatServerProcess


def external_id(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def test_upsert_creates_then_updates_a_user(chat_server: ChatServer) -> None:
    alice = external_id("alice")
    created = await chat_server.upsert_user(alice, name="Alice", data={"plan": "pro"})
    assert isinstance(created, ChatUserDetail)
    assert (created.external_id, created.name, created.data) == (alice, "Alice", {"plan": "pro"})
    assert created.handle == alice

    updated = await chat_server.upsert_user(
        alice, name="Alice B.", handle=f"ab{alice[-8:]}", role="moderator"
    )
    assert updated.id == created.id
    assert (updated.name, updated.role, updated.handle) == ("Alice B.", "moderator", f"ab{alice[-8:]}")
    assert await chat_server.get_user(alice) == updated
    assert (await chat_server.tenant()).slug.startswith("sdk-")


async def test_user_token_is_a_working_client_credential(
    chat_server: ChatServer, chat_process: ChatServerProcess
) -> None:
    alice = external_id("alice")
    user = await chat_server.upsert_user(alice, name="Alice")
    token = await chat_server.create_user_token(alice, ttl=600)
    assert isinstance(token, UserToken)
    assert token.token.startswith("pcu_")
    assert token.user.id == user.id

    async with ChatClient(chat_process.base_url, token.token) as client:
        assert (await client.me()).id == user.id
        assert client.user_id == user.id


async def test_revoked_and_deactivated_users_are_refused(
    chat_server: ChatServer, chat_process: ChatServerProcess
) -> None:
    bob = external_id("bob")
    await chat_server.upsert_user(bob, name="Bob")
    token = (await chat_server.create_user_token(bob)).token
    client = ChatClient(chat_process.base_url, token)
    try:
        await client.me()
        await chat_server.revoke_user_tokens(bob)
        with pytest.raises(ChatAPIError) as refused:
            await client.me()
        assert refused.value.status == 401

        deactivated = await chat_server.deactivate_user(bob)
        assert deactivated.deactivated_at is not None
        with pytest.raises(ChatAPIError) as no_token:
            await chat_server.create_user_token(bob)
        assert (no_token.value.status, no_token.value.code) == (404, "chat_user_deactivated")
        assert (await chat_server.reactivate_user(bob)).deactivated_at is None
    finally:
        await client.close()


async def test_errors_carry_status_and_code(chat_server: ChatServer, chat_process: ChatServerProcess) -> None:
    with pytest.raises(ChatAPIError) as missing:
        await chat_server.get_user(external_id("nobody"))
    assert (missing.value.status, missing.value.code) == (404, "chat_user_not_found")

    async with ChatServer(chat_process.base_url, "pck_not_a_key") as impostor:
        with pytest.raises(ChatAPIError) as refused:
            await impostor.tenant()
    assert refused.value.status == 401


async def test_channels_members_and_idempotent_sends(chat_server: ChatServer, person: PersonFactory) -> None:
    alice, bob, carol = await person("alice"), await person("bob"), await person("carol")
    channel = await chat_server.create_channel(
        alice.external_id, kind="private", name="ops", members=[bob.external_id]
    )
    assert isinstance(channel, ChannelState)
    assert (channel.kind, channel.name, channel.member_count) == ("private", "ops", 2)

    added = await chat_server.add_members(channel.id, [carol.external_id])
    assert all(isinstance(member, Member) for member in added)
    assert carol.id in {member.user.id for member in added}

    first = await chat_server.send_message(channel.id, bob.external_id, "deploy at 5", client_id="deploy-1")
    again = await chat_server.send_message(channel.id, bob.external_id, "deploy at 5", client_id="deploy-1")
    assert isinstance(first, Message)
    assert again.id == first.id
    assert first.user is not None
    assert first.user.id == bob.id

    page = await carol.client.history(channel.id)
    assert [m.text for m in page.messages] == ["deploy at 5"]


async def test_tenant_wide_mute_and_lift(chat_server: ChatServer, person: PersonFactory) -> None:
    alice, bob = await person("alice"), await person("bob")
    channel = await chat_server.create_channel(alice.external_id, name="general", members=[bob.external_id])

    mute = await chat_server.restrict(bob.external_id, "mute", reason="spam", duration=600)
    assert isinstance(mute, Restriction)
    assert (mute.user_id, mute.kind, mute.channel_id) == (bob.id, "mute", None)
    assert mute.id in {r.id for r in await chat_server.list_restrictions()}
    with pytest.raises(ChatAPIError) as muted:
        await bob.client.send(channel.id, "still here?")
    assert (muted.value.status, muted.value.code) == (403, "muted")

    await chat_server.lift_restriction(mute.id)
    async with asyncio.timeout(10):
        sent = await bob.client.send(channel.id, "back")
    assert sent.text == "back"
