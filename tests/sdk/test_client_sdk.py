"""ChatClient against a real server process: live events, idempotent sends, resume after a disconnection,
gaps, the offline queue across a server restart, and the everyday operations."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from pydantic import ValidationError

from pentad_chat import (
    ChatClient,
    ChatClosedError,
    ChatEvent,
    ChatServer,
    ConnectionEvent,
    EventStream,
    Message,
    MessageEvent,
    ReactionEvent,
    ReadEvent,
    TypingEvent,
    UnknownEvent,
    parse_event,
)
from pentad_chat import client as client_module
from tests.factories import free_port
from tests.sdk.conftest import WAIT, Person, PersonFactory, until
from tests.sdk.live_chat import ChatServerProcess


async def next_event(stream: EventStream) -> ChatEvent:
    async with asyncio.timeout(WAIT):
        return await stream.get()


async def messages(stream: EventStream, count: int) -> list[MessageEvent]:
    received = []
    for _ in range(count):
        event = await next_event(stream)
        assert isinstance(event, MessageEvent), event
        received.append(event)
    return received


async def nothing_more(stream: EventStream, seconds: float = 0.5) -> None:
    await asyncio.sleep(seconds)
    assert stream._queue.empty(), stream._queue.get_nowait()


async def channel_with(owner: Person, *members: Person) -> uuid.UUID:
    channel = await owner.client.create_channel(kind="group", members=[m.id for m in members])
    return channel.id


async def test_a_message_reaches_the_other_client_live(person: PersonFactory) -> None:
    alice, bob = await person("alice"), await person("bob")
    channel_id = await channel_with(alice, bob)
    called: list[ChatEvent] = []
    bob.client.on("message.new", called.append)
    stream = bob.client.events("message.new")
    await bob.client.connect()
    await bob.client.subscribe(channel_id)
    await alice.client.connect()

    sent = await alice.client.send(channel_id, "hello **bob**")

    event = await next_event(stream)
    assert isinstance(event, MessageEvent)
    assert (event.type, event.channel_id, event.seq, event.synced) == (
        "message.new",
        channel_id,
        sent.seq,
        False,
    )
    assert event.message.id == sent.id
    assert "<strong>bob</strong>" in event.message.html
    assert bob.client.last_seq(channel_id) == sent.seq
    await until(lambda: bool(called), "the callback")
    assert called == [event]


async def test_resending_the_same_client_id_posts_once(person: PersonFactory) -> None:
    alice, bob = await person("alice"), await person("bob")
    channel_id = await channel_with(alice, bob)

    first = await alice.client.send(channel_id, "once", client_id="retry-me")
    second = await alice.client.send(channel_id, "once", client_id="retry-me")
    queued = alice.client.enqueue(channel_id, "once")
    assert len(queued.client_id) == 32

    assert second.id == first.id
    assert (await queued).id != first.id
    page = await bob.client.history(channel_id)
    assert [m.client_id for m in page.messages] == ["retry-me", queued.client_id]


async def test_a_reconnecting_client_receives_the_1000_messages_it_missed(
    person: PersonFactory, chat_server: ChatServer
) -> None:
    alice, bob = await person("alice"), await person("bob")
    channel_id = await channel_with(alice, bob)
    await bob.client.connect()
    await bob.client.subscribe(channel_id)
    await alice.client.send(channel_id, "before")
    await until(lambda: bob.client.last_seq(channel_id) == 1, "Bob to see the first message")
    await bob.client.close()

    # Several at once (as Alice, through the server API) to keep the test short; seq gives their order.
    senders = asyncio.Semaphore(8)

    async def send(n: int) -> Message:
        async with senders:
            return await chat_server.send_message(channel_id, alice.external_id, f"missed {n}")

    async with asyncio.timeout(120):
        sent = sorted(await asyncio.gather(*(send(n) for n in range(1000))), key=lambda m: m.seq)

    stream = bob.client.events("message.new", "message.updated")
    await bob.client.connect()
    received = await messages(stream, 1000)

    assert [e.message.id for e in received] == [m.id for m in sent]
    assert [e.seq for e in received] == list(range(2, 1002))
    assert all(e.type == "message.new" and e.synced for e in received)
    await nothing_more(stream)
    assert bob.client.last_seq(channel_id) == 1001


async def test_a_catch_up_over_small_sync_pages_delivers_each_change_once_in_order(
    person: PersonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client follows the server's `next_since` cursor: pages of three, a thread reply and its parent
    sharing a revision at a page boundary, an edit moving a message to the end."""
    monkeypatch.setattr(client_module, "SYNC_PAGE_SIZE", 3)
    alice, bob = await person("alice"), await person("bob")
    channel_id = await channel_with(alice, bob)
    await bob.client.connect()
    await bob.client.subscribe(channel_id)
    root = await alice.client.send(channel_id, "root")
    await until(lambda: bob.client.last_seq(channel_id) == root.seq, "Bob to see the root")
    await bob.client.close()

    replies = [await alice.client.send(channel_id, f"reply {n}", parent_id=root.id) for n in range(3)]
    plain = [await alice.client.send(channel_id, f"plain {n}") for n in range(4)]
    edited = await alice.client.edit(plain[0].id, text="plain 0, edited")

    stream = bob.client.events("message.new", "message.updated")
    await bob.client.connect()
    received = await messages(stream, 8)

    assert [(e.type, e.message.id) for e in received] == [
        *(("message.new", reply.id) for reply in replies[:2]),
        *sorted([("message.new", replies[2].id), ("message.updated", root.id)], key=lambda e: str(e[1])),
        *(("message.new", message.id) for message in plain[1:]),
        ("message.new", edited.id),
    ]
    assert [e.seq for e in received] == [2, 3, 4, 4, 6, 7, 8, 9]
    assert received[-1].message.text == "plain 0, edited"
    assert all(e.synced for e in received)
    await nothing_more(stream)
    assert bob.client.last_seq(channel_id) == edited.revision == 9


