"""IPVS connection entries: ipvsadm -Lnc (-Lc) and /proc/net/ip_vs_conn.

Print formats:
  ipvsadm.c list_conn/print_conn   "IPVS connection entries", a column header, then
      "%-3s %-6s %-11s %-18s %-18s %s" proto, MM:SS, state, source, virtual, destination
      (--persistent-conn adds "%-10s %s" pe name, pe data). Addresses longer than 18 characters
      push the later columns right, so rows are read as tokens.
  kernel ip_vs_conn_seq_show   "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires
      PEName PEData", then "%-3s %08X %04X %08X %04X %s %04X %-11s %7u%s" (IPv6: %pI6),
      the optional tail being " <pe name> <pe data>".
"""

from __future__ import annotations

import re
from typing import NoReturn

from .ipvsadm_common import ELISION_REASON, Collector, Row, is_elision
from .ipvsadm_fields import (
    FieldError,
    parse_endpoint,
    parse_expire,
    parse_hex,
    parse_int,
    parse_proc_addr,
    squeeze,
)
from .records import Line

CONNECTIONS = "raw_ipvs_connections"
LIST_HEADERS = ("IPVS connection entries", "pro expire state source virtual destination")
PROC_HEADER = "Pro FromIP FPrt ToIP TPrt DestIP DPrt State Expires"
_LIST_ROW = re.compile(r"^[A-Za-z][A-Za-z0-9]* [0-9]+:[0-5][0-9] \S+ \S+:\S+ \S+:\S+ \S+:\S+")
_HEXF = r"(?:[0-9A-Fa-f]{8}|[0-9A-Fa-f:]+)"
_PROC_ROW = re.compile(
    rf"^[A-Za-z][A-Za-z0-9]* {_HEXF} [0-9A-Fa-f]{{4}} {_HEXF} [0-9A-Fa-f]{{4}} "
    rf"{_HEXF} [0-9A-Fa-f]{{4}} \S+ [0-9]+"
)


def looks_like_list_row(text: str) -> bool:
    return _LIST_ROW.match(squeeze(text)) is not None


def looks_like_proc_row(text: str) -> bool:
    return _PROC_ROW.match(squeeze(text)) is not None


def is_list_header(text: str) -> bool:
    return text.startswith(LIST_HEADERS)


def is_proc_header(text: str) -> bool:
    return text.startswith(PROC_HEADER)


class ConnParser:
    """One parser for both layouts; `proc` says which one the file is."""

    def __init__(self, out: Collector, *, proc: bool) -> None:
        self.out = out
        self.proc = proc

    def feed(self, line: Line) -> None:
        text = squeeze(line.text)
        if not text or is_list_header(text) or is_proc_header(text):
            return
        self.out.record(line, self._proc_row if self.proc else self._list_row)

    def _list_row(self, text: str, line: Line) -> None:
        tokens = text.split()
        if not _LIST_ROW.match(text):
            _reject(text, len(tokens), 6, "pro expire state source virtual destination")
        proto, expire, state = tokens[0], tokens[1], tokens[2]
        source, virtual, dest = (
            parse_endpoint(token, what)
            for token, what in zip(tokens[3:6], ("source", "virtual", "destination"), strict=True)
        )
        row: Row = {
            "format": "list",
            "source_line": line.no,
            "proto": _proto(proto),
            "expire_s": parse_expire(expire),
            "state": state,
            "client_ip": source.host,
            "client_port": source.port,
            "vip": virtual.host,
            "vport": virtual.port,
            "backend_ip": dest.host,
            "backend_port": dest.port,
        }
        row.update(_pe(tokens[6:]))
        self.out.add(CONNECTIONS, row)

    def _proc_row(self, text: str, line: Line) -> None:
        tokens = text.split()
        if not _PROC_ROW.match(text):
            _reject(text, len(tokens), 9, PROC_HEADER)
        row: Row = {"format": "proc", "source_line": line.no, "proto": _proto(tokens[0])}
        for i, (ip_col, port_col, what) in enumerate(
            (
                ("client_ip", "client_port", "FromIP"),
                ("vip", "vport", "ToIP"),
                ("backend_ip", "backend_port", "DestIP"),
            )
        ):
            row[ip_col] = parse_proc_addr(tokens[1 + 2 * i], what)[0]
            row[port_col] = parse_hex(tokens[2 + 2 * i], f"{what} port", width=4)
        row["state"] = tokens[7]
        row["expire_s"] = parse_int(tokens[8], "Expires")
        row.update(_pe(tokens[9:]))
        self.out.add(CONNECTIONS, row)


def _proto(text: str) -> str:
    if not text.isascii() or not text.isalnum():
        raise FieldError(f"protocol '{text}' is not a protocol name")
    return text.lower()


def _pe(tokens: list[str]) -> Row:
    """Persistence engine columns: name, then its data (may be empty)."""
    if not tokens:
        return {}
    return {"pe_name": tokens[0], "pe_data": " ".join(tokens[1:]) or None}


def _reject(text: str, found: int, needed: int, expected: str) -> NoReturn:
    if is_elision(text):
        raise FieldError(ELISION_REASON)
    if found < needed:
        raise FieldError(
            f"connection line has {found} field(s), expected {needed}: {expected} (cut short?)"
        )
    raise FieldError(f"not a connection line in the layout '{expected}'")
