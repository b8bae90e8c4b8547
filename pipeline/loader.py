"""Load input files into the database, idempotent by content and incremental.

A file's stored state is `loaded` (with its content hash and counts), or not loaded: `failed`
(with the first cause) or `skipped` (not a format natlens reads). Only a loaded file is
`unchanged` on the next run; every other file is tried again.

A text file is parsed here and loaded in one transaction. A capture goes through the capture
stage (pipeline/capture/stage.py: decode once, Parquet files and summaries, in this process, a
process pool or on Ray); its result is then recorded in one transaction: until that commit the
database does not name its files, so a run killed at any point leaves the previous state, and
the next run redoes exactly the captures that were not recorded.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from .bundle import SNIFF_BYTES, InputFile, Sniffed, sniff, sniff_whole
from .capture import store
from .capture.stage import CaptureJob, CaptureResult
from .db import (
    MEMORY_LIMIT_VARIABLE,
    data_dir,
    loaded_capture_ids,
    refresh_parquet_views,
)
from .ingest.blocks import open_input, parse_blocks
from .ingest.records import RecordError
from .schemas import BY_NAME, DB_TABLES, RAW_INGEST_ERRORS, RAW_INGEST_FILES, TableSchema

HASH_BLOCK = 8 * 1024 * 1024
CAPTURE_KINDS = ("pcap", "pcapng")
_SIZE = re.compile(r"^\s*([0-9.]+)\s*([KMGTP]?i?B|bytes)\s*$", re.IGNORECASE)


@dataclass
class FileOutcome:
    """What happened to one file in this run (printed by the CLI, stored in raw_ingest_files)."""

    file: InputFile
    kind: str | None
    status: str  # loaded | unchanged | skipped | failed | deleted
    reason: str | None = None
    records_read: int = 0
    records_parsed: int = 0
    records_rejected: int = 0
    warnings: int = 0
    first_errors: list[RecordError] = field(default_factory=list)
    engine: str | None = None  # pcap decoder (fast|pyshark); None for text files


@dataclass
class PlannedFile:
    """A file looked at, before any load: its hash, kind and, for a capture, the job."""

    file: InputFile
    sha256: str | None
    size: int
    sniffed: Sniffed | None
    outcome: FileOutcome | None = None  # decided already: unchanged, skipped or unreadable
    job: CaptureJob | None = None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open_input(path) as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def describe_error(exc: BaseException) -> str:
    """The first cause of a failure, as one line: `TypeName: message`."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        cause = exc.__cause__ or exc.__context__
        assert cause is not None
        # why: a DuckDB error raised while handling another (an aborted transaction) hides it
        if "transaction is aborted" not in str(exc).lower():
            break
        exc = cause
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _stored(
    con: duckdb.DuckDBPyConnection, f: InputFile
) -> tuple[str | None, str | None, str | None]:
    """Status, content hash and capture id of the stored row of a file (or Nones)."""
    row = con.execute(
        "select status, content_sha256, capture_id from raw_ingest_files "
        "where bundle_id = ? and node = ? and source_file = ?",
        [f.bundle_id, f.node, f.source_file],
    ).fetchone()
    return (None, None, None) if row is None else (row[0], row[1], row[2])


def _delete_file_rows(con: duckdb.DuckDBPyConnection, f: InputFile) -> None:
    for schema in DB_TABLES:
        if schema.name.startswith("raw_"):
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


def _file_row(
    outcome: FileOutcome, sha: str | None, size: int, capture_id: str | None = None
) -> pl.DataFrame:
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
                "capture_id": capture_id,
            }
        ]
    )


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("begin transaction")
    try:
        yield
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


def _replace_file(
    con: duckdb.DuckDBPyConnection,
    f: InputFile,
    outcome: FileOutcome,
    sha: str | None,
    size: int,
    capture_id: str | None = None,
    fill: Callable[[], None] | None = None,
) -> str | None:
    """Replace the stored rows of a file in one transaction; returns the capture id it replaced."""
    with _transaction(con):
        _, _, old_capture = _stored(con, f)
        _delete_file_rows(con, f)
        if fill is not None:
            fill()
        _insert(con, RAW_INGEST_FILES, _file_row(outcome, sha, size, capture_id), f)
    return old_capture if old_capture != capture_id else None


