"""Topic patterns: whole-name matches, one segment per parameter, no pattern twice."""

from __future__ import annotations

import pytest

from pentad.core.auth.permissions import Permission
from pentad.core.realtime.topics import TopicAccess, TopicConflict, TopicRegistry, TopicSpec

ANY = Permission("test.any", "A permission for the patterns' tests.")


async def deny(_access: TopicAccess) -> bool:
    return False


def test_patterns_match_whole_names_and_capture_parameters() -> None:
    channel = TopicSpec("chat.channel.{channel_id}", deny, requires=ANY)
    typing = TopicSpec("chat.channel.{channel_id}.typing", deny, requires=ANY)
    registry = TopicRegistry([channel, typing])
    found = registry.match("chat.channel.42")
    assert found is not None
    assert (found.spec, dict(found.params)) == (channel, {"channel_id": "42"})
    nested = registry.match("chat.channel.42.typing")
    assert nested is not None
    assert nested.spec is typing
    for topic in ("chat.channel", "chat.channel.4.2.x", "xchat.channel.1", "chat.channel.1.typingx"):
        assert registry.match(topic) is None


def test_literal_parts_are_not_regular_expressions() -> None:
    registry = TopicRegistry([TopicSpec("a+b.{x}", deny, requires=ANY)])
    assert registry.match("a+b.1") is not None
    assert registry.match("aab.1") is None


def test_a_pattern_cannot_be_registered_twice() -> None:
    registry = TopicRegistry([TopicSpec("jobs.{job_id}", deny, requires=ANY)])
    with pytest.raises(TopicConflict):
        registry.register(TopicSpec("jobs.{job_id}", deny, requires=ANY))
