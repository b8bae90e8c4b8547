"""Rows of raw_host_addrs / raw_host_routes, shared by the JSON and the text form of `ip`.

Field names follow ip -j's JSON keys (gateway, protocol, prefsrc, ...); the text parser maps
`via`, `proto`, `src` onto them, so both forms go through the same normalisation: addresses via
ipaddress, destinations in CIDR form, and the values ip leaves out when they are the default
(table main, type unicast, proto boot, scope global) filled in.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ..schemas import RAW_HOST_ADDRS, RAW_HOST_ROUTES
from .records import ParsedChunk, RecordError

OPER_STATES = {"UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP"}
ROUTE_TYPES = {
    "unicast", "local", "broadcast", "multicast", "blackhole", "unreachable", "prohibit",
    "throw", "nat", "anycast", "xresolve",
}  # fmt: skip
ADDR_FLAGS = {
    "secondary", "temporary", "nodad", "optimistic", "dadfailed", "home", "deprecated",
    "tentative", "mngtmpaddr", "noprefixroute", "autojoin", "stable-privacy", "dynamic",
}  # fmt: skip
ROUTE_FLAGS = {
    "dead", "onlink", "pervasive", "offload", "trap", "offload_failed", "notify", "linkdown",
    "unresolved", "rt_offload", "rt_trap", "rt_offload_failed",
}  # fmt: skip
# ip route keywords followed by one value (route metrics may put `lock` before the value)
ROUTE_KEYS = {
    "from", "tos", "dsfield", "via", "dev", "table", "proto", "scope", "src", "metric", "pref",
    "expires", "error", "nhid", "realm", "realms", "mark", "iif", "weight", "mtu", "advmss",
    "rtt", "rttvar", "reordering", "window", "cwnd", "initcwnd", "initrwnd", "ssthresh",
    "rto_min", "hoplimit", "features", "quickack", "congctl", "fastopen_no_cookie",
}  # fmt: skip
_TEXT_TO_JSON_KEY = {"via": "gateway", "proto": "protocol", "src": "prefsrc"}


class BadRecordError(ValueError):
    """A record that cannot be used; the message is the RecordError reason."""


def ip_text(value: object, what: str) -> str:
    try:
        return ipaddress.ip_address(str(value)).compressed
    except ValueError:
        raise BadRecordError(f"{what} {value!r} is not an IP address") from None


def to_int(value: object, what: str, limit: int = 2**31 - 1) -> int:
    """A non-negative integer up to `limit` (the column's range: Int32 unless told)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadRecordError(f"{what} {value!r} is not an integer")
    try:
        number = int(value)
    except ValueError:
        raise BadRecordError(f"{what} {value!r} is not an integer") from None
    if not 0 <= number <= limit:
        raise BadRecordError(f"{what} {value!r} is out of range")
    return number


def opt_int(value: object, what: str, limit: int = 2**31 - 1) -> int | None:
    return None if value is None else to_int(value, what, limit)


def prefix_len(value: object, family: str) -> int:
    return to_int(value, "prefix length", 128 if family == "inet6" else 32)


def opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def family_of(addr: str) -> str:
    return "inet6" if ":" in addr else "inet"


def _dst(value: object, hints: tuple[object, ...], is_v6: bool) -> tuple[str, str]:
    """Normalised destination prefix and family; `default` takes the family of its hints."""
    text = str(value)
    if text == "default":
        known = [h for h in hints if isinstance(h, str) and h]
        v6 = any(":" in h for h in known) if known else is_v6
        return ("::/0", "inet6") if v6 else ("0.0.0.0/0", "inet")
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise BadRecordError(f"route destination {text!r} is not a prefix or 'default'") from None
    return net.with_prefixlen, "inet6" if net.version == 6 else "inet"


def route_rows(fields: dict[str, Any], hops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of one route, one per nexthop; `fields` and `hops` use ip -j route's key names.

    A default route's family comes from its gateways/prefsrc, else from `pref` (printed for
    IPv6 routes only), else IPv4 (plain `ip route` lists IPv4 only).
    """
    rtype = str(fields.get("type") or "unicast")
    paths = hops or [fields]
    if rtype == "unicast" and not any(p.get("dev") or p.get("gateway") for p in paths):
        raise BadRecordError("route has neither a device, a gateway nor nexthops")
    hints = (*(p.get("gateway") for p in paths), fields.get("prefsrc"))
    dst, family = _dst(fields.get("dst"), hints, "pref" in fields)
    base = {
        "table_name": str(fields.get("table") or "main"),
        "route_type": rtype,
        "family": family,
        "dst": dst,
        "protocol": str(fields.get("protocol") or "boot"),
        "scope": str(fields.get("scope") or "global"),
        "prefsrc": ip_text(fields["prefsrc"], "prefsrc") if fields.get("prefsrc") else None,
        "metric": opt_int(fields.get("metric"), "metric", 2**63 - 1),
    }
    route_flags = [str(f) for f in fields.get("flags") or []]
    rows = []
    for path in paths:
        gateway = path.get("gateway")
        hop_flags = [str(f) for f in path.get("flags") or []] if hops else []
        rows.append(
            {
                **base,
                "gateway": ip_text(gateway, "gateway") if gateway else None,
                "dev": opt_str(path.get("dev")),
                "weight": opt_int(path.get("weight"), "weight") if hops else None,
                "flags": route_flags + hop_flags,
            }
        )
    return rows


def route_fields_from_tokens(tokens: list[str], fields: dict[str, Any]) -> None:
    """Fill JSON-named `fields` from the tokens of an ip route line after its destination."""
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in ROUTE_FLAGS:
            fields.setdefault("flags", []).append(tok)
        elif tok in ROUTE_KEYS and i + 1 < len(tokens):
            i += 1
            if tokens[i] == "lock" and i + 1 < len(tokens):
                i += 1
            if tok == "via" and tokens[i] in ("inet", "inet6") and i + 1 < len(tokens):
                i += 1  # RTA_VIA prints the family first
            fields[_TEXT_TO_JSON_KEY.get(tok, tok)] = tokens[i]
        i += 1


class HostRows:
    """Rows and record bookkeeping shared by the JSON and the text parsers."""

    def __init__(self) -> None:
        self.addrs: list[dict[str, Any]] = []
        self.routes: list[dict[str, Any]] = []
        self.chunk = ParsedChunk()

    def parsed(self) -> None:
        self.chunk.records_read += 1
        self.chunk.records_parsed += 1

    def reject(self, reason: str, raw: str, line: int) -> None:
        self.chunk.records_read += 1
        self.chunk.errors.append(RecordError(reason, raw, line=line))

    def addr(self, fmt: str, line: int, link: dict[str, Any], addr: dict[str, Any]) -> None:
        self.addrs.append({"format": fmt, "source_line": line, **link, **addr})

    def route(self, fmt: str, line: int, rows: list[dict[str, Any]]) -> None:
        self.routes += [{"format": fmt, "source_line": line, **row} for row in rows]

    def finish(self) -> ParsedChunk:
        self.chunk.frames = {
            RAW_HOST_ADDRS.name: RAW_HOST_ADDRS.frame(self.addrs),
            RAW_HOST_ROUTES.name: RAW_HOST_ROUTES.frame(self.routes),
        }
        return self.chunk
