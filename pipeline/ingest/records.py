"""What every ingestor returns: frames of raw rows, located record errors and the record counts.

Contract for ingestor modules (pipeline/ingest/<source>.py):

- ``detect(text: str) -> Detection | None``: recognise the file by content (never by name).
  ``Detection.score`` is the number of lines that look like this kind; bundle.py picks the highest.
- ``parse(text: str, kind: str) -> ParsedChunk``: never raises on bad content. Every line is either
  blank, structural (a header, a summary line, a comment), part of a parsed record, or part of a
  rejected record; ``records_read == records_parsed + records_rejected`` always holds.
- Frames hold the columns of the table's schema in pipeline/schemas.py, including ``source_line``
  (1-based line where the record starts). The loader adds bundle_id, node and source_file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import polars as pl


@dataclass(frozen=True)
class Detection:
    """A guess that a file is of `kind`, backed by `score` matching lines."""

    kind: str
    score: int


MAX_RAW_CHARS = 4096
"""A rejected record keeps at most this much of its raw text, then says how long it was."""
_TRUNCATED = re.compile(r"… \[truncated, \d+ chars\]")


@dataclass(frozen=True)
class RecordError:
    """One record that could not be used (or, with is_rejection=False, a warning about the file).

    `raw` longer than MAX_RAW_CHARS is cut there and ends with ``… [truncated, N chars]``, N
    being its full length: a 200 MB line of garbage is stored as 4 KB. A cut `raw` is kept as
    it is (``dataclasses.replace`` of a cut error does not cut it again).
    """

    reason: str
    raw: str
    line: int | None = None
    offset: int | None = None
    is_rejection: bool = True

    def __post_init__(self) -> None:
        if len(self.raw) > MAX_RAW_CHARS and not _TRUNCATED.fullmatch(self.raw, MAX_RAW_CHARS):
            cut = f"{self.raw[:MAX_RAW_CHARS]}… [truncated, {len(self.raw)} chars]"
            object.__setattr__(self, "raw", cut)  # the dataclass is frozen


@dataclass
class ParsedChunk:
    """Rows for one or more raw tables from (part of) one input file."""

    frames: dict[str, pl.DataFrame] = field(default_factory=dict)
    errors: list[RecordError] = field(default_factory=list)
    records_read: int = 0
    records_parsed: int = 0

    @property
    def records_rejected(self) -> int:
        return sum(1 for e in self.errors if e.is_rejection)

    def check_counts(self) -> None:
        """Raise AssertionError if the bookkeeping invariant read = parsed + rejected is broken."""
        if self.records_read != self.records_parsed + self.records_rejected:
            raise AssertionError(
                f"records_read={self.records_read} != parsed={self.records_parsed} "
                f"+ rejected={self.records_rejected}"
            )


@dataclass(frozen=True)
class Line:
    """One input line after copy-paste damage is undone: `text` is stripped, `no` is 1-based."""

    no: int
    text: str
    raw: str


_CTRL_C = re.compile(r"\^C")


def clean_line(raw: str) -> str:
    """Undo common copy-paste damage: tabs, `^C` from an interrupted command, trailing blanks."""
    text = _CTRL_C.sub("", raw).replace("\t", " ").replace("\r", "")
    return text.strip()


def iter_lines(text: str, first_line: int = 1) -> Iterator[Line]:
    """Yield every line of `text` with its number (the first is `first_line`); blanks included."""
    for no, raw in enumerate(text.splitlines(), start=first_line):
        yield Line(no=no, text=clean_line(raw), raw=raw)
