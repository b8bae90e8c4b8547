"""Serialise parse results deterministically for golden/expected files."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.ingest.records import ParsedChunk


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str, sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def frame_to_csv(frame: pl.DataFrame) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(frame.columns)
    for row in frame.iter_rows():
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()


def chunk_meta(kind: str | None, chunk: ParsedChunk) -> str:
    meta = {
        "kind": kind,
        "records_read": chunk.records_read,
        "records_parsed": chunk.records_parsed,
        "records_rejected": chunk.records_rejected,
        "errors": [
            {"line": e.line, "offset": e.offset, "reason": e.reason, "is_rejection": e.is_rejection}
            for e in chunk.errors
        ],
    }
    return json.dumps(meta, indent=2, sort_keys=True) + "\n"


def check_or_update(path: Path, actual: str, update: bool) -> None:
    if update or not path.exists():
        if not update:
            raise AssertionError(f"{path} missing; run pytest --update-golden and review it")
        path.write_text(actual)
        return
    expected = path.read_text()
    assert actual == expected, f"{path} differs from the current output"
