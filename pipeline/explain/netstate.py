"""A node's addresses and routes, and the two kernel decisions made from them.

- `route_lookup`: longest-prefix match in the main table (lowest metric wins a tie), like
  `ip route get` for a unicast destination.
- `masquerade_source`: the address MASQUERADE picks, as the kernel's masquerade_tg() does:
  `inet_select_addr(out_dev, nexthop, RT_SCOPE_UNIVERSE)` - the first primary global address of
  the egress device whose subnet contains the next hop, else its first primary global address,
  else the first global address of any other device. The route's `src` (prefsrc) is NOT used by
  MASQUERADE; it is reported next to the choice when it differs.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Address:
    ifname: str
    local: IPAddress
    prefixlen: int
    scope: str
    is_secondary: bool

    @property
    def network(self) -> IPNetwork:
        return ipaddress.ip_network(f"{self.local}/{self.prefixlen}", strict=False)


@dataclass(frozen=True)
class Route:
    dst: IPNetwork
    dev: str | None
    gateway: IPAddress | None
    prefsrc: IPAddress | None
    metric: int
    table: str
    route_type: str
    text: str


@dataclass(frozen=True)
class SourceChoice:
    address: IPAddress | None
    why: str


@dataclass
class NodeNetState:
    node: str
    addresses: list[Address] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    # addresses known to be local from other evidence (IPVS NodePort listings): ip -> why
    extra_local: dict[IPAddress, str] = field(default_factory=dict)

    @property
    def has_addresses(self) -> bool:
        return bool(self.addresses)

    @property
    def knows_local_addresses(self) -> bool:
        return bool(self.addresses or self.extra_local)

    @property
    def has_routes(self) -> bool:
        return any(r.table == "main" for r in self.routes)

    def local_addresses(self) -> set[IPAddress]:
        """Addresses the node owns: interface addresses plus `local` routes of the local table."""
        local = {a.local for a in self.addresses} | set(self.extra_local)
        for route in self.routes:
            if route.route_type == "local" and route.dst.num_addresses == 1:
                local.add(route.dst.network_address)
        return local

    def is_local(self, ip: IPAddress) -> bool:
        if ip in self.local_addresses():
            return True
        return any(
            r.route_type == "local" and ip in r.dst and r.dst.version == ip.version
            for r in self.routes
        )

    def route_lookup(self, ip: IPAddress) -> Route | None:
        candidates = [
            r
            for r in self.routes
            if r.table == "main"
            and r.route_type in ("unicast", "")
            and r.dst.version == ip.version
            and ip in r.dst
        ]
        if not candidates:
            return None
        return min(candidates, key=lambda r: (-r.dst.prefixlen, r.metric, r.text))

    def masquerade_source(self, dev: str, nexthop: IPAddress) -> SourceChoice:
        primaries = [
            a
            for a in self.addresses
            if a.ifname == dev
            and not a.is_secondary
            and a.scope == "global"
            and a.local.version == nexthop.version
        ]
        for address in primaries:
            if nexthop in address.network:
                return SourceChoice(
                    address.local,
                    f"{address.local} is the primary address of {dev} in the next hop's "
                    f"subnet {address.network}",
                )
        if primaries:
            first = primaries[0]
            return SourceChoice(
                first.local,
                f"{first.local} is the first primary global address of {dev} "
                f"(no address of {dev} shares a subnet with next hop {nexthop})",
            )
        others = [
            a
            for a in self.addresses
            if a.scope == "global"
            and not a.is_secondary
            and a.local.version == nexthop.version
            and a.ifname != "lo"
        ]
        if others:
            return SourceChoice(
                others[0].local,
                f"{dev} has no global address, so the kernel takes the first global address "
                f"of another device: {others[0].local} on {others[0].ifname}",
            )
        return SourceChoice(None, f"no global address on {dev} or any other device")
