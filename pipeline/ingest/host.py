"""Host network state: ip -j addr / ip -j route, and the plain ip addr, ip -br addr, ip route.

Records (read = parsed + rejected):
- JSON (`ip -j [-d] [-p] addr|route`, also `route show table all`): one element of the
  top-level array, i.e. an interface with all its addresses (an interface without addresses
  gives one row with family/local null) or one route (one row per nexthop). An element that
  lacks a required key or holds a bad value is rejected whole, at the line where it starts; a
  truncated array keeps its complete elements and rejects the rest as one record; prompt lines
  around the JSON are rejected records.
- Text: see pipeline.ingest.host_text (one address, interface without addresses, or route).
"""

from __future__ import annotations

import re
from typing import Any

from .host_rows import (
    ADDR_FLAGS,
    BadRecordError,
    HostRows,
    ip_text,
    opt_int,
    opt_str,
    prefix_len,
    route_rows,
)
from .host_text import ANSI, TextParser, shape
from .json_located import iter_json
from .records import Detection, ParsedChunk, RecordError, iter_lines

KINDS: tuple[str, ...] = ("ip-addr-json", "ip-route-json", "ip-addr", "ip-addr-brief", "ip-route")

_JSON_START = re.compile(r"^\s*[\[{]", re.M)
_JSON_IFNAME = re.compile(r'"ifname"\s*:')
_JSON_DST = re.compile(r'"dst"\s*:')


def detect(text: str) -> Detection | None:
    """JSON: score = interface/route elements seen; text: lines shaped like ip output."""
    if _JSON_START.search(text):
        ifnames, dsts = len(_JSON_IFNAME.findall(text)), len(_JSON_DST.findall(text))
        if ifnames or dsts:
            kind = "ip-addr-json" if ifnames >= dsts else "ip-route-json"
            return Detection(kind, ifnames + dsts)
    scores = {"ip-addr": 0, "ip-addr-brief": 0, "ip-route": 0}
    for line in iter_lines(text):
        line_shape = shape(ANSI.sub("", line.text))
        if line_shape in ("header", "addr", "oneline"):
            scores["ip-addr"] += 1
        elif line_shape == "brief":
            scores["ip-addr-brief"] += 1
        elif line_shape == "route" and len(line.text.split()) > 1:
            scores["ip-route"] += 1  # a lone prefix (an ipset member, say) is no evidence
    best = max(scores, key=lambda k: scores[k])
    return Detection(best, scores[best]) if scores[best] else None


def parse(text: str, kind: str) -> ParsedChunk:
    out = HostRows()
    if kind.endswith("-json"):
        _parse_json(text, kind, out)
    else:
        TextParser(out).run(text)
    return out.finish()


def _parse_json(text: str, kind: str, out: HostRows) -> None:
    missing = "route element has no 'dst'" if "route" in kind else "element has no 'ifname'"
    for item in iter_json(text):
        if isinstance(item, RecordError):
            out.reject(item.reason, item.raw, item.line or 1)
            continue
        el = item.value
        try:
            if isinstance(el, dict) and "ifname" in el:
                link = _link_from_json(el)
                entries = el.get("addr_info") or []
                if not isinstance(entries, list):
                    raise BadRecordError("'addr_info' is not a list")
                for addr in [_addr_from_json(e) for e in entries] or [{}]:
                    out.addr("json", item.line, link, addr)
            elif isinstance(el, dict) and "dst" in el:
                out.route("json", item.line, _route_from_json(el))
            elif isinstance(el, dict):
                raise BadRecordError(missing)
            else:
                raise BadRecordError(f"JSON element is a {type(el).__name__}, not an object")
        except BadRecordError as exc:
            out.reject(str(exc), item.raw, item.line)
            continue
        out.parsed()


def _link_from_json(el: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(el.get("ifname"), str):
        raise BadRecordError("interface element has no 'ifname' text")
    info = el.get("linkinfo")
    flags = el.get("flags")
    return {
        "ifindex": opt_int(el.get("ifindex"), "ifindex"),
        "ifname": el["ifname"],
        "link_type": opt_str(el.get("link_type")),
        "mac": opt_str(el.get("address")),
        "oper_state": opt_str(el.get("operstate")),
        "link_flags": [str(f) for f in flags] if isinstance(flags, list) else None,
        "mtu": opt_int(el.get("mtu"), "mtu"),
        "master": opt_str(el.get("master")),
        "link_kind": opt_str(info.get("info_kind")) if isinstance(info, dict) else None,
    }


def _addr_from_json(entry: object) -> dict[str, Any]:
    if not isinstance(entry, dict) or "local" not in entry or "family" not in entry:
        raise BadRecordError("address entry without 'family' and 'local'")
    peer = entry.get("address")  # only printed when it differs from local (peer ...)
    return {
        "family": str(entry["family"]),
        "local": ip_text(entry["local"], "address"),
        "prefixlen": prefix_len(entry.get("prefixlen"), str(entry["family"])),
        "peer": ip_text(peer, "peer") if peer is not None and peer != entry["local"] else None,
        "scope": opt_str(entry.get("scope")),
        "is_secondary": entry.get("secondary") is True,
        "label": opt_str(entry.get("label")),
        "addr_flags": [k for k, v in entry.items() if k in ADDR_FLAGS and v is True],
    }


def _route_from_json(el: dict[str, Any]) -> list[dict[str, Any]]:
    fields = dict(el)
    via = el.get("via")  # RTA_VIA: {"family": ..., "host": ...}
    if isinstance(via, dict) and "gateway" not in el:
        fields["gateway"] = via.get("host")
    hops = el.get("nexthops")
    if hops is not None and not (isinstance(hops, list) and all(isinstance(h, dict) for h in hops)):
        raise BadRecordError("'nexthops' is not a list of objects")
    return route_rows(fields, hops or [])
