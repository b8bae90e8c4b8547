"""conntrack ingestor: conntrack -L (default, -o extended/id/ktimestamp/xml),
/proc/net/nf_conntrack, conntrack -E events (with or without -o timestamp), conntrack -S and
/proc/net/stat/nf_conntrack.

Kinds name what a file mostly holds; the text parser reads entries, events and counters alike,
so a file that mixes them (conntrack -L; conntrack -S > same file) loses nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from .blocks import BlockStart, TextBlock
from .conntrack_common import SUMMARY
from .conntrack_stats import ProcStats, is_stats_line
from .conntrack_text import (
    FileState,
    is_continuation,
    is_event_start,
    is_record_start,
    parse_text,
    unquote,
)
from .conntrack_xml import is_xml_line, parse_xml
from .records import Detection, ParsedChunk, clean_line

TABLE = "conntrack"
EVENTS = "conntrack-events"
XML = "conntrack-xml"
STATS = "conntrack-stats"
KINDS: tuple[str, ...] = (TABLE, EVENTS, XML, STATS)


def detect(text: str) -> Detection | None:
    """Score = lines that look like conntrack output of each kind; the best kind wins."""
    scores: Counter[str] = Counter()
    current: str | None = None  # kind of the record a continuation line would extend
    proc_stats = ProcStats()
    for raw in text.splitlines():
        line = unquote(clean_line(raw))
        if not line:
            continue
        kind: str | None = None
        if is_xml_line(line):
            kind = XML
        elif is_record_start(line):
            kind = EVENTS if is_event_start(line) else TABLE
        elif is_stats_line(line) or proc_stats.header(line) or proc_stats.is_row(line):
            kind = STATS
        elif current is not None and is_continuation(line):
            kind = current
        elif SUMMARY.search(line):
            kind = EVENTS if "flow events" in " ".join(line.split()) else TABLE
        current = kind if kind in (TABLE, EVENTS) else None
        if kind is not None:
            scores[kind] += 1
    if not scores:
        return None
    kind, score = max(scores.items(), key=lambda item: (item[1], -KINDS.index(item[0])))
    return Detection(kind, score)


def parse(text: str, kind: str) -> ParsedChunk:
    if kind == XML:
        return parse_xml(text)
    if kind in KINDS:
        return parse_text(text)
    raise ValueError(f"conntrack ingestor cannot parse kind {kind!r}")


def parse_stream(blocks: Iterable[TextBlock], kind: str) -> Iterator[ParsedChunk]:
    """Parse a long file block by block: one summary check runs over the whole file, so a
    `N flow entries have been shown` line is compared with every entry, not one block's."""
    if kind not in KINDS:
        raise ValueError(f"conntrack ingestor cannot parse kind {kind!r}")
    state = FileState()
    for block in blocks:
        if kind == XML:
            yield parse_xml(block.text, block.first_line, state.summary)
        else:
            yield parse_text(block.text, block.first_line, state)
    yield ParsedChunk(errors=state.summary.finish())


def block_start(kind: str) -> BlockStart | None:
    """Where a long file may be cut into blocks: before an entry, an event or a <flow>."""
    if kind == XML:
        return lambda line: clean_line(line).startswith("<flow")
    if kind in (TABLE, EVENTS):
        return lambda line: is_record_start(unquote(clean_line(line)))
    return None
