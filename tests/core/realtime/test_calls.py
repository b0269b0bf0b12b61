"""Client `call` frames: a topic family's server-side handler answers the calling connection only, in a
transaction of its own; the deny side is the topic's, as for subscribing."""

from __future__ import annotations

import pytest

from pentad.core.realtime.client import RealtimeClient, RealtimeError
from tests.core.realtime.conftest import LiveServer, peer, room_member
from tests.factories import issue_api_key


async def test_a_call_is_answered_to_the_caller_and_what_it_publishes_goes_out_after_its_commit(
    server: LiveServer,
) -> None:
    platform = server.platform
    caller, listener = await room_member(platform, "c1"), await room_member(platform, "c1")
    async with (
        peer(server, await issue_api_key(platform, caller)) as calling,
        peer(server, await issue_api_key(platform, listener)) as listening,
    ):
        assert (await listening.request("subscribe", topic="test.room.c1"))["ok"]
        answer = await calling.request("call", topic="test.room.c1", method="shout", data={"text": "hi"})
        assert answer["result"] == {"text": "HI", "by": str(caller.id)}
        event = await listening.recv_op("event")
        assert event["data"] == {"text": "HI"}
        # Only the caller got the answer: the listener's next frame is an acknowledgement of its own.
        assert (await listening.request("ping"))["ok"]


async def test_calls_are_refused_where_the_topic_refuses_and_failures_are_answered(
    server: LiveServer,
) -> None:
    platform = server.platform
    member, outsider = await room_member(platform, "c2"), await room_member(platform)
    async with peer(server, await issue_api_key(platform, outsider)) as client:
        refused = await client.request("call", topic="test.room.c2", method="shout", data={"text": "x"})
        assert refused["error"]["code"] == "forbidden"
    narrow = await issue_api_key(platform, member, [])  # the member, through a key without rtest.use
    async with peer(server, narrow) as client:
        refused = await client.request("call", topic="test.room.c2", method="shout", data={"text": "x"})
        assert refused["error"]["code"] == "forbidden"
    async with RealtimeClient(server.ws_url, await issue_api_key(platform, member)) as client:
        for topic, method, code in (
            ("test.room.c2", "nothing", "unknown_method"),
            ("test.typing.c2", "shout", "unknown_method"),
            ("test.room.c2", "fail", "call_failed"),
            ("no.such.c2", "shout", "unknown_topic"),
        ):
            with pytest.raises(RealtimeError) as refused:
                await client.call(topic, method, {"text": "x"})
            assert refused.value.code == code, (topic, method)
        with pytest.raises(RealtimeError) as refused:
            await client.call("test.room.c2", "shout", {})
        assert (refused.value.code, refused.value.message) == ("call_failed", "Say something.")
        assert await client.call("test.room.c2", "shout", {"text": "ok"}) == {
            "text": "OK",
            "by": str(member.id),
        }
