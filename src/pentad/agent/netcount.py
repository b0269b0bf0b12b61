"""Per-server network counters: nftables named counters in a table of the agent's own.

    table inet pentad_agent {
        map rx { type inet_proto . inet_service : counter }   # tcp . 27015 : s-<id>-rx
        map tx { type inet_proto . inet_service : counter }
        chain input  { type filter hook input priority filter; policy accept;
                       counter name meta l4proto . th dport map @rx }
        chain output { type filter hook output priority filter; policy accept;
                       counter name meta l4proto . th sport map @tx }
    }

Each server has two named counters (s-<id>-rx, s-<id>-tx) and one map element per allocated port and
protocol (TCP and UDP): rx counts packets to the port arriving at this host, tx packets from the port
leaving it (a loopback exchange is counted once each way). The rules never drop anything. Counters live
in the kernel, so they survive an agent restart; `sync` is idempotent (re-attach keeps counting) and
`remove` deletes a server's elements and counters in one transaction. Two servers sharing a port number
(on different addresses) share its element: the one synced last counts it.

Where nft is missing or not permitted, `reason` says which, and the stats carry it instead of figures.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("pentad.agent.netcount")

NFT_TIMEOUT = 10.0
PROTOCOLS = ("tcp", "udp")


@dataclass(frozen=True, slots=True)
class Traffic:
    """One server's counters since they were created (bytes and packets, rx = to its ports)."""

    rx_bytes: int = 0
    rx_packets: int = 0
    tx_bytes: int = 0
    tx_packets: int = 0


class NftError(Exception):
    pass


def counter_name(server_id: str, direction: str) -> str:
    """The named counter of a server: s-<id>-rx or s-<id>-tx (server ids are letters, digits, _ and -)."""
    return f"s-{server_id}-{direction}"


def _server_of(name: str) -> tuple[str, str] | None:
    if name.startswith("s-") and name[-3:] in ("-rx", "-tx"):
        return name[2:-3], name[-2:]
    return None


