"""Plain-text `ip` output: ip [-d] [-o] addr, ip -br addr and ip route, classified line by line.

Records: one `inet`/`inet6` address line (its `valid_lft` line is part of it), an interface
header without address lines (one row with family/local null), one address of an ip -br line
(or the line itself when it has none), one route line with its `nexthop` lines. Interface
headers, `link/` lines and ip -d / -s detail lines are structural parts of an interface block.
Every other non-blank line is a rejected record. Because each line is classified on its own, a
paste that mixes these outputs (prompts, the author's `...`, colour codes) loses nothing.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from .host_rows import (
    ADDR_FLAGS,
    OPER_STATES,
    ROUTE_FLAGS,
    ROUTE_KEYS,
    ROUTE_TYPES,
    BadRecordError,
    HostRows,
    family_of,
    ip_text,
    prefix_len,
    route_fields_from_tokens,
    route_rows,
)
from .records import iter_lines

NUD_STATES = {
    "REACHABLE", "STALE", "DELAY", "PROBE", "FAILED", "NOARP", "PERMANENT", "INCOMPLETE", "NONE",
}  # fmt: skip
HEADER_KEYS = {"mtu", "qdisc", "master", "state", "mode", "group", "qlen"}
ADDR_KEYS = {"peer", "brd", "any", "scope", "metric", "proto", "flags"}
NOT_A_LINE = "not a line of ip addr / ip -br addr / ip route output"

ANSI = re.compile(r"\x1b\[[0-9;]*m")
_HEADER = re.compile(r"^(\d{1,9}):\s+([^\s:@]+)(?:@(\S+?))?:\s+<([^>]*)>\s*(.*)$")
_ONELINE_ADDR = re.compile(r"^(\d{1,9}):\s+([^\s:@]+)(?:@\S+?)?\s+(inet6?\s.*)$")
_ADDR_LINE = re.compile(r"^inet6?\s")
_DETAIL = re.compile(r"^[a-z][a-z0-9_]*(\s|$)")


def shape(text: str) -> str | None:
    """Which `ip` output line `text` is: header, oneline, addr, nexthop, brief, route or None."""
    if _HEADER.match(text):
        return "header"
    if _ONELINE_ADDR.match(text):
        return "oneline"
    if _ADDR_LINE.match(text):
        return "addr"
    tokens = text.split()
    if not tokens:
        return None
    if tokens[0] == "nexthop":
        return "nexthop"
    if "lladdr" in tokens or tokens[-1] in NUD_STATES:
        return None  # ip neigh
    if len(tokens) >= 2 and tokens[1] in OPER_STATES and all(map(_is_prefix, tokens[2:])):
        return "brief"
    first = 1 if tokens[0] in ROUTE_TYPES and len(tokens) > 1 else 0
    if tokens[first] == "default" or _is_prefix(tokens[first]):
        rest = tokens[first + 1 :]
        if first or not rest or rest[0] in ROUTE_KEYS or rest[0] in ROUTE_FLAGS:
            return "route"
    return None


def _is_prefix(token: str) -> bool:
    try:
        ipaddress.ip_interface(token)
    except ValueError:
        return False
    return True


@dataclass
class _Route:
    """A route line waiting for its nexthop lines."""

    line: int
    raw: list[str]
    hops: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_multipath_head(self) -> bool:
        return not {"via", "dev"} & set(self.raw[0].split())


class TextParser:
    """Line-by-line parser for ip addr (-d, -o), ip -br addr and ip route text."""

    def __init__(self, out: HostRows) -> None:
        self.out = out
        self.link: dict[str, Any] | None = None  # the current interface block
        self.link_line, self.link_addrs, self.details = 0, 0, False
        self.after_addr = False  # a valid_lft line continues the previous address
        self.route: _Route | None = None

    def run(self, text: str) -> None:
        for line in iter_lines(text):
            for segment in ANSI.sub("", line.text).split("\\"):  # ip -o joins lines with '\'
                if segment.strip():
                    self.line(line.no, segment.strip())
        self.end_route()
        self.end_link()

    def line(self, no: int, text: str) -> None:
        kind = shape(text)
        if kind == "nexthop" and self.route is not None and self.route.is_multipath_head:
            hop: dict[str, Any] = {}
            route_fields_from_tokens(text.split()[1:], hop)
            self.route.raw.append(text)
            self.route.hops.append(hop)
            return
        if text.startswith("cache") and self.route is not None:
            self.route.raw.append(text)  # ip route get / cached routes
            return
        self.end_route()
        if kind == "header":
            self.end_link()
            self.header(no, text)
        elif kind == "oneline":
            self.oneline(no, text)
        elif kind == "addr" and self.link is not None:
            self.address(no, text)
        elif text.startswith("valid_lft") and self.after_addr:
            pass
        elif text.startswith("link/") and self.link is not None:
            self.link_layer(text)
        elif kind == "brief":
            self.end_link()
            self.brief(no, text)
        elif kind == "route":
            self.end_link()
            self.route = _Route(no, [text])
        elif self.link is not None and self.is_detail(text):
            self.detail(text)
        else:
            self.out.reject(NOT_A_LINE, text, no)
            self.after_addr = False

    def header(self, no: int, text: str) -> None:
        m = _HEADER.match(text)
        assert m is not None
        tokens = m.group(5).split()
        pairs = {k: v for k, v in zip(tokens, tokens[1:], strict=False) if k in HEADER_KEYS}
        mtu = pairs.get("mtu")
        self.link = {
            "ifindex": int(m.group(1)),
            "ifname": m.group(2),
            "link_flags": [f for f in m.group(4).split(",") if f],
            "oper_state": pairs.get("state"),
            "master": pairs.get("master"),
            "mtu": int(mtu) if mtu is not None and mtu.isdigit() and len(mtu) < 10 else None,
        }
        self.link_line, self.link_addrs, self.details = no, 0, False
        self.after_addr = False

    def oneline(self, no: int, text: str) -> None:
        m = _ONELINE_ADDR.match(text)
        assert m is not None
        ifindex = int(m.group(1))
        if self.link is None or self.link["ifindex"] != ifindex:
            self.end_link()
            self.link = {"ifindex": ifindex, "ifname": m.group(2)}
            self.link_line, self.link_addrs, self.details = no, 0, False
        self.address(no, m.group(3))

    def link_layer(self, text: str) -> None:
        assert self.link is not None
        tokens = text.split()
        self.link["link_type"] = tokens[0].removeprefix("link/")
        if len(tokens) > 1 and tokens[1] not in ("brd", "promiscuity", "link-netnsid"):
            self.link["mac"] = tokens[1]
        self.details = "promiscuity" in tokens  # ip -d: detail lines follow

    def is_detail(self, text: str) -> bool:
        if text.startswith(("altname ", "RX:", "TX:")):
            return True
        if all(t.replace(".", "").isdigit() for t in text.split()):
            return True  # ip -s counters
        return self.details and bool(_DETAIL.match(text))

    def detail(self, text: str) -> None:
        """ip -d: the first detail line names the link kind (veth, bridge, vxlan, ...)."""
        word = text.split()[0]
        if self.link is not None and self.details and "link_kind" not in self.link:
            if word != "altname" and not word.endswith("_slave"):
                self.link["link_kind"] = word

    def address(self, no: int, text: str) -> None:
        assert self.link is not None
        self.link_addrs += 1
        self.after_addr = True
        try:
            addr = addr_from_text(text)
        except BadRecordError as exc:
            self.out.reject(str(exc), text, no)
            return
        self.out.addr("text", no, self.link, addr)
        self.out.parsed()

    def end_link(self) -> None:
        if self.link is not None and self.link_addrs == 0:
            self.out.addr("text", self.link_line, self.link, {})
            self.out.parsed()
        self.link = None
        self.after_addr = False

    def brief(self, no: int, text: str) -> None:
        tokens = text.split()
        link = {"ifname": tokens[0].split("@")[0], "oper_state": tokens[1]}
        if len(tokens) == 2:
            self.out.addr("brief", no, link, {})
            self.out.parsed()
        for token in tokens[2:]:
            iface = ipaddress.ip_interface(token)
            local = iface.ip.compressed
            prefixlen = iface.network.prefixlen
            addr = {"family": family_of(local), "local": local, "prefixlen": prefixlen}
            self.out.addr("brief", no, link, addr)
            self.out.parsed()

    def end_route(self) -> None:
        route, self.route = self.route, None
        if route is None:
            return
        tokens = route.raw[0].split()
        fields: dict[str, Any] = {}
        if tokens[0] in ROUTE_TYPES and len(tokens) > 1:
            fields["type"] = tokens.pop(0)
        fields["dst"] = tokens[0]
        route_fields_from_tokens(tokens[1:], fields)
        try:
            rows = route_rows(fields, route.hops)
        except BadRecordError as exc:
            self.out.reject(str(exc), " ".join(route.raw), route.line)
            return
        self.out.route("text", route.line, rows)
        self.out.parsed()


def addr_from_text(text: str) -> dict[str, Any]:
    """One `inet ...` / `inet6 ...` line of ip addr (without the `N: ifname` of ip -o)."""
    tokens = text.split()
    family = tokens[0]
    if len(tokens) < 2:
        raise BadRecordError("address line without an address")
    local_text, _, plen = tokens[1].partition("/")
    local = ip_text(local_text, "address")
    if family_of(local) != family:
        raise BadRecordError(f"{family} line holds {local_text!r}, an address of the other family")
    addr: dict[str, Any] = {"family": family, "local": local, "addr_flags": [], "label": None}
    i = 2
    while i < len(tokens):
        tok = tokens[i]
        if tok in ADDR_KEYS and i + 1 < len(tokens):
            i += 1
            if tok == "peer":
                peer, _, plen = tokens[i].partition("/")
                addr["peer"] = ip_text(peer, "peer")
            elif tok == "scope":
                addr["scope"] = tokens[i]
        elif tok in ADDR_FLAGS:
            addr["addr_flags"].append(tok)
        elif family == "inet":
            addr["label"] = tok  # printed last, without a keyword
        i += 1
    if not plen:
        raise BadRecordError("address without a prefix length")
    addr["prefixlen"] = prefix_len(plen, family)
    addr["is_secondary"] = "secondary" in addr["addr_flags"]
    return addr
