"""ICE for the media plane: which local addresses aioice offers as host candidates, and which remote
candidates an offer may bring.

aioice gathers every interface but loopback (`aioice.ice.get_host_addresses`). WEBRTC__HOST_ADDRESSES
replaces that list (e.g. `127.0.0.1` on a single machine, or the public address of a 1:1 NAT host); it is
applied once, when the media service starts, for the whole process (aioice reads the function at each
gathering). WEBRTC__ALLOWED_PEER_NETWORKS drops the candidates of an offer outside those networks before
aiortc sees them, so no connectivity check is ever sent elsewhere (an mDNS `.local` name is dropped too
when networks are set: it cannot be checked before it is resolved)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import aioice.ice

_original_host_addresses = aioice.ice.get_host_addresses


def use_host_addresses(addresses: Sequence[str]) -> None:
    """Offer exactly these addresses as host candidates (empty: aioice's default)."""
    chosen = [str(ipaddress.ip_address(address)) for address in addresses]
    if not chosen:
        aioice.ice.get_host_addresses = _original_host_addresses
        return

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:  # noqa: FBT001 (aioice's signature)
        return [a for a in chosen if (use_ipv4 and ":" not in a) or (use_ipv6 and ":" in a)]

    aioice.ice.get_host_addresses = host_addresses


def filter_candidates(sdp: str, networks: Sequence[str]) -> str:
    """The SDP without `a=candidate` lines whose address is outside `networks` (none: all kept)."""
    if not networks:
        return sdp
    allowed = [ipaddress.ip_network(network, strict=False) for network in networks]
    kept = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            try:
                address = ipaddress.ip_address(fields[4])
            except (IndexError, ValueError):
                continue
            if not any(address in network for network in allowed):
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"
