"""PURE: what a client may hold at once, and which address a request comes from.

Connection slots per listener and per client address, a budget of request-body bytes held in
memory by all connections together, and the open-file limit all of it must fit in. Limits
count by *address group*: an IPv4 address, or the /64 network of an IPv6 address (one
subscriber is given a whole /64, so counting single IPv6 addresses would count nothing).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence, Union

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

# Open files kept for everything but client connections: database connections of each
# thread, git and SMTP, the log, rule files, the listening sockets.
FILES_FOR_THE_REST = 256


def _parse_address(text: str) -> Optional[IPAddress]:
    """An IP address from ``1.2.3.4``, ``1.2.3.4:5678``, ``[2001:db8::1]:80`` or
    ``2001:db8::1`` (an IPv4-mapped IPv6 address becomes IPv4); None when it is none."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_group(address: str) -> str:
    """What limits count by: the IPv4 address itself, or the /64 network of an IPv6 one."""
    if ":" not in address:
        return address
    parsed = _parse_address(address)
    if parsed is None:
        return address
    if isinstance(parsed, ipaddress.IPv4Address):
        return str(parsed)
    return str(ipaddress.ip_network(f"{parsed}/64", strict=False))


class TrustedProxies:
    """The reverse proxies whose ``X-Forwarded-For`` is believed."""

    def __init__(self, networks: Iterable[str] = ()):
        self._networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(network, strict=False) for network in networks)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __contains__(self, address: object) -> bool:
        if not self._networks or not isinstance(address, str):
            return False
        parsed = _parse_address(address)
        return parsed is not None and any(parsed in network for network in self._networks)

    def client_address(self, peer: str, forwarded_for: Sequence[str]) -> str:
        """The address a request comes from: ``peer``, unless it is a trusted proxy; then the
        nearest address of ``X-Forwarded-For`` (read from the right, as each proxy appends
        the address it was reached from) that is not itself a trusted proxy."""
        if peer not in self:
            return peer
        hops = [hop for value in forwarded_for for hop in value.split(",")]
        client = peer
        for hop in reversed(hops):
            parsed = _parse_address(hop)
            if parsed is None:
                break  # garbage where a proxy should have written an address: stop there
            client = str(parsed)
            if client not in self:
                break
        return client


@dataclass(frozen=True)
class Refusal:
    """Why a connection or a body is refused: an HTTP status and a reason for people."""

    status: int
    reason: str


class ConnectionTable:
    """Open connections of one listener: at most ``total``, at most ``per_address`` from one
    address group (0: no limit). A group of None (a trusted proxy) counts only in the
    total."""

    def __init__(self, total: int, per_address: int):
        self.total = total
        self.per_address = per_address
        self.open = 0
        self._by_group: dict[str, int] = {}

    def admit(self, group: Optional[str]) -> Optional[Refusal]:
        """Take a slot for a new connection; a Refusal (and no slot) when none is free."""
        if self.total and self.open >= self.total:
            return Refusal(503, f"this server holds its maximum of {self.total} connections")
        if group is not None:
            held = self._by_group.get(group, 0)
            if self.per_address and held >= self.per_address:
                return Refusal(429, f"at most {self.per_address} connections from one address")
            self._by_group[group] = held + 1
        self.open += 1
        return None

    def release(self, group: Optional[str]) -> None:
        """Give back the slot of a connection that closed."""
        self.open -= 1
        if group is not None:
            held = self._by_group.pop(group, 0) - 1
            if held > 0:
                self._by_group[group] = held


class ByteBudget:
    """Bytes of request bodies held in memory by every connection together: at most
    ``total`` (0: no limit), at most ``per_group`` by one address group."""

    def __init__(self, total: int, per_group: int):
        self.total = total
        self.per_group = per_group
        self.held = 0
        self._by_group: dict[str, int] = {}

    def reserve(self, group: str, size: int) -> Optional[Refusal]:
        """Hold ``size`` more bytes for ``group``; a Refusal (and nothing held) when that
        would pass the budget or the group's share of it."""
        if not self.total:
            return None
        if self.held + size > self.total:
            return Refusal(503, "the server holds as many request bodies as it may")
        held = self._by_group.get(group, 0)
        if held + size > self.per_group:
            return Refusal(429, "this address sends as many request bodies as it may at once")
        self._by_group[group] = held + size
        self.held += size
        return None

    def release(self, group: str, size: int) -> None:
        """Give back bytes held for ``group``."""
        if not self.total or not size:
            return
        self.held -= size
        left = self._by_group.pop(group, 0) - size
        if left > 0:
            self._by_group[group] = left


def wanted_open_files(caps: Sequence[int]) -> Optional[int]:
    """Open files the listeners' connection caps need, with the rest of the server; None when
    a cap is 0 (no limit of its own)."""
    if not all(caps):
        return None
    return sum(caps) + FILES_FOR_THE_REST


def fit_connection_caps(open_file_limit: int, caps: Sequence[int]) -> tuple[int, ...]:
    """Each listener's connection cap, lowered so that all of them together fit in the
    open-file limit beside the rest of the server. A cap of 0 (none of its own) becomes an
    equal share of what is free."""
    free = max(len(caps), open_file_limit - FILES_FOR_THE_REST)
    share = free // max(1, len(caps))
    wanted = [cap or share for cap in caps]
    if sum(wanted) <= free:
        return tuple(wanted)
    return tuple(max(1, cap * free // sum(wanted)) for cap in wanted)
