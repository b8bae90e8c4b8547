"""Properties of the conntrack ingestor: it never raises, every record is counted, and
copy-paste damage to whitespace loses nothing."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.ingest import conntrack
from pipeline.ingest.records import ParsedChunk

FIXTURES = Path(__file__).parents[1] / "fixtures" / "conntrack"
INPUTS = sorted(
    p for p in FIXTURES.glob("*.txt") if ".expected." not in p.name and p.name != "SOURCES.md"
)
TEXTS = {p.name: p.read_text() for p in INPUTS}
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EDITS = st.lists(
    st.tuples(
        st.sampled_from(["delete", "double", "cut", "dup_line", "drop_line", "join"]),
        st.integers(0, 10**6),
    ),
    max_size=8,
)
SPACING = st.lists(
    st.tuples(
        st.sampled_from(["tab", "double", "collapse", "trail", "blank", "crlf", "ctrl_c"]),
        st.integers(0, 10**6),
    ),
    min_size=1,
    max_size=10,
)


def _parse(text: str, kind: str) -> ParsedChunk:
    chunk = conntrack.parse(text, kind)
    chunk.check_counts()
    lines = len(text.splitlines())
    for error in chunk.errors:
        assert error.line is not None and 1 <= error.line <= lines
    for frame in chunk.frames.values():
        assert frame["source_line"].is_between(1, lines).all()
    return chunk


@SETTINGS
@given(text=st.text(max_size=600), kind=st.sampled_from(conntrack.KINDS))
def test_arbitrary_text_never_raises(text: str, kind: str) -> None:
    conntrack.detect(text)
    _parse(text, kind)


@SETTINGS
@given(name=st.sampled_from(sorted(TEXTS)), edits=EDITS, kind=st.sampled_from(conntrack.KINDS))
def test_mutated_fixtures_never_raise(name: str, edits: list[tuple[str, int]], kind: str) -> None:
    lines = TEXTS[name].splitlines()
    for op, at in edits:
        if not lines:
            break
        i = at % len(lines)
        line = lines[i]
        j = at % (len(line) + 1)
        if op == "delete":
            lines[i] = line[:j] + line[j + 1 :]
        elif op == "double":
            lines[i] = line[:j] + line[j : j + 1] + line[j:]
        elif op == "cut":
            lines[i] = line[:j]
        elif op == "dup_line":
            lines.insert(i, line)
        elif op == "drop_line":
            del lines[i]
        elif op == "join" and i + 1 < len(lines):
            lines[i : i + 2] = [line + lines[i + 1]]
    text = "\n".join(lines)
    detection = conntrack.detect(text)
    _parse(text, kind)
    if detection is not None:
        _parse(text, detection.kind)


def _respace(text: str, edits: list[tuple[str, int]]) -> str:
    lines = text.splitlines()
    for op, at in edits:
        i = at % len(lines)
        line = lines[i]
        spaces = [k for k, c in enumerate(line) if c == " "]
        k = spaces[at % len(spaces)] if spaces else None
        if op == "tab" and k is not None:
            lines[i] = line[:k] + "\t" + line[k + 1 :]
        elif op == "double" and k is not None:
            lines[i] = line[:k] + "  " + line[k + 1 :]
        elif op == "collapse":
            lines[i] = " ".join(line.split(" ")).replace("  ", " ")
        elif op == "trail":
            lines[i] = line + " " * (1 + at % 3)
        elif op == "blank":
            lines.insert(i, "")
        elif op == "crlf":
            lines[i] = line + "\r"
        elif op == "ctrl_c":
            lines.insert(i + 1, "^C")
    return "\n".join(lines) + "\n"


def _content(chunk: ParsedChunk) -> dict[str, pl.DataFrame]:
    return {
        name: frame.drop("source_line", *(["raw"] if "raw" in frame.columns else []))
        for name, frame in chunk.frames.items()
    }


CLEAN = sorted(
    name
    for name, text in TEXTS.items()
    if (d := conntrack.detect(text)) is not None and conntrack.parse(text, d.kind).errors == []
)


@SETTINGS
@given(name=st.sampled_from(CLEAN), edits=SPACING)
def test_whitespace_damage_loses_nothing(name: str, edits: list[tuple[str, int]]) -> None:
    text = TEXTS[name]
    detection = conntrack.detect(text)
    assert detection is not None
    expected = _content(_parse(text, detection.kind))
    damaged = _respace(text, edits)
    again = conntrack.detect(damaged)
    assert again is not None and again.kind == detection.kind
    chunk = _parse(damaged, again.kind)
    assert chunk.errors == []
    for table, frame in _content(chunk).items():
        assert frame.equals(expected[table]), table