async def test_a_gap_in_live_sequence_numbers_is_filled_from_sync(person: PersonFactory) -> None:
    alice, bob = await person("alice"), await person("bob")
    channel_id = await channel_with(alice, bob)
    stream = bob.client.events("message.new")
    await bob.client.connect()
    await bob.client.subscribe(channel_id)
    # Make the hub lose one event for Bob: unsubscribe behind the SDK's back, resubscribe without resume.
    ws = bob.client._ws
    assert ws is not None
    topic = f"chat.channel.{channel_id}"
    await bob.client._request(ws, {"op": "unsubscribe", "topic": topic})
    lost = await alice.client.send(channel_id, "lost on the way")
    await bob.client._request(ws, {"op": "subscribe", "topic": topic})

    after = await alice.client.send(channel_id, "after the gap")

    first, second = await messages(stream, 2)
    assert (first.message.id, first.synced) == (lost.id, True)
    assert second.message.id == after.id
    await nothing_more(stream)


async def test_sends_made_while_the_server_is_down_go_out_after_its_restart(
    restartable_process: ChatServerProcess, restartable_person: PersonFactory
) -> None:
    alice, bob = await restartable_person("alice"), await restartable_person("bob")
    channel_id = await channel_with(alice, bob)
    states = alice.client.events("connection.state")
    stream = bob.client.events("message.new")
    for client in (alice.client, bob.client):
        await client.connect()
    await bob.client.subscribe(channel_id)
    assert await next_event(states) == ConnectionEvent(state="connected")

    await restartable_process.kill()
    disconnected = await next_event(states)
    assert isinstance(disconnected, ConnectionEvent)
    assert (disconnected.state, disconnected.code) == ("disconnected", 1006)
    outgoing = [alice.client.enqueue(channel_id, f"offline {n}") for n in range(5)]
    await until(lambda: outgoing[0].attempts >= 2, "a retry")
    assert not any(o.done for o in outgoing)
    assert alice.client.pending == outgoing

    await restartable_process.start()

    async with asyncio.timeout(WAIT):
        sent = [await o for o in outgoing]
    assert [m.text for m in sent] == [f"offline {n}" for n in range(5)]
    assert [m.client_id for m in sent] == [o.client_id for o in outgoing]
    received = await messages(stream, 5)
    assert [e.message.id for e in received] == [m.id for m in sent]
    assert await next_event(states) == ConnectionEvent(state="connected")
    page = await bob.client.history(channel_id)
    assert [m.text for m in page.messages] == [f"offline {n}" for n in range(5)]


