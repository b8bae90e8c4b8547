"""Bookkeeping shared by the ipvsadm parsers: rows per table, located errors, record counts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..schemas import (
    RAW_IPVS_BACKENDS,
    RAW_IPVS_CONNECTIONS,
    RAW_IPVS_SERVICES,
    RAW_IPVS_STATS,
    TableSchema,
)
from .ipvsadm_fields import FieldError, squeeze
from .records import Line, ParsedChunk, RecordError

Row = dict[str, Any]

TABLES: dict[str, TableSchema] = {
    t.name: t for t in (RAW_IPVS_SERVICES, RAW_IPVS_BACKENDS, RAW_IPVS_CONNECTIONS, RAW_IPVS_STATS)
}

ELISION_REASON = "the author's '...' elision (lines were left out here), not tool output"


def is_elision(text: str) -> bool:
    """'...', '....', '…' or '[...]': a writer's mark that lines were left out."""
    core = text.strip("[]() ")
    return bool(core) and set(core) <= {".", "\u2026"}


@dataclass
class Collector:
    """Rows for the tables a kind produces, plus errors and the read/parsed counts."""

    tables: tuple[str, ...]
    rows: dict[str, list[Row]] = field(default_factory=dict)
    errors: list[RecordError] = field(default_factory=list)
    read: int = 0
    parsed: int = 0

    def add(self, table: str, row: Row) -> None:
        self.rows.setdefault(table, []).append(row)

    def record(self, line: Line, handle: Callable[[str, Line], None]) -> bool:
        """Count one record and parse it with `handle`; a FieldError rejects it. True if parsed."""
        self.read += 1
        try:
            handle(squeeze(line.text), line)
        except FieldError as exc:
            self.errors.append(RecordError(str(exc), line.raw, line=line.no))
            return False
        self.parsed += 1
        return True

    def warn(self, line: Line, reason: str) -> None:
        """A file-level remark that rejects nothing (RecordError with is_rejection=False)."""
        self.errors.append(RecordError(reason, line.raw, line=line.no, is_rejection=False))

    def chunk(self) -> ParsedChunk:
        frames = {name: TABLES[name].frame(self.rows.get(name, [])) for name in self.tables}
        return ParsedChunk(
            frames=frames, errors=self.errors, records_read=self.read, records_parsed=self.parsed
        )