class DatabaseWriteError(duckdb.IOException):
    """The database could not store a file, nor that the file failed: the first cause first."""


def record_failure(
    con: duckdb.DuckDBPyConnection,
    planned: PlannedFile,
    kind: str | None,
    exc: BaseException | str,
    engine: str | None = None,
) -> FileOutcome:
    """Store a file as failed (its rows gone, tried again next run) and return the outcome."""
    reason = exc if isinstance(exc, str) else describe_error(exc)
    outcome = FileOutcome(planned.file, kind, "failed", reason, engine=engine)
    try:
        old = _replace_file(con, planned.file, outcome, planned.sha256, planned.size)
    except duckdb.Error as second:
        # why: when the database itself is what failed (a full disk), DuckDB then refuses
        # every write with "database has been invalidated": the first cause is the news
        raise DatabaseWriteError(
            f"{planned.file.source_file}: {reason}; the database could not record it either "
            f"({describe_error(second)})"
        ) from second
    if old is not None:
        data_dir(con).remove(old)
        refresh_parquet_views(con)
    return outcome


def plan_file(
    con: duckdb.DuckDBPyConnection,
    f: InputFile,
    engine: str = "fast",
    threads: int = 1,
    memory_limit: str | None = None,
) -> PlannedFile:
    """Hash and recognise a file; decide whether it is unchanged; make a capture's job."""
    try:
        sha = file_sha256(f.path)
        with open_input(f.path) as handle:
            head = handle.read(SNIFF_BYTES)
        size = f.path.stat().st_size
    except OSError as exc:
        outcome = FileOutcome(f, None, "failed", f"cannot read file: {exc.strerror or exc}")
        return PlannedFile(f, None, 0, None, outcome)
    sniffed = sniff(f.path, head)
    planned = PlannedFile(f, sha, size, sniffed)
    status, stored_sha, stored_capture = _stored(con, f)
    if sniffed.kind in CAPTURE_KINDS:
        job = CaptureJob(
            path=str(f.path.absolute()),
            bundle_id=f.bundle_id,
            node=f.node,
            source_file=f.source_file,
            content_sha256=sha,
            engine=engine,
            data_root=str(data_dir(con).root),
            threads=threads,
            memory_limit=memory_limit,
        )
        if status == "loaded" and stored_capture == job.capture_id:
            planned.outcome = FileOutcome(f, None, "unchanged", "same content already loaded")
        else:
            planned.job = job
        return planned
    if status == "loaded" and stored_sha == sha and stored_capture is None:
        planned.outcome = FileOutcome(f, None, "unchanged", "same content already loaded")
    return planned


def load_text(
    con: duckdb.DuckDBPyConnection, planned: PlannedFile, keep_errors: int = 20
) -> FileOutcome:
    """Parse a text file block by block (or record why it is skipped), in one transaction.

    Each block's rows are inserted before the next block is read, so memory is bounded by a
    block (pipeline/ingest/blocks.py), not by the file; a failure anywhere rolls the file back.
    """
    f, sniffed = planned.file, planned.sniffed
    assert sniffed is not None
    try:
        if sniffed.ingestor is not None and planned.size > SNIFF_BYTES:
            sniffed = sniff_whole(f.path)  # score text kinds on the whole file
    except Exception as exc:  # an unreadable file, a detector bug: this file fails, not the run
        return record_failure(con, planned, sniffed.kind, exc)
    if sniffed.kind is None or sniffed.ingestor is None:
        outcome = FileOutcome(f, None, "skipped", sniffed.reason)
        _replace_file(con, f, outcome, planned.sha256, planned.size)
        return outcome
    kind, ingestor = sniffed.kind, sniffed.ingestor
    outcome = FileOutcome(f, kind, "loaded")

    def fill() -> None:
        for chunk in parse_blocks(f.path, ingestor, kind):
            _count(
                outcome,
                chunk.records_read,
                chunk.records_parsed,
                chunk.records_rejected,
                chunk.errors,
                keep_errors,
            )
            for table_name, frame in chunk.frames.items():
                _insert(con, BY_NAME[table_name], frame, f)
            _insert(con, RAW_INGEST_ERRORS, _error_frame(chunk.errors), f)

    try:
        _replace_file(con, f, outcome, planned.sha256, planned.size, fill=fill)
    except Exception as exc:  # a parser bug, recursion, memory, the database: this file fails
        return record_failure(con, planned, kind, exc)
    return outcome


