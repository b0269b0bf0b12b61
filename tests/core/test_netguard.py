"""The SSRF guard and its client: private, loopback, link-local and metadata addresses are refused unless an
admin allowed their network; requests go to the checked address with the name kept as Host, are never
redirected, and their answers are cut at the cap."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from pentad.core import netguard
from pentad.core.config import OutboundSettings
from pentad.core.netguard import DestinationNotAllowed, GuardedClient, ResponseTooLarge
from tests.receivers import Answer, Receiver, receiving

LOOPBACK = ["127.0.0.0/8"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as receiver:
        yield receiver


def _client(allowed: list[str], **overrides: int) -> GuardedClient:
    return GuardedClient(OutboundSettings(allowed_networks=allowed, **overrides))


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),
        ("169.254.169.254", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("64:ff9b::a00:1", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert netguard.is_public_address(address) is public


async def test_resolved_destination_pins_the_checked_address() -> None:
    destination = await netguard.resolve_destination("https://93.184.216.34:8443/a/b?c=1#frag", [])
    allowed = await netguard.resolve_destination("http://localhost:9/x", ["127.0.0.0/8", "::1/128"])

    assert destination.pinned_url() == "https://93.184.216.34:8443/a/b?c=1"
    assert destination.host_header == "93.184.216.34:8443"
    assert destination.origin == "https://93.184.216.34:8443"
    assert set(allowed.addresses) <= {"127.0.0.1", "::1"}
    assert allowed.pinned_url().endswith(":9/x")
    assert allowed.host_header == "localhost:9"


@pytest.mark.parametrize(
    "url",
    [
        "https://localhost/x",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::ffff:10.0.0.1]/x",
        "http://93.184.216.34/plain-http",
        "https://user:pass@93.184.216.34/x",
        "ftp://93.184.216.34/x",
        "not a url",
    ],
)
async def test_private_plain_or_odd_destinations_are_refused(url: str) -> None:
    with pytest.raises(DestinationNotAllowed) as refused:
        await _client([]).check(url)
    assert (refused.value.status, refused.value.code) == (400, "destination_not_allowed")


async def test_a_request_to_a_refused_destination_never_connects(receiver: Receiver) -> None:
    with pytest.raises(DestinationNotAllowed):
        await _client([]).request("POST", receiver.url(), content=b"{}")
    with pytest.raises(DestinationNotAllowed):
        await _client(["10.0.0.0/8"]).request("POST", receiver.url(), content=b"{}")
    assert receiver.requests == []


async def test_an_allowed_network_is_reached_with_the_name_as_host(receiver: Receiver) -> None:
    receiver.answers = [Answer(201, b'{"ok": true}')]
    client = GuardedClient(OutboundSettings(), allowed_networks=LOOPBACK)

    response = await client.request(
        "POST", f"http://localhost:{receiver.port}/in?x=1", content=b"ping", headers={"X-Test": "yes"}
    )

    assert (response.status_code, response.is_success, response.content) == (201, True, b'{"ok": true}')
    (received,) = receiver.requests
    assert (received.method, received.path, received.body) == ("POST", "/in?x=1", b"ping")
    assert received.headers["Host"] == f"localhost:{receiver.port}"
    assert received.headers["X-Test"] == "yes"


async def test_redirects_are_answers_not_followed(receiver: Receiver) -> None:
    receiver.answers = [Answer(302, headers=(("Location", "http://169.254.169.254/"),))]

    response = await _client(LOOPBACK).request("GET", receiver.url("/moved"))

    assert (response.status_code, response.headers["location"]) == (302, "http://169.254.169.254/")
    assert [r.path for r in receiver.requests] == ["/moved"]


async def test_an_answer_longer_than_the_cap_fails(receiver: Receiver) -> None:
    receiver.answers = [Answer(200, b"x" * 100), Answer(200, b"x" * 101)]
    client = _client(LOOPBACK, max_response_bytes=100)

    assert len((await client.request("GET", receiver.url())).content) == 100
    with pytest.raises(ResponseTooLarge) as too_large:
        await client.request("GET", receiver.url())
    assert too_large.value.status_code == 200


# ------------------------------------------------------------------ resolve_host (targets that are not URLs)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("93.184.216.34", ["93.184.216.34"]),
        ("2606:4700::1111", ["2606:4700::1111"]),
        ("[2606:4700::1111]", ["2606:4700::1111"]),
    ],
)
async def test_resolve_host_gives_the_public_addresses_to_connect_to(host: str, expected: list[str]) -> None:
    assert await netguard.resolve_host(host, 554, []) == expected


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "10.0.0.7",
        "192.168.1.64",
        "169.254.169.254",
        "100.64.1.1",
        "0.0.0.0",
        "::1",
        "[fe80::1]",
        "fd12:3456::1",
        "::ffff:192.168.1.64",
        "64:ff9b::a00:7",
        "localhost",
    ],
)
async def test_resolve_host_refuses_private_loopback_and_link_local_targets(host: str) -> None:
    with pytest.raises(DestinationNotAllowed) as refused:
        await netguard.resolve_host(host, 554, [])
    assert (refused.value.status, refused.value.code) == (400, "destination_not_allowed")


async def test_resolve_host_refuses_a_name_with_any_private_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A camera's DNS name that answers one public and one LAN address (a rebinding attempt) is refused;
    the admin's allowed networks let it through, and the caller gets the addresses to pin."""
    answers = {"camera.example.com": ["93.184.216.34", "192.168.1.64"], "cam6.example.com": ["fd00::64"]}
    asked: list[tuple[str, int]] = []

    async def fake_getaddrinfo(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        asked.append((host, port))
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers[host]
        ]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(DestinationNotAllowed, match="private"):
        await netguard.resolve_host("camera.example.com", 554, [])
    with pytest.raises(DestinationNotAllowed, match="private"):
        await netguard.resolve_host("cam6.example.com.", 8554, ["192.168.0.0/16"])
    with pytest.raises(DestinationNotAllowed, match="does not resolve"):
        await netguard.resolve_host("nowhere.example.com", 554, [])
    allowed = await netguard.resolve_host("camera.example.com", 554, ["192.168.1.0/24"])
    assert allowed == ["93.184.216.34", "192.168.1.64"]
    assert await netguard.resolve_host("cam6.example.com.", 8554, ["fd00::/8"]) == ["fd00::64"]
    assert asked[:2] == [("camera.example.com", 554), ("cam6.example.com", 8554)]


@pytest.mark.parametrize(
    ("host", "port"), [("", 554), ("cam/x", 554), ("u@cam", 554), ("cam", 0), ("cam", 70000)]
)
async def test_resolve_host_refuses_malformed_targets(host: str, port: int) -> None:
    with pytest.raises(DestinationNotAllowed):
        await netguard.resolve_host(host, port, [])
