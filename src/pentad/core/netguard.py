"""Outgoing HTTP to addresses users chose (webhooks, Web Push, callbacks): never into the private network.

A name is resolved once and every address it resolves to must be public (or inside
PENTAD_OUTBOUND__ALLOWED_NETWORKS, the admin's opt-in); the request then connects to one of those addresses
with the name kept as Host and TLS server name, so a DNS answer that changes between the check and the
connection (DNS rebinding) cannot turn the request inward. `GuardedClient` does all of it, with the
timeout, no redirects (a 3xx is the answer; its target was never checked) and a cap on the answer's size.

    client = GuardedClient(platform.outbound)
    await client.check(url)                 # on save: 400 destination_not_allowed for a private target
    response = await client.request("POST", url, content=body, headers={"Content-Type": "application/json"})

Other protocols (an RTSP camera) check a host and port with `resolve_host` and connect to an address it
returned, with the same rules.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx

from pentad.core.config import OutboundSettings
from pentad.core.errors import BadRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_DEFAULT_PORTS = {"https": 443, "http": 80}
# NAT64 well-known prefix: the last 32 bits are an IPv4 address the gateway connects to.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_READ_CHUNK = 65_536


class DestinationNotAllowed(BadRequest):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="destination_not_allowed")


class ResponseTooLarge(httpx.HTTPError):
    """The answer was longer than the cap; nothing more of it is read."""

    def __init__(self, status_code: int, limit: int) -> None:
        super().__init__(f"the answer (HTTP {status_code}) is longer than {limit} bytes")
        self.status_code = status_code


@dataclass(frozen=True, slots=True)
class Destination:
    """A checked URL and the addresses its host resolved to, to connect to one of them and nothing else."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]

    def pinned_url(self, address: str | None = None) -> str:
        """The URL with its host replaced by a resolved address; send it with `Host: <host>` and, for
        https, the host as TLS server name (httpx: `extensions={"sni_hostname": host}`)."""
        chosen = ipaddress.ip_address(address or self.addresses[0])
        if str(chosen) not in self.addresses:
            raise ValueError("address was not resolved for this destination")
        parts = urlsplit(self.url)
        literal = f"[{chosen}]" if chosen.version == 6 else str(chosen)
        netloc = f"{literal}:{parts.port}" if parts.port is not None else literal
        return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, parts.query, ""))

    @property
    def host_header(self) -> str:
        literal = f"[{self.host}]" if ":" in self.host else self.host
        return literal if self.port == _DEFAULT_PORTS[self.scheme] else f"{literal}:{self.port}"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host_header}"


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64), which is what a connection reaches."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def is_public_address(ip: IPAddress | str) -> bool:
    """Whether `ip` is a globally routable unicast address: not private, loopback, link-local (the cloud
    metadata service 169.254.169.254 included), shared (CGNAT), reserved, multicast or unspecified."""
    address = _embedded_ipv4(ipaddress.ip_address(ip) if isinstance(ip, str) else ip)
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_unspecified)


