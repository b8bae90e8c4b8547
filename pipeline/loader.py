"""Load input files into the raw tables, idempotent by content hash.

A text file is loaded in one transaction; a capture streams in, committed every COMMIT_ROWS rows,
listed as `loading` (without a hash, so it is redone) until its last batch is in.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from pipeline.bundle import SNIFF_BYTES, InputFile, decode_text, sniff
from pipeline.db import MEMORY_LIMIT_VARIABLE
from pipeline.ingest.records import ParsedChunk, RecordError
from pipeline.prefetch import prefetch
from pipeline.schemas import (
    ALL_TABLES,
    BY_NAME,
    RAW_INGEST_ERRORS,
    RAW_INGEST_FILES,
    TableSchema,
)

HASH_BLOCK = 8 * 1024 * 1024
COMMIT_ROWS = 262_144
"""Rows of a capture inserted per commit: two DuckDB row groups, about 60 MB of frames."""
LOAD_MEMORY_LIMIT_BYTES = 256 * 2**20
"""DuckDB's memory limit while a capture streams in (a lower limit in force is kept)."""
_SIZE = re.compile(r"^\s*([0-9.]+)\s*([KMGTP]?i?B|bytes)\s*$", re.IGNORECASE)


@dataclass
class FileOutcome:
    """What happened to one file in this run (printed by the CLI, stored in raw_ingest_files)."""

    file: InputFile
    kind: str | None
    status: str  # loaded | unchanged | skipped | failed
    reason: str | None = None
    records_read: int = 0
    records_parsed: int = 0
    records_rejected: int = 0
    warnings: int = 0
    first_errors: list[RecordError] = field(default_factory=list)
    engine: str | None = None  # pcap decoder (fast|pyshark); None for text files


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _stored_hash(con: duckdb.DuckDBPyConnection, f: InputFile) -> tuple[str, str | None] | None:
    """Content hash and pcap engine of the stored load of a file."""
    row = con.execute(
        "select content_sha256, engine from raw_ingest_files "
        "where bundle_id = ? and node = ? and source_file = ?",
        [f.bundle_id, f.node, f.source_file],
    ).fetchone()
    return None if row is None else (str(row[0]), row[1])


def _delete_file_rows(con: duckdb.DuckDBPyConnection, f: InputFile) -> None:
    for schema in ALL_TABLES:
        con.execute(
            f"delete from {schema.name} where bundle_id = ? and node = ? and source_file = ?",
            [f.bundle_id, f.node, f.source_file],
        )


def _insert(
    con: duckdb.DuckDBPyConnection, schema: TableSchema, frame: pl.DataFrame, f: InputFile
) -> None:
    if frame.height == 0:
        return
    full = frame.with_columns(
        pl.lit(f.bundle_id, pl.Utf8).alias("bundle_id"),
        pl.lit(f.node, pl.Utf8).alias("node"),
        pl.lit(f.source_file, pl.Utf8).alias("source_file"),
    ).select(list(schema.polars_schema()))
    con.register("_natlens_chunk", full.to_arrow())
    try:
        con.execute(f"insert into {schema.name} by name select * from _natlens_chunk")
    finally:
        con.unregister("_natlens_chunk")


def _error_frame(errors: list[RecordError]) -> pl.DataFrame:
    return RAW_INGEST_ERRORS.frame(
        [
            {
                "source_line": e.line,
                "byte_offset": e.offset,
                "reason": e.reason,
                "raw": e.raw,
                "is_rejection": e.is_rejection,
            }
            for e in errors
        ]
    )


def _chunks(
    f: InputFile, kind: str, text_ingestor: object | None, engine: str | None = "fast"
) -> Iterator[ParsedChunk]:
    if text_ingestor is not None:
        text = decode_text(f.path.read_bytes())
        yield text_ingestor.parse(text, kind)  # type: ignore[attr-defined]
        return
    pcap = importlib.import_module("pipeline.ingest.pcap")
    yield from pcap.read_capture(f.path, engine=engine or "fast")


def _setting_bytes(text: str) -> float | None:
    """DuckDB's printed size ('18.8 GiB', '244.1 MiB', '0 bytes') in bytes; None if unknown."""
    found = _SIZE.match(text)
    if found is None:
        return None
    number, unit = float(found[1]), found[2].upper()
    if unit == "BYTES":
        return number
    power = "BKMGTP".index(unit[0]) if unit != "B" else 0
    return number * (1024 if "I" in unit else 1000) ** power


