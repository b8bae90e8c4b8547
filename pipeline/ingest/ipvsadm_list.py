"""ipvsadm -L listings: -Ln, --stats, --rate (with or without --exact), --persistent-conn,
--thresholds and --tun-info, with or without their header lines (grep fragments too).

Print formats (ipvsadm.c print_title / print_service_entry / print_largenum):
  service   "%s  %s" proto+addr, then " %s" scheduler and " persistent %u", " mask %s", ...
            (--stats/--rate: "%-33s" then five print_largenum() columns instead)
  FWM       "FWM  %d" or "FWM  %d IPv6", then the same as above
  backend   "  -> %-28s %-7s %-6d %-10u %-10u" (addr, Forward, Weight, ActiveConn, InActConn)
            --stats/--rate: "  -> %-28s" + 5 counters; --persistent-conn: Weight PersistConn
            ActiveConn InActConn; --thresholds: Uthreshold Lthreshold ActiveConn InActConn;
            --tun-info: Forward TunnelInfo Weight ActiveConn InActConn
Columns overflow their widths (IPv6, host names), so lines are read as tokens, not offsets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .ipvsadm_common import ELISION_REASON, Collector, Row, is_elision
from .ipvsadm_fields import (
    FieldError,
    is_decimal,
    normalise_ip,
    parse_counter,
    parse_endpoint,
    parse_int,
    squeeze,
)
from .records import Line

SERVICES = "raw_ipvs_services"
BACKENDS = "raw_ipvs_backends"

_SERVICE = re.compile(r"^(TCP|UDP|SCTP) (\S+)(?: (.*))?$")
_FWM = re.compile(r"^FWM ([0-9]+)( IPv6)?(?: (.*))?$")
_BACKEND = re.compile(r"^-> ?(\S+)(?: (.*))?$")
_COUNTER_TOKEN = re.compile(r"^[0-9]+[KMGT]?$")
_PROC_ADDR = re.compile(r"^(?:[0-9A-Fa-f]{8}|\[(?:[0-9a-f]{4}:){7}[0-9a-f]{4}\]):[0-9A-Fa-f]{4}$")

_STATS_COLUMNS = {
    "stats": ("conns", "in_pkts", "out_pkts", "in_bytes", "out_bytes"),
    "rate": ("cps", "in_pps", "out_pps", "in_bps", "out_bps"),
}
# print_title(): the words after "Prot LocalAddress:Port" name the listing
_TITLES = {
    "Scheduler Flags": "list",
    "Conns InPkts OutPkts InBytes OutBytes": "stats",
    "CPS InPPS OutPPS InBPS OutBPS": "rate",
    "Weight PersistConn ActiveConn InActConn": "persistent_conn",
    "Uthreshold Lthreshold ActiveConn InActConn": "thresholds",
}
_EXPECTED = {
    "list": "Forward Weight ActiveConn InActConn",
    "stats": "Conns InPkts OutPkts InBytes OutBytes",
    "rate": "CPS InPPS OutPPS InBPS OutBPS",
    "persistent_conn": "Weight PersistConn ActiveConn InActConn",
    "thresholds": "Uthreshold Lthreshold ActiveConn InActConn",
    "tun_info": "Forward TunnelInfo Weight ActiveConn InActConn",
}
VERSION_PREFIX = "IP Virtual Server version"
TITLE_PREFIX = "Prot LocalAddress:Port"
DEST_TITLE_PREFIX = "-> RemoteAddress:Port"


def is_header(text: str) -> bool:
    return text.startswith((VERSION_PREFIX, TITLE_PREFIX, DEST_TITLE_PREFIX))


def looks_like_record(text: str) -> bool:
    """A service or real-server line of ipvsadm -L (not /proc/net/ip_vs hex); for detect()."""
    text = squeeze(text)
    match = _SERVICE.match(text) or _BACKEND.match(text)
    if match is not None:
        addr = match.group(2) if match.re is _SERVICE else match.group(1)
        return ":" in addr and not _PROC_ADDR.match(addr)
    return _FWM.match(text) is not None


@dataclass
class _Service:
    key: Row  # proto, vip, vport, vport_name, fwmark
    line: int


class ListParser:
    """Feeds lines of one file; keeps the listing mode from the headers and the current service."""

    def __init__(self, out: Collector) -> None:
        self.out = out
        self.mode: str | None = None  # from the column header; None when there is none
        self.service: _Service | None = None
        self.lost_service_line: int | None = None  # a rejected service line ...
        self.break_line: int | None = None  # ... or a rejected non-backend line since the service
        self.guessed_stats = False

    def feed(self, line: Line) -> None:
        text = squeeze(line.text)
        if not text:
            return
        if is_header(text):
            self._header(text)
            return
        is_backend = text.startswith("->")
        if self.out.record(line, self._backend if is_backend else self._service):
            return
        if not is_backend:
            # what follows may belong to something elided or unreadable: don't guess its service
            if _SERVICE.match(text) or _FWM.match(text):
                self.service, self.lost_service_line, self.break_line = None, line.no, None
            elif self.service is not None:
                self.break_line = line.no

    def _header(self, text: str) -> None:
        self.service, self.lost_service_line, self.break_line = None, None, None
        if text.startswith(VERSION_PREFIX):
            self.mode = None
        elif text.startswith(TITLE_PREFIX):
            self.mode = _TITLES.get(text[len(TITLE_PREFIX) :].strip())
        else:
            columns = text[len(DEST_TITLE_PREFIX) :].strip()
            if columns == _EXPECTED["list"]:
                self.mode = "list"
            elif columns == _EXPECTED["tun_info"]:
                self.mode = "tun_info"

    # -- service lines -------------------------------------------------------------------------

    def _service(self, text: str, line: Line) -> None:
        key, family, rest = _service_key(text)
        tokens = rest.split() if rest else []
        if not tokens:
            raise FieldError(
                "service line ends after the address: no scheduler or counters (cut short?)"
            )
        row: Row = {**key, "family": family, "source_line": line.no}
        if all(_COUNTER_TOKEN.match(t) for t in tokens):
            fmt = self._counter_format(line)
            row.update(_counters(tokens, fmt, "service"))
        else:
            fmt = self.mode if self.mode in ("persistent_conn", "thresholds") else "list"
            row.update(_scheduler_and_flags(tokens))
        row["format"] = fmt
        self.out.add(SERVICES, row)
        self.service = _Service(key, line.no)
        self.lost_service_line = self.break_line = None

    def _counter_format(self, line: Line) -> str:
        if self.mode in ("stats", "rate"):
            return self.mode
        if not self.guessed_stats:
            self.guessed_stats = True
            self.out.warn(
                line,
                "counters without a --stats/--rate column header are read as --stats "
                "(Conns InPkts OutPkts InBytes OutBytes); --rate output has the same shape",
            )
        return "stats"

    # -- real-server lines ---------------------------------------------------------------------

    def _backend(self, text: str, line: Line) -> None:
        match = _BACKEND.match(text)
        if match is None:
            raise FieldError("'->' without a real-server address after it")
        service = self._current_service()
        endpoint = parse_endpoint(match.group(1), "real-server address")
        tokens = match.group(2).split() if match.group(2) else []
        if not tokens:
            raise FieldError("real-server line is cut short: only the address, none of its columns")
        row: Row = {
            **service.key,
            "service_line": service.line,
            "source_line": line.no,
            "backend_ip": endpoint.host,
            "backend_port": endpoint.port,
            "backend_port_name": endpoint.port_name,
        }
        row.update(self._backend_columns(tokens, line))
        self.out.add(BACKENDS, row)

    def _current_service(self) -> _Service:
        if self.service is not None and self.break_line is None:
            return self.service
        if self.lost_service_line is not None:
            raise FieldError(
                f"real-server line of the service on line {self.lost_service_line}, "
                "which was rejected"
            )
        if self.service is not None:
            raise FieldError(
                f"real-server line after the unreadable line {self.break_line}: "
                "its service may have been left out, so it is not guessed"
            )
        raise FieldError("real-server line with no service line before it")

    def _backend_columns(self, tokens: list[str], line: Line) -> Row:
        n = len(tokens)
        ints = [is_decimal(t.removeprefix("-")) for t in tokens]
        if n == 5 and all(_COUNTER_TOKEN.match(t) for t in tokens):
            fmt = self._counter_format(line)
            return {"format": fmt, **_counters(tokens, fmt, "real-server")}
        if n == 4 and all(ints):
            if self.mode not in ("persistent_conn", "thresholds"):
                raise FieldError(
                    "four numbers after the address but no --persistent-conn/--thresholds "
                    "column header: which columns they are is ambiguous"
                )
            return _four_numbers(tokens, self.mode)
        if n == 4 and not ints[0] and all(ints[1:]):
            return {
                "format": "list",
                "forward": tokens[0],
                "weight": parse_int(tokens[1], "Weight", signed=True),
                "active_conn": parse_int(tokens[2], "ActiveConn"),
                "inact_conn": parse_int(tokens[3], "InActConn"),
            }
        if n == 5 and not ints[0] and not ints[1] and all(ints[2:]):
            return {
                "format": "list",
                "forward": tokens[0],
                "tunnel_info": tokens[1],
                "weight": parse_int(tokens[2], "Weight", signed=True),
                "active_conn": parse_int(tokens[3], "ActiveConn"),
                "inact_conn": parse_int(tokens[4], "InActConn"),
            }
        expected = _EXPECTED.get(self.mode or "list", _EXPECTED["list"])
        raise FieldError(
            f"real-server line has {n} column(s) after the address that do not read as "
            f"{expected} (cut short or garbled?)"
        )


def _service_key(text: str) -> tuple[Row, str | None, str | None]:
    """(key columns, family, the text after the address) of a TCP/UDP/SCTP or FWM line."""
    match = _SERVICE.match(text)
    if match is not None:
        endpoint = parse_endpoint(match.group(2), "service address")
        key = {
            "proto": match.group(1).lower(),
            "vip": endpoint.host,
            "vport": endpoint.port,
            "vport_name": endpoint.port_name,
            "fwmark": None,
        }
        return key, endpoint.family, match.group(3)
    match = _FWM.match(text)
    if match is not None:
        key = {"proto": "fwm", "vip": None, "vport": None, "vport_name": None}
        key["fwmark"] = parse_int(match.group(1), "firewall mark")
        return key, "inet6" if match.group(2) else "inet", match.group(3)
    if is_elision(text):
        raise FieldError(ELISION_REASON)
    raise FieldError(
        "not an ipvsadm -L line (expected 'TCP|UDP|SCTP address:port ...', "
        "'FWM mark ...' or '-> address:port ...')"
    )


def _scheduler_and_flags(tokens: list[str]) -> Row:
    """'rr persistent 10800 mask 255.255.255.0 pe sip ops' -> scheduler, flags, timeout, mask."""
    flags = tokens[1:]
    row: Row = {"scheduler": tokens[0], "flags": " ".join(flags) or None}
    for i, token in enumerate(flags):
        value = flags[i + 1] if i + 1 < len(flags) else None
        if token == "persistent":
            if value is None:
                raise FieldError("'persistent' without its timeout (cut short?)")
            row["persistent_s"] = parse_int(value, "persistence timeout")
        elif token == "mask":
            if value is None:
                raise FieldError("'mask' without its netmask (cut short?)")
            row["netmask"] = value if is_decimal(value) else normalise_ip(value, "mask")[0]
    return row


def _counters(tokens: list[str], fmt: str, what: str) -> dict[str, Any]:
    if len(tokens) != 5:
        raise FieldError(
            f"{what} line has {len(tokens)} counter(s), expected five "
            f"({_EXPECTED[fmt]}; cut short?)"
        )
    row: dict[str, Any] = {}
    exact = True
    for name, token in zip(_STATS_COLUMNS[fmt], tokens, strict=True):
        row[name], token_exact = parse_counter(token)
        exact = exact and token_exact
    row["is_exact"] = exact
    return row


_FOUR_COLUMNS = {
    "persistent_conn": ("weight", "persist_conn", "active_conn", "inact_conn"),
    "thresholds": ("u_threshold", "l_threshold", "active_conn", "inact_conn"),
}


def _four_numbers(tokens: list[str], mode: str) -> Row:
    """--persistent-conn or --thresholds real-server columns (weight may be negative)."""
    row: Row = {"format": mode}
    titles = _EXPECTED[mode].split()
    for column, title, token in zip(_FOUR_COLUMNS[mode], titles, tokens, strict=True):
        row[column] = parse_int(token, title, signed=column == "weight")
    return row