def _parse_networks(allowed_networks: Sequence[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(network, strict=False) for network in allowed_networks)


def _allowed(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    candidates = {address, _embedded_ipv4(address)}
    return any(candidate in network for candidate in candidates for network in networks)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DestinationNotAllowed(f"The host {host!r} does not resolve.") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        # Drop an IPv6 zone ("fe80::1%eth0"); such link-local addresses are refused anyway.
        address = ipaddress.ip_address(str(info[4][0]).partition("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise DestinationNotAllowed(f"The host {host!r} does not resolve.")
    return addresses


def _check_addresses(host: str, addresses: Sequence[IPAddress], networks: tuple[IPNetwork, ...]) -> None:
    for address in addresses:
        if not is_public_address(address) and not _allowed(address, networks):
            raise DestinationNotAllowed(f"The host {host!r} resolves to a private or reserved address.")


async def resolve_host(host: str, port: int, allowed_networks: Sequence[str]) -> list[str]:
    """The addresses to connect to for a target that is not an http(s) URL (an RTSP camera, a game
    server's query port): `host` (a name, an IPv4 address, an IPv6 address with or without brackets) is
    resolved once and every address must be public or inside `allowed_networks`, as for
    `resolve_destination`; one private answer refuses the host (DestinationNotAllowed, 400). Connect to one
    of the returned addresses, never to the name again: a second lookup could answer something else."""
    name = host.strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    name = name.rstrip(".")
    if not name or any(character in name for character in "/@?# "):
        raise DestinationNotAllowed("The host name is not valid.")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise DestinationNotAllowed("The port must be between 1 and 65535.")
    addresses = await _resolve(name, port)
    _check_addresses(name, addresses, _parse_networks(allowed_networks))
    return [str(address) for address in addresses]


async def resolve_destination(url: str, allowed_networks: Sequence[str]) -> Destination:
    """Check `url` and return the addresses to connect to.

    https only, unless every resolved address lies in `allowed_networks` (admin opt-in, e.g. a test
    receiver on loopback). All addresses must be public or allowed: one private answer refuses the URL.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise DestinationNotAllowed("The URL is not valid.") from exc
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in _DEFAULT_PORTS or not host:
        raise DestinationNotAllowed("The URL must be an absolute https URL.")
    if parts.username is not None or parts.password is not None:
        raise DestinationNotAllowed("The URL must not contain credentials.")
    port = port if port is not None else _DEFAULT_PORTS[scheme]
    networks = _parse_networks(allowed_networks)
    addresses = await _resolve(host, port)
    all_allowed = all(_allowed(address, networks) for address in addresses)
    if scheme != "https" and not all_allowed:
        raise DestinationNotAllowed("The URL must use https.")
    _check_addresses(host, addresses, networks)
    return Destination(
        url=urlunsplit(SplitResult(scheme, parts.netloc, parts.path, parts.query, "")),
        scheme=scheme,
        host=host,
        port=port,
        addresses=tuple(str(address) for address in addresses),
    )


@dataclass(frozen=True, slots=True)
class OutboundResponse:
    status_code: int
    headers: httpx.Headers
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300


class GuardedClient:
    """Outgoing requests to user-chosen URLs: checked, pinned to the checked addresses, time-limited,
    never redirected, the answer read up to a cap (`ResponseTooLarge` beyond it).

    `allowed_networks` adds networks to PENTAD_OUTBOUND__ALLOWED_NETWORKS; `timeout` and
    `max_response_bytes` replace the settings' for this client. Transport failures raise httpx errors
    (`httpx.HTTPError`); their text can quote the URL, so callers record the exception's type only."""

    def __init__(
        self,
        settings: OutboundSettings,
        *,
        allowed_networks: Sequence[str] = (),
        timeout: float | None = None,
        max_response_bytes: int | None = None,
    ) -> None:
        self.allowed_networks = (*settings.allowed_networks, *allowed_networks)
        self.timeout = timeout if timeout is not None else settings.timeout
        self.max_response_bytes = (
            max_response_bytes if max_response_bytes is not None else settings.max_response_bytes
        )

    async def check(self, url: str) -> Destination:
        """The checked destination of `url`; raises DestinationNotAllowed (400) for one not allowed."""
        return await resolve_destination(url, self.allowed_networks)

    async def request(
        self,
        method: str,
        url: str | Destination,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> OutboundResponse:
        """Send to the checked addresses in turn until one connects. A URL given as text is checked first
        (again, even if it was checked when saved: its DNS answer may have changed since)."""
        destination = url if isinstance(url, Destination) else await self.check(url)
        extensions = {"sni_hostname": destination.host} if destination.scheme == "https" else {}
        sent_headers = {**(headers or {}), "Host": destination.host_header}
        # trust_env=False: a proxy from the environment would make its own DNS lookup, past the check.
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False, trust_env=False) as client:
            for index, address in enumerate(destination.addresses):
                try:
                    async with client.stream(
                        method,
                        destination.pinned_url(address),
                        content=content,
                        headers=sent_headers,
                        extensions=extensions,
                    ) as response:
                        return OutboundResponse(
                            response.status_code, response.headers, await self._read(response)
                        )
                except httpx.ConnectError:
                    if index == len(destination.addresses) - 1:
                        raise
        raise AssertionError("a checked destination has at least one address")

    async def _read(self, response: httpx.Response) -> bytes:
        body = bytearray()
        async for chunk in response.aiter_bytes(_READ_CHUNK):
            body += chunk
            if len(body) > self.max_response_bytes:
                raise ResponseTooLarge(response.status_code, self.max_response_bytes)
        return bytes(body)
