"""conntrack -L / -E with -o xml -> a ParsedChunk (xml.etree; one <flow> per record).

Layout (libnetfilter_conntrack snprintf_xml.c): ``<?xml ...?>``, ``<conntrack>``, one ``<flow>``
(``<flow type="new|update|destroy">`` for events) per line, ``</conntrack>`` without a newline,
so ``2>&1`` glues the summary line to it. -E lines may end in `` [USERSPACE] portid=N``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

from ..schemas import RAW_CONNTRACK_ENTRIES
from .conntrack_common import (
    L4_NUMBERS,
    PORT_PROTOS,
    SUMMARY,
    U16,
    U32,
    BadRecordError,
    SummaryCheck,
    epoch_ns,
    parse_address,
    parse_int,
    proto_label,
)
from .records import ParsedChunk, RecordError, iter_lines

_FLOW_END = "</flow>"
_TAIL = re.compile(r"\[USERSPACE\]\s+portid=([0-9]+)(?:\s+progname=(.*))?")
_STRUCTURAL = re.compile(r"<\?xml[^>]*\?>|<conntrack>|</conntrack>")
_TYPES = {"new": "NEW", "update": "UPDATE", "destroy": "DESTROY"}
# snprintf_xml.c prints SCTP and DCCP states through the TCP name table (states[]), so the
# name is the TCP name of the SCTP/DCCP state number; map it back by position.
_TCP_STATES = (
    "NONE SYN_SENT SYN_RECV ESTABLISHED FIN_WAIT CLOSE_WAIT LAST_ACK TIME_WAIT CLOSE LISTEN"
).split()
_OTHER_STATES = {
    "sctp": "NONE CLOSED COOKIE_WAIT COOKIE_ECHOED ESTABLISHED SHUTDOWN_SENT SHUTDOWN_RECD"
    " SHUTDOWN_ACK_SENT HEARTBEAT_SENT HEARTBEAT_ACKED".split(),
    "dccp": "NONE REQUEST RESPOND PARTOPEN OPEN CLOSEREQ CLOSING TIMEWAIT IGNORE INVALID".split(),
}
_INDEPENDENT_INT = {
    "timeout": ("timeout_s", 2**63 - 1),
    "mark": ("mark", U32),
    "secmark": ("secmark", U32),
    "zone": ("zone", U16),
    "use": ("use", 2**31 - 1),
    "id": ("ct_id", U32),
    "deltatime": ("delta_time_s", 2**63 - 1),
}


def is_xml_line(text: str) -> bool:
    return text.startswith("<flow") or _STRUCTURAL.match(text) is not None


def parse_xml(text: str, first_line: int = 1, summary: SummaryCheck | None = None) -> ParsedChunk:
    """Parse conntrack XML; with a `summary` (one block of a longer file), as parse_text."""
    reader = _XmlReader()
    whole_file = summary is None
    if summary is not None:
        reader.summary = summary
    for line in iter_lines(text, first_line):
        reader.raw_lines[line.no] = line.raw.strip()
        reader.line(line.no, line.text)
    if reader.pending:
        reader.cut()
    chunk = reader.chunk
    if whole_file:
        chunk.errors.extend(reader.summary.finish())
    chunk.errors.sort(key=lambda e: e.line or 0)
    chunk.frames[RAW_CONNTRACK_ENTRIES.name] = RAW_CONNTRACK_ENTRIES.frame(reader.rows)
    return chunk


class _XmlReader:
    """Collects <flow> elements, which may be wrapped over lines or share a line."""

    def __init__(self) -> None:
        self.chunk = ParsedChunk()
        self.rows: list[dict[str, Any]] = []
        self.summary = SummaryCheck()
        self.pending: list[tuple[int, str]] = []  # (line, text) of a <flow> not closed yet
        self.raw_lines: dict[int, str] = {}

    def line(self, no: int, rest: str) -> None:
        while rest:
            if rest.startswith("<flow"):
                if self.pending:
                    self.cut()
                self.pending = [(no, rest)]
            elif self.pending and not _STRUCTURAL.match(rest) and not SUMMARY.search(rest):
                self.pending.append((no, rest))
            elif self.pending:
                self.cut()
                continue
            elif (structural := _STRUCTURAL.match(rest)) is not None:
                rest = rest[structural.end() :].strip()
                continue
            elif self.summary.line(rest, self.raw_lines[no], no):
                return
            else:
                self.chunk.records_read += 1
                reason = f"not a conntrack XML flow: {rest[:60]!r}"
                self.chunk.errors.append(RecordError(reason, self.raw_lines[no], no))
                return
            rest = self.close()

    def close(self) -> str:
        """Finish the pending flow if its </flow> has been read; return the text after it."""
        parts = [part for _, part in self.pending]
        tight = "".join(parts)
        if _FLOW_END not in tight:
            return ""
        end = tight.index(_FLOW_END) + len(_FLOW_END)
        after = tight[end:].strip()
        tail = _TAIL.match(after)
        tail_text = "" if tail is None else tail[0]
        self.flow(_trim(parts, end), tail_text)
        return after[len(tail_text) :].strip()

    def _raw(self) -> str:
        lines = dict.fromkeys(no for no, _ in self.pending)
        return " ".join(self.raw_lines[no] for no in lines)  # the lines as read

    def flow(self, parts: list[str], tail: str) -> None:
        first, raw = self.pending[0][0], self._raw()
        self.pending = []
        self.chunk.records_read += 1
        self.summary.entry(first)
        problems: list[BadRecordError] = []
        for body in _bodies(parts):
            try:
                row = parse_flow(f"{body} {tail}".strip())
            except BadRecordError as problem:
                problems.append(problem)
                continue
            row["source_line"], row["raw"], row["format"] = first, raw, "xml"
            self.rows.append(row)
            self.chunk.records_parsed += 1
            return
        self.chunk.errors.append(RecordError(str(problems[0]), raw, first))

    def cut(self) -> None:
        first, raw = self.pending[0][0], self._raw()
        self.pending = []
        self.chunk.records_read += 1
        self.summary.entry(first)
        reason = "<flow> is not closed by </flow> (cut short?)"
        self.chunk.errors.append(RecordError(reason, raw, first))


def _trim(parts: list[str], length: int) -> list[str]:
    """The leading parts whose concatenation is `length` characters long."""
    kept: list[str] = []
    for part in parts:
        if length <= 0:
            break
        kept.append(part[:length])
        length -= len(part)
    return kept


def _bodies(parts: list[str]) -> list[str]:
    """A <flow> wrapped over lines: joined tight (terminal wrap) or with a space (mail wrap)."""
    return ["".join(parts), " ".join(parts)] if len(parts) > 1 else parts


def parse_flow(text: str) -> dict[str, Any]:
    """One ``<flow>...</flow>`` (plus an optional [USERSPACE] tail) -> a row."""
    body, _, tail = text.partition(_FLOW_END)
    try:
        flow = ET.fromstring(body + _FLOW_END)
    except ET.ParseError as error:
        raise BadRecordError(f"XML flow does not parse: {error}") from None
    row: dict[str, Any] = {"flags": [], "event": _TYPES.get(flow.get("type", ""))}
    if flow.get("type") is not None and row["event"] is None:
        raise BadRecordError(f"unknown flow type {flow.get('type')!r}")
    extra: list[str] = []
    directions = {meta.get("direction"): meta for meta in flow.findall("meta")}
    for prefix, name in (("orig", "original"), ("reply", "reply")):
        if name not in directions:
            raise BadRecordError(f'no <meta direction="{name}"> (record cut short?)')
        _tuple(directions[name], prefix, row)
    if "independent" in directions:
        _independent(directions["independent"], row, extra)
    when = flow.find("when")
    if when is not None:
        row["event_ts"] = _when(when)
    tail_match = _TAIL.fullmatch(tail.strip())
    if tail.strip() and tail_match is None:
        raise BadRecordError(f"unexpected text after </flow>: {tail.strip()[:40]!r}")
    if tail_match is not None:
        row["userspace_portid"] = parse_int(tail_match[1], "portid=", 0, U32)
        row["userspace_progname"] = tail_match[2]
    row["extra"] = " ".join(extra) or None
    return row


def _tuple(meta: ET.Element, prefix: str, row: dict[str, Any]) -> None:
    layer3, layer4 = meta.find("layer3"), meta.find("layer4")
    if layer3 is None or layer4 is None:
        raise BadRecordError(f"{prefix} tuple has no <layer3>/<layer4>")
    for key in ("src", "dst"):
        value = layer3.findtext(key)
        if value is None:
            raise BadRecordError(f"{prefix} tuple has no <{key}>")
        row[f"{prefix}_{key}"] = parse_address(value.strip(), f"{prefix} <{key}>")
    row["l3proto"] = layer3.get("protoname")
    num = parse_int(layer4.get("protonum", ""), "layer4 protonum", 0, 255)
    name = layer4.get("protoname", "")
    if name in L4_NUMBERS and L4_NUMBERS[name] != num:
        raise BadRecordError(f"protocol name {name!r} does not match number {num}")
    if prefix == "orig":
        row["proto"], row["proto_num"], row["_printed_proto"] = proto_label(num), num, name
    elif row["proto_num"] != num:
        raise BadRecordError("original and reply tuples name different protocols")
    if name in PORT_PROTOS:
        for key in ("sport", "dport"):
            value = layer4.findtext(key)
            if value is None:
                raise BadRecordError(f"{prefix} tuple has no <{key}> (record cut short?)")
            row[f"{prefix}_{key}"] = parse_int(value.strip(), f"{prefix} <{key}>", 0, U16)
    elif name == "gre":
        keys = [layer4.findtext(k) for k in ("srckey", "dstkey")]
        if None in keys:
            raise BadRecordError(f"{prefix} tuple has no <srckey>/<dstkey>")
        row[f"{prefix}_gre_key"] = "/".join(k.strip() for k in keys if k is not None)
    zone = meta.findtext("zone")
    if zone is not None:
        row[f"{prefix}_zone"] = parse_int(zone.strip(), f"{prefix} <zone>", 0, U16)
    counters = meta.find("counters")
    if counters is not None:
        for key in ("packets", "bytes"):
            value = counters.findtext(key)
            if value is not None:
                row[f"{prefix}_{key}"] = parse_int(value.strip(), f"{prefix} <{key}>")


def _independent(meta: ET.Element, row: dict[str, Any], extra: list[str]) -> None:
    unreplied = assured = False
    for child in meta:
        text = (child.text or "").strip()
        if child.tag in _INDEPENDENT_INT:
            column, high = _INDEPENDENT_INT[child.tag]
            row[column] = parse_int(text, f"<{child.tag}>", 0, high)
        elif child.tag == "state":
            row["state"] = _state(text, row["_printed_proto"])
        elif child.tag in ("secctx", "helper"):
            row[child.tag] = text
        elif child.tag == "assured":
            assured = True
        elif child.tag == "unreplied":
            unreplied = True
        elif child.tag == "timestamp":
            for stamp in ("start", "stop"):
                value = child.findtext(stamp)
                if value is not None:
                    row[f"{stamp}_ts"] = epoch_ns(value.strip(), f"<{stamp}>")
        elif child.tag == "labels":
            row["labels"] = ",".join((label.text or "").strip() for label in child)
        else:
            extra.append(f"{child.tag}={text}")
    # the order the text formats print them: [UNREPLIED] between the tuples, [ASSURED] after
    row["flags"] = [f for f, on in (("UNREPLIED", unreplied), ("ASSURED", assured)) if on]


def _state(name: str, proto: str) -> str:
    names = _OTHER_STATES.get(proto)
    if names is not None and name in _TCP_STATES and _TCP_STATES.index(name) < len(names):
        return names[_TCP_STATES.index(name)]
    return name


def _when(when: ET.Element) -> datetime:
    """<when>: the capture host's local time of the event, stored as if it were UTC."""
    parts = {}
    for key, high in (("year", 9999), ("month", 12), ("day", 31), ("hour", 23), ("min", 59)):
        parts[key] = parse_int((when.findtext(key) or "").strip(), f"<when><{key}>", 0, high)
    second = parse_int((when.findtext("sec") or "").strip(), "<when><sec>", 0, 59)
    try:
        return datetime(
            parts["year"],
            parts["month"],
            parts["day"],
            parts["hour"],
            parts["min"],
            second,
            tzinfo=UTC,
        )
    except ValueError as error:
        raise BadRecordError(f"<when> is not a date: {error}") from None
