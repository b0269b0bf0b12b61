"""User agent -> device class, browser and OS families with their major versions (`ua-parser`, with the
`ua-parser-rs` native resolver when installed), cached per process (LRU of UA_CACHE_SIZE strings)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from ua_parser import Parser, load_builtins
from ua_parser.core import Resolver

from pentad.core.visitors.facts import Device

MAX_UA_LENGTH = 512
"""Longer user agents are cut before parsing: every real one is shorter, and regexes are not free."""

_DESKTOP_OS = frozenset(
    {
        "Windows",
        "Mac OS X",
        "Linux",
        "Ubuntu",
        "Chrome OS",
        "ChromeOS",
        "Fedora",
        "Debian",
        "FreeBSD",
        "OpenBSD",
        "NetBSD",
        "Arch Linux",
        "Mint",
        "Gentoo",
        "Solaris",
        "Windows NT",
        "macOS",
    }
)
_MOBILE_OS = frozenset(
    {"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "Firefox OS", "HarmonyOS"}
)
_TABLET_DEVICES = ("iPad", "Kindle", "Tablet", "Tab ", "Nexus 7", "Nexus 9", "Nexus 10", "Xoom")


@dataclass(frozen=True, slots=True)
class Agent:
    device: Device
    browser: str | None
    browser_major: str | None
    os: str | None
    os_major: str | None
    spider: bool


def _resolver() -> tuple[Resolver, Literal["rust", "python"]]:
    matchers = load_builtins()
    try:
        from ua_parser import regex

        return regex.Resolver(matchers), "rust"
    except ImportError:  # pragma: no cover - ua-parser-rs is a dependency; pure Python still works
        from ua_parser import basic

        return basic.Resolver(matchers), "python"


def _known(value: str | None) -> str | None:
    return None if value in (None, "", "Other") else value


def _device(user_agent: str, os_family: str | None, device_family: str | None) -> Device:
    if device_family == "Spider":
        return "bot"
    family = device_family or ""
    if any(marker in family for marker in _TABLET_DEVICES) or "iPad" in user_agent:
        return "tablet"
    if os_family == "Android":
        # Android phones say "Mobile"; tablets do not (Google's own guidance to device makers).
        return "mobile" if "Mobile" in user_agent else "tablet"
    if os_family in _MOBILE_OS or family in {"iPhone", "iPod", "Generic Smartphone"} or "Mobi" in user_agent:
        return "mobile"
    if os_family in _DESKTOP_OS:
        return "desktop"
    return "other"


class Agents:
    """`parse(user_agent)` -> Agent, memoised; `backend` says which resolver runs ("rust" or "python")."""

    def __init__(self, cache_size: int = 20_000) -> None:
        resolver, self.backend = _resolver()
        self._parser = Parser(resolver)
        self.parse = lru_cache(maxsize=cache_size)(self._parse)

    def _parse(self, user_agent: str) -> Agent:
        text = user_agent[:MAX_UA_LENGTH]
        result = self._parser.parse(text)
        ua, os_, device = result.user_agent, result.os, result.device
        os_family = _known(os_.family) if os_ else None
        device_family = _known(device.family) if device else None
        kind = _device(text, os_family, device_family)
        return Agent(
            device=kind,
            browser=_known(ua.family) if ua else None,
            browser_major=(ua.major or None) if ua and _known(ua.family) else None,
            os=os_family,
            os_major=(os_.major or None) if os_ and os_family else None,
            spider=kind == "bot",
        )