class NetCounters:
    """The agent's nftables counters. `open()` probes nft and creates the table; afterwards `reason` is
    None when counting works, else why not (nft missing, not permitted, failed, or turned off)."""

    def __init__(self, nft: str | Path | None, table: str) -> None:
        self.table = table
        self.nft = str(nft) if nft else (shutil.which("nft") or "/usr/sbin/nft")
        self.reason: str | None = "network counters are not set up yet"
        self._failed: dict[str, str] = {}

    @classmethod
    def off(cls, reason: str) -> NetCounters:
        counters = cls(None, "off")
        counters.reason = reason
        return counters

    @property
    def available(self) -> bool:
        return self.reason is None

    async def open(self) -> None:
        """Create the table, maps and chains where missing (counters already there are kept)."""
        try:
            current = await self._list_table()
            script = [
                f"add table inet {self.table}",
                f"add map inet {self.table} rx {{ type inet_proto . inet_service : counter; }}",
                f"add map inet {self.table} tx {{ type inet_proto . inet_service : counter; }}",
                f"add chain inet {self.table} input "
                "{ type filter hook input priority filter; policy accept; }",
                f"add chain inet {self.table} output "
                "{ type filter hook output priority filter; policy accept; }",
            ]
            rules = {item["rule"]["chain"] for item in current if "rule" in item}
            if "input" not in rules:
                script.append(
                    f"add rule inet {self.table} input counter name meta l4proto . th dport map @rx"
                )
            if "output" not in rules:
                script.append(
                    f"add rule inet {self.table} output counter name meta l4proto . th sport map @tx"
                )
            await self._run(script)
        except NftError as exc:
            self.reason = str(exc)
            log.warning("agent_net_counters unavailable: %s", self.reason)
            return
        self.reason = None
        log.info("agent_net_counters backend=nftables table=inet %s", self.table)

    async def sync(self, server_id: str, ports: list[int]) -> None:
        """Make the server's counters exist and count exactly `ports` (TCP and UDP). Never raises: a
        failure is logged and becomes the server's reason."""
        if not self.available:
            return
        if not ports:
            await self.remove(server_id)
            return
        try:
            current = await self._list_table()
            script = [f"add counter inet {self.table} {counter_name(server_id, d)}" for d in ("rx", "tx")]
            wanted = {(proto, port) for proto in PROTOCOLS for port in ports}
            for direction in ("rx", "tx"):
                mine = counter_name(server_id, direction)
                elements = _elements(current, direction)
                # elements of ours no longer wanted, and wanted ports another server's counter holds
                stale = [key for key, name in elements.items() if (name == mine) != (key in wanted)]
                if stale:
                    script.append(f"delete element inet {self.table} {direction} {{ {_keys(stale)} }}")
                missing = sorted(key for key in wanted if elements.get(key) != mine)
                if missing:
                    entries = ", ".join(f"{proto} . {port} : {mine}" for proto, port in missing)
                    script.append(f"add element inet {self.table} {direction} {{ {entries} }}")
            await self._run(script)
        except NftError as exc:
            self._failed[server_id] = str(exc)
            log.warning("agent_net_counters_sync_failed server=%s error=%s", server_id, exc)
            return
        self._failed.pop(server_id, None)

    async def remove(self, server_id: str) -> None:
        """Delete the server's map elements and counters (a server without any is a no-op)."""
        self._failed.pop(server_id, None)
        if not self.available:
            return
        try:
            current = await self._list_table()
            script = []
            for direction in ("rx", "tx"):
                mine = counter_name(server_id, direction)
                keys = [key for key, name in _elements(current, direction).items() if name == mine]
                if keys:
                    script.append(f"delete element inet {self.table} {direction} {{ {_keys(keys)} }}")
            names = {item["counter"]["name"] for item in current if "counter" in item}
            script += [
                f"delete counter inet {self.table} {counter_name(server_id, d)}"
                for d in ("rx", "tx")
                if counter_name(server_id, d) in names
            ]
            if script:
                await self._run(script)
        except NftError as exc:
            log.warning("agent_net_counters_remove_failed server=%s error=%s", server_id, exc)

    async def read(self) -> dict[str, Traffic]:
        """Every server's counters now (servers without counters are absent)."""
        if not self.available:
            return {}
        try:
            items = await self._json(["list", "counters", "table", "inet", self.table])
        except NftError as exc:
            log.warning("agent_net_counters_read_failed error=%s", exc)
            return {}
        found: dict[str, dict[str, int]] = {}
        for item in items:
            counter = item.get("counter")
            parsed = _server_of(str(counter.get("name", ""))) if counter else None
            if counter is None or parsed is None:
                continue
            server_id, direction = parsed
            figures = found.setdefault(server_id, {})
            figures[f"{direction}_bytes"] = int(counter.get("bytes", 0))
            figures[f"{direction}_packets"] = int(counter.get("packets", 0))
        return {server_id: Traffic(**figures) for server_id, figures in found.items()}

    def unavailable(self, server_id: str, ports: list[int]) -> str | None:
        """Why this server has no network figures (None: it has)."""
        if self.reason is not None:
            return self.reason
        if server_id in self._failed:
            return self._failed[server_id]
        if not ports:
            return "the server has no allocated ports to count"
        return None

    # ------------------------------------------------------------------ nft

    async def _list_table(self) -> list[dict[str, Any]]:
        try:
            return await self._json(["list", "table", "inet", self.table])
        except NftError as exc:
            if "No such file or directory" in str(exc):
                return []
            raise

    async def _json(self, args: list[str]) -> list[dict[str, Any]]:
        out = await self._nft(["-j", *args])
        try:
            return [item for item in json.loads(out or "{}").get("nftables", []) if isinstance(item, dict)]
        except ValueError:
            raise NftError(f"nft failed: unreadable JSON from {' '.join(args)}") from None

    async def _run(self, script: list[str]) -> None:
        await self._nft(["-f", "-"], "\n".join(script) + "\n")

    async def _nft(self, args: list[str], stdin: str | None = None) -> str:
        try:
            process = await asyncio.create_subprocess_exec(
                self.nft,
                *args,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(
                process.communicate(stdin.encode() if stdin is not None else None), NFT_TIMEOUT
            )
        except FileNotFoundError:
            raise NftError(
                f"nft is not installed (no {self.nft}): install nftables for per-server network counters"
            ) from None
        except (OSError, TimeoutError) as exc:
            raise NftError(f"nft failed: {type(exc).__name__}: {exc}") from None
        if process.returncode != 0:
            message = " ".join(err.decode("utf-8", "replace").split())[:300]
            if "Operation not permitted" in message:
                raise NftError(
                    "nft is not permitted: per-server network counters need root or CAP_NET_ADMIN "
                    f"(nft said: {message[:120]})"
                )
            raise NftError(f"nft failed: {message}")
        return out.decode("utf-8", "replace")


def _elements(items: list[dict[str, Any]], direction: str) -> dict[tuple[str, int], str]:
    """The (protocol, port) -> counter name elements of the rx or tx map."""
    for item in items:
        found = item.get("map")
        if found is None or found.get("name") != direction:
            continue
        elements: dict[tuple[str, int], str] = {}
        for element in found.get("elem", []):
            try:
                key, name = element
                proto, port = key["concat"]
                elements[(str(proto), int(port))] = str(name)
            except (TypeError, ValueError, KeyError):
                continue
        return elements
    return {}


def _keys(keys: list[tuple[str, int]]) -> str:
    return ", ".join(f"{proto} . {port}" for proto, port in sorted(keys))
