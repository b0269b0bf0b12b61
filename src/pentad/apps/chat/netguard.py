"""Guard for outgoing requests to addresses users chose (webhooks, Web Push): no private or loopback targets.

A name is resolved once and every address it resolves to must be public (or inside an allowed network the
admin opted into); callers then connect to one of those addresses, so a DNS answer that changes between
the check and the request cannot redirect the request into the internal network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit

from pentad.core.errors import BadRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_DEFAULT_PORTS = {"https": 443, "http": 80}
# NAT64 well-known prefix: the last 32 bits are an IPv4 address the gateway connects to.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class DestinationNotAllowed(BadRequest):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="destination_not_allowed")


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


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64), which is what a connection reaches."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def is_public_address(ip: IPAddress | str) -> bool:
    """Whether `ip` is a globally routable unicast address: not private, loopback, link-local, shared
    (CGNAT), reserved, multicast or unspecified."""
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
    for address in addresses:
        if not is_public_address(address) and not _allowed(address, networks):
            raise DestinationNotAllowed(f"The host {host!r} resolves to a private or reserved address.")
    return Destination(
        url=urlunsplit(SplitResult(scheme, parts.netloc, parts.path, parts.query, "")),
        scheme=scheme,
        host=host,
        port=port,
        addresses=tuple(str(address) for address in addresses),
    )


async def check_destination(url: str, allowed_networks: Sequence[str]) -> None:
    """Raise DestinationNotAllowed (400) unless `url` may be requested; see resolve_destination."""
    await resolve_destination(url, allowed_networks)