async def test_reactions_edits_deletes_read_receipts_and_typing(person: PersonFactory) -> None:
    alice, bob = await person("alice"), await person("bob")
    direct = await alice.client.direct(bob.id)
    assert (await alice.client.direct(bob.id)).id == direct.id
    alice_events = alice.client.events("reaction.added", "read.updated")
    bob_events = bob.client.events("message.updated", "message.deleted", "typing.start")
    for client in (alice.client, bob.client):
        await client.connect()
        await client.subscribe(direct.id)
    message = await alice.client.send(direct.id, "hi")

    reacted = await bob.client.react(message.id, "👍")
    assert [(r.emoji, r.count) for r in reacted.reactions] == [("👍", 1)]
    await bob.client.mark_read(direct.id, message.seq)
    reaction, read = await next_event(alice_events), await next_event(alice_events)
    assert isinstance(reaction, ReactionEvent)
    assert (reaction.emoji, reaction.user_id, reaction.message.id) == ("👍", bob.id, message.id)
    assert isinstance(read, ReadEvent)
    assert (read.user_id, read.last_read_seq) == (bob.id, message.seq)

    await alice.client.edit(message.id, text="hi there")
    edited = await next_event(bob_events)
    assert isinstance(edited, MessageEvent)
    assert (edited.type, edited.message.text) == ("message.updated", "hi there")

    await alice.client.typing(direct.id)
    typing = await next_event(bob_events)
    assert isinstance(typing, TypingEvent)
    assert typing.user.id == alice.id

    await alice.client.delete(message.id)
    deleted = await next_event(bob_events)
    assert isinstance(deleted, MessageEvent)
    assert (deleted.type, deleted.message.text, deleted.message.deleted_at is not None) == (
        "message.deleted",
        "",
        True,
    )
    assert [c.id for c in await bob.client.channels()] == [direct.id]


async def test_a_token_provider_replaces_a_revoked_token(
    chat_server: ChatServer, chat_process: ChatServerProcess
) -> None:
    carol = f"carol-{uuid.uuid4().hex[:8]}"
    user = await chat_server.upsert_user(carol, name="Carol")
    minted: list[str] = []

    async def provide() -> str:
        minted.append((await chat_server.create_user_token(carol)).token)
        return minted[-1]

    async with ChatClient(chat_process.base_url, token_provider=provide) as client:
        assert client.user_id == user.id
        assert len(minted) == 1
        await chat_server.revoke_user_tokens(carol)
        # Revocation covers tokens issued up to a second after it.
        await asyncio.sleep(2.1)
        assert (await client.me()).id == user.id
        assert len(minted) == 2


async def test_close_fails_what_is_still_queued_and_connect_gives_up_in_time() -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    client = ChatClient(nowhere, "pcu_unused", connect_timeout=1.0, backoff_max=0.2)
    outgoing = client.enqueue(uuid.uuid4(), "into the void")
    await until(lambda: outgoing.attempts >= 2, "a retry")

    with pytest.raises(ChatClosedError):
        await client.connect()
    with pytest.raises(ChatClosedError):
        await outgoing
    assert not outgoing.acknowledged
    with pytest.raises(ChatClosedError):
        client.enqueue(uuid.uuid4(), "after close")


def test_events_of_unknown_types_are_kept_raw() -> None:
    event = parse_event({"type": "poll.closed", "poll_id": "p1"})
    assert isinstance(event, UnknownEvent)
    assert (event.type, event.model_extra) == ("poll.closed", {"poll_id": "p1"})
    with pytest.raises(ValidationError):
        parse_event({"type": "read.updated", "channel_id": "not a uuid"})