def _count(
    outcome: FileOutcome,
    read: int,
    parsed: int,
    rejected: int,
    errors: list[RecordError],
    keep_errors: int = 20,
) -> None:
    outcome.records_read += read
    outcome.records_parsed += parsed
    outcome.records_rejected += rejected
    outcome.warnings += sum(1 for e in errors if not e.is_rejection)
    outcome.first_errors.extend(errors[: max(keep_errors - len(outcome.first_errors), 0)])


def record_capture(
    con: duckdb.DuckDBPyConnection, planned: PlannedFile, result: CaptureResult
) -> FileOutcome:
    """Name a capture's published Parquet folder in the database (one transaction)."""
    f, job = planned.file, planned.job
    assert job is not None and planned.sniffed is not None
    data = data_dir(con)
    outcome = FileOutcome(f, planned.sniffed.kind, "loaded", engine=job.engine)
    outcome.records_read = result.records_read
    outcome.records_parsed = result.records_parsed
    outcome.records_rejected = result.records_rejected
    outcome.warnings = result.warnings
    outcome.first_errors = list(result.first_errors)
    errors_file = data.capture_file(result.capture_id, store.ERRORS_FILE)

    def fill() -> None:
        con.execute(
            "insert into raw_ingest_errors by name select * from read_parquet(?)",
            [str(errors_file)],
        )

    old = _replace_file(con, f, outcome, planned.sha256, planned.size, result.capture_id, fill)
    if old is not None:  # after the commit: a crash before this leaves an orphan, swept later
        data.remove(old)
    return outcome


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    """Before a run loads anything: forget captures whose folders are gone, sweep orphans."""
    data = data_dir(con)
    missing = [i for i in loaded_capture_ids(con) if not data.has_capture(i)]
    if missing:
        with _transaction(con):
            for capture_id in missing:
                row = con.execute(
                    "select bundle_id, node, source_file from raw_ingest_files "
                    "where capture_id = ?",
                    [capture_id],
                ).fetchone()
                assert row is not None
                con.execute(
                    "delete from raw_ingest_errors "
                    "where bundle_id = ? and node = ? and source_file = ?",
                    list(row),
                )
                con.execute(
                    "update raw_ingest_files set status = 'failed', capture_id = null, "
                    "reason = ? where capture_id = ?",
                    [f"its Parquet files are gone from {data.root}: loaded again", capture_id],
                )
    data.sweep(set(loaded_capture_ids(con)))
    refresh_parquet_views(con)


def prune_missing(
    con: duckdb.DuckDBPyConnection, bundle_ids: Iterable[str], present: Iterable[InputFile]
) -> list[FileOutcome]:
    """Drop the rows (and Parquet folders) of files of these bundles that are gone from disk."""
    seen = {(f.bundle_id, f.node, f.source_file) for f in present}
    gone: list[FileOutcome] = []
    for bundle_id in sorted(set(bundle_ids)):
        rows = con.execute(
            "select node, source_file, kind, capture_id from raw_ingest_files where bundle_id = ?",
            [bundle_id],
        ).fetchall()
        for node, source_file, kind, capture_id in rows:
            if (bundle_id, node, source_file) in seen:
                continue
            f = InputFile(Path(source_file), source_file, bundle_id, node, source_file)
            with _transaction(con):
                _delete_file_rows(con, f)
            if capture_id is not None:
                data_dir(con).remove(capture_id)
            gone.append(FileOutcome(f, kind, "deleted", "gone from the bundle: its rows dropped"))
    if gone:
        refresh_parquet_views(con)
    return gone


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


def memory_limit_given(con: duckdb.DuckDBPyConnection) -> str | None:
    """--memory-limit as given to connect (None: DuckDB's default is in force)."""
    [(given,)] = con.execute(f"select getvariable('{MEMORY_LIMIT_VARIABLE}')").fetchall()
    return None if given is None else str(given)