@contextmanager
def _capped_memory(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Cap DuckDB's memory at LOAD_MEMORY_LIMIT_BYTES for a streamed load, then restore it.

    why: an append needs little memory, but DuckDB keeps the blocks it wrote cached up to its
    limit (80% of RAM by default): a 1 GB pcap then took 940 MiB, and 570 MiB under this cap.
    """
    [(before, given)] = con.execute(
        f"select current_setting('memory_limit'), getvariable('{MEMORY_LIMIT_VARIABLE}')"
    ).fetchall()
    limit = _setting_bytes(str(before))
    if limit is None or limit <= LOAD_MEMORY_LIMIT_BYTES:
        yield
        return
    con.execute(f"SET memory_limit = '{LOAD_MEMORY_LIMIT_BYTES}B'")
    try:
        yield
    finally:
        # why: the printed limit is rounded ('1.8 GiB'); the limit as given restores it exactly
        if given is None:
            con.execute("RESET memory_limit")
        else:
            con.execute("SET memory_limit = $limit", {"limit": str(given)})


def load_file(
    con: duckdb.DuckDBPyConnection, f: InputFile, keep_errors: int = 20, engine: str = "fast"
) -> FileOutcome:
    """Load one file; unchanged content (read by the same pcap engine) is not loaded again."""
    try:
        sha = file_sha256(f.path)
        with f.path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
        size = f.path.stat().st_size
    except OSError as exc:
        return FileOutcome(f, None, "failed", f"cannot read file: {exc.strerror or exc}")
    stored = _stored_hash(con, f)
    if stored is not None and stored[0] == sha and stored[1] in (None, engine):
        return FileOutcome(f, None, "unchanged", "same content already loaded")
    sniffed = sniff(f.path, head)
    if sniffed.ingestor is not None and size > len(head):
        sniffed = sniff(f.path, f.path.read_bytes())  # score text kinds on the whole file
    if sniffed.kind is None:
        outcome = FileOutcome(f, None, "skipped", sniffed.reason)
    else:
        outcome = FileOutcome(f, sniffed.kind, "loaded")
        outcome.engine = engine if sniffed.ingestor is None else None
    streamed = outcome.kind is not None and sniffed.ingestor is None
    con.execute("begin transaction")
    try:
        _delete_file_rows(con, f)
        if streamed:
            # why: a capture is committed every COMMIT_ROWS rows (DuckDB holds a transaction's
            # appends in memory: 3 GiB for a 1 GB pcap); until its final row replaces this one,
            # the file is listed as `loading` without a hash, so a load cut short is redone
            loading = FileOutcome(f, outcome.kind, "loading", "load in progress or cut short")
            _insert(con, RAW_INGEST_FILES, _file_row(loading, None, size), f)
            con.execute("commit")
            con.execute("begin transaction")
        if outcome.kind is not None and streamed:
            with _capped_memory(con):
                _load_chunks(con, f, outcome, sniffed.ingestor, keep_errors, streamed)
        elif outcome.kind is not None:
            _load_chunks(con, f, outcome, sniffed.ingestor, keep_errors, streamed)
        _delete_file_row(con, f)
        _insert(con, RAW_INGEST_FILES, _file_row(outcome, sha, size), f)
        con.execute("commit")
    except Exception as exc:  # a parser bug must not take the other files down with it
        con.execute("rollback")
        outcome = FileOutcome(f, sniffed.kind, "failed", f"internal error: {exc!r}")
        con.execute("begin transaction")
        _delete_file_rows(con, f)
        _insert(con, RAW_INGEST_FILES, _file_row(outcome, sha, size), f)
        con.execute("commit")
    return outcome


def _load_chunks(
    con: duckdb.DuckDBPyConnection,
    f: InputFile,
    outcome: FileOutcome,
    ingestor: object | None,
    keep_errors: int,
    streamed: bool = False,
) -> None:
    """Insert the file's chunks; a streamed file is decoded ahead in a thread and committed in
    batches of COMMIT_ROWS rows."""
    assert outcome.kind is not None
    chunks = _chunks(f, outcome.kind, ingestor, outcome.engine)
    pending: dict[str, list[pl.DataFrame]] = {}
    pending_rows = 0
    for chunk in prefetch(chunks) if streamed else chunks:
        for table_name, frame in chunk.frames.items():
            pending.setdefault(table_name, []).append(frame)
            pending_rows += frame.height
        _insert(con, RAW_INGEST_ERRORS, _error_frame(chunk.errors), f)
        outcome.records_read += chunk.records_read
        outcome.records_parsed += chunk.records_parsed
        outcome.records_rejected += chunk.records_rejected
        outcome.warnings += sum(1 for e in chunk.errors if not e.is_rejection)
        room = keep_errors - len(outcome.first_errors)
        outcome.first_errors.extend(chunk.errors[: max(room, 0)])
        if streamed and pending_rows >= COMMIT_ROWS:
            _flush(con, pending, f)
            pending_rows = 0
            con.execute("commit")
            con.execute("begin transaction")
    _flush(con, pending, f)


def _flush(
    con: duckdb.DuckDBPyConnection, pending: dict[str, list[pl.DataFrame]], f: InputFile
) -> None:
    """Insert the frames collected per table (one insert per table) and forget them."""
    for table_name, frames in pending.items():
        _insert(
            con, BY_NAME[table_name], pl.concat(frames, how="vertical_relaxed", rechunk=True), f
        )
    pending.clear()


def _delete_file_row(con: duckdb.DuckDBPyConnection, f: InputFile) -> None:
    con.execute(
        "delete from raw_ingest_files where bundle_id = ? and node = ? and source_file = ?",
        [f.bundle_id, f.node, f.source_file],
    )


def _file_row(outcome: FileOutcome, sha: str | None, size: int) -> pl.DataFrame:
    return RAW_INGEST_FILES.frame(
        [
            {
                "kind": outcome.kind,
                "content_sha256": sha,
                "size_bytes": size,
                "records_read": outcome.records_read,
                "records_parsed": outcome.records_parsed,
                "records_rejected": outcome.records_rejected,
                "warnings": outcome.warnings,
                "status": outcome.status,
                "reason": outcome.reason,
                "engine": outcome.engine,
            }
        ]
    )


def load_files(con: duckdb.DuckDBPyConnection, files: Iterable[InputFile]) -> list[FileOutcome]:
    return [load_file(con, f) for f in files]
