"""Text conntrack output (-L in any text -o, /proc/net/nf_conntrack, -E, -S) -> a ParsedChunk.

Lines are grouped into records first. A record starts with an event timestamp, an event tag,
``ipv4 2``-style l3 protocol or an l4 protocol name and number. Lines hard-wrapped by mail clients
(trailing spaces, ``>`` quote prefixes, trailing `` \\`` continuations) are joined back when the
next line can only be a continuation: it starts with a ``key=`` token or a ``[FLAG]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..schemas import RAW_CONNTRACK_ENTRIES, RAW_CONNTRACK_STATS
from .conntrack_common import L3_NUMBERS, L4_NUMBERS, BadRecordError, SummaryCheck
from .conntrack_fields import parse_record
from .conntrack_stats import ProcStats, is_stats_line, parse_stats_line
from .records import Line, ParsedChunk, RecordError, iter_lines

_PROTO_NAMES = "|".join(sorted({*L4_NUMBERS, *L3_NUMBERS, "unknown"}))
_START = re.compile(
    rf"(?:\[[0-9]+\.[0-9]*\s*\]|\[(?:NEW|UPDATE|DESTROY)\]|(?:{_PROTO_NAMES})\s+[0-9]+(?:\s|$))"
)
_CONTINUATION = re.compile(r"(?:[a-z][a-z0-9_-]*=|\[[A-Z_]+\]|\[(?:start|stop)=)")
_QUOTE = re.compile(r"^(?:>\s*)+")
_BACKSLASH = re.compile(r"\s*\\$")


def unquote(text: str) -> str:
    """Drop mail quote prefixes (``>> ``) and a trailing continuation backslash."""
    return _BACKSLASH.sub("", _QUOTE.sub("", text))


def is_record_start(text: str) -> bool:
    return _START.match(text) is not None


def is_event_start(text: str) -> bool:
    return text.startswith("[") and not text.startswith("[start=")


def is_continuation(text: str) -> bool:
    return _CONTINUATION.match(text) is not None


@dataclass
class _Record:
    lines: list[Line] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)  # the lines' text, unquoted

    @property
    def raw(self) -> str:
        return " ".join(line.raw.strip() for line in self.lines)


def group_lines(lines: Iterable[Line]) -> Iterable[Line | _Record]:
    """Yield records (joined wrapped lines) and the other non-blank lines, in file order."""
    current: _Record | None = None
    for line in lines:
        text = unquote(line.text)
        if not text:
            continue  # blank lines do not end a wrapped record
        start = is_record_start(text)
        if current is not None and not start and is_continuation(text):
            if not is_stats_line(text):
                current.lines.append(line)
                current.parts.append(text)
                continue
        if current is not None:
            yield current
            current = None
        if start:
            current = _Record([line], [text])
        else:
            yield line
    if current is not None:
        yield current


@dataclass
class FileState:
    """What parsing one block of a long file learns for the blocks after it."""

    summary: SummaryCheck = field(default_factory=SummaryCheck)
    proc_file: bool = False
    """A record showed the /proc/net/nf_conntrack layout: the file is that, not -o extended."""


def parse_text(text: str, first_line: int = 1, state: FileState | None = None) -> ParsedChunk:
    """Parse conntrack text. Given a `state` (one block of a longer file), the summary check
    is left to the caller, who finishes it after the last block; lines start at `first_line`."""
    chunk = ParsedChunk()
    entries: list[dict[str, Any]] = []
    stats: list[dict[str, Any]] = []
    whole_file = state is None
    state = FileState() if state is None else state
    summary = state.summary
    proc_stats = ProcStats()
    proc_file = state.proc_file
    for item in group_lines(iter_lines(text, first_line)):
        if isinstance(item, _Record):
            chunk.records_read += 1
            summary.entry(item.lines[0].no)
            try:
                row, proc_hint = parse_record(" ".join(item.parts))
            except BadRecordError as problem:
                chunk.errors.append(RecordError(str(problem), item.raw, item.lines[0].no))
                continue
            proc_file |= proc_hint
            row["source_line"], row["raw"] = item.lines[0].no, item.raw
            entries.append(row)
            chunk.records_parsed += 1
            continue
        line_text = unquote(item.text)
        if summary.line(line_text, item.raw, item.no) or proc_stats.header(line_text):
            continue  # structural
        chunk.records_read += 1
        try:
            if is_stats_line(line_text):
                stats.extend(_stamp(parse_stats_line(line_text), item.no))
            elif proc_stats.is_row(line_text):
                stats.extend(_stamp(proc_stats.parse_row(line_text), item.no))
            else:
                raise BadRecordError(_not_a_record(line_text))
        except BadRecordError as problem:
            chunk.errors.append(RecordError(str(problem), item.raw.strip(), item.no))
            continue
        chunk.records_parsed += 1
    state.proc_file = proc_file
    for row in entries:
        row["format"] = _format(row, proc_file)
    if whole_file:
        chunk.errors.extend(summary.finish())
    chunk.errors.sort(key=lambda e: e.line or 0)
    chunk.frames[RAW_CONNTRACK_ENTRIES.name] = RAW_CONNTRACK_ENTRIES.frame(entries)
    chunk.frames[RAW_CONNTRACK_STATS.name] = RAW_CONNTRACK_STATS.frame(stats)
    return chunk


def _stamp(rows: list[dict[str, Any]], line: int) -> list[dict[str, Any]]:
    for row in rows:
        row["source_line"] = line
    return rows


def _format(row: dict[str, Any], proc_file: bool) -> str:
    if row.get("event") is not None or row.get("event_ts") is not None:
        return "event"
    if row.get("_l3_printed"):
        return "proc" if proc_file else "extended"
    return "default"


def _not_a_record(text: str) -> str:
    if is_continuation(text):
        return "continuation of a conntrack record without its first line"
    return f"not a conntrack record: {text[:60]!r}"
