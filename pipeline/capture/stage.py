"""The per-capture stage as a pure function: a CaptureJob in, a CaptureResult out.

``run_capture`` decodes one capture file in a single streaming pass, writes its packets and
application messages as Parquet, its rejected records, and its flow summary, into a fresh
folder under the data directory's tmp/, and renames that folder into captures/ once complete.
It reads nothing but the capture and writes nothing but that folder, so captures can run in
parallel processes or on other machines (with the data directory on a shared path).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ..ingest.records import RecordError
from ..prefetch import prefetch
from ..schemas import RAW_APP_MESSAGES, RAW_INGEST_ERRORS, RAW_PACKETS, TableSchema
from . import store
from .summaries import summarize_flows, summary_sql_fingerprint

ROW_GROUP_ROWS = 262_144
"""Rows per Parquet row group (decoded chunks of about 35,000 packets are gathered to this)."""
KEEP_ERRORS = 20
"""Rejected records returned with the result for printing (all of them are in errors.parquet)."""
STAGE_VERSION = "1"
"""Bumped when the stage writes different files for the same capture."""


@dataclass(frozen=True)
class CaptureJob:
    """One capture to decode: where to read it, what it is called, where to write."""

    path: str
    bundle_id: str
    node: str
    source_file: str
    content_sha256: str
    engine: str
    data_root: str
    threads: int = 1
    memory_limit: str | None = None

    @property
    def capture_id(self) -> str:
        return capture_id(
            self.bundle_id, self.node, self.source_file, self.content_sha256, self.engine
        )


@dataclass
class CaptureResult:
    """What the stage did with one capture (the files are in the data directory)."""

    capture_id: str
    records_read: int = 0
    records_parsed: int = 0
    records_rejected: int = 0
    warnings: int = 0
    packet_rows: int = 0
    app_message_rows: int = 0
    flow_rows: int = 0
    first_errors: list[RecordError] = field(default_factory=list)


_FINGERPRINT: list[str] = []


def capture_id(bundle_id: str, node: str, source_file: str, sha256: str, engine: str) -> str:
    """The folder name of one capture's files: same file, content, decoder and SQL -> same id."""
    if not _FINGERPRINT:
        _FINGERPRINT.append(summary_sql_fingerprint())
    key = "\0".join([bundle_id, node, source_file, sha256, engine, STAGE_VERSION, _FINGERPRINT[0]])
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]


class _TableWriter:
    """Streams frames of one raw table into a Parquet file, in row groups of ROW_GROUP_ROWS."""

    def __init__(self, path: Path, schema: TableSchema, job: CaptureJob) -> None:
        self.schema = schema
        self.job = job
        self.arrow_schema = self._arrow(schema.empty()).schema
        self.writer = pq.ParquetWriter(path, self.arrow_schema, compression="zstd")
        self.pending: list[pl.DataFrame] = []
        self.pending_rows = 0
        self.rows = 0

    def _arrow(self, frame: pl.DataFrame) -> pa.Table:
        full = frame.with_columns(
            pl.lit(self.job.bundle_id, pl.Utf8).alias("bundle_id"),
            pl.lit(self.job.node, pl.Utf8).alias("node"),
            pl.lit(self.job.source_file, pl.Utf8).alias("source_file"),
        ).select(list(self.schema.polars_schema()))
        return full.to_arrow()

    def add(self, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        self.pending.append(frame)
        self.pending_rows += frame.height
        if self.pending_rows >= ROW_GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        frame = pl.concat(self.pending, how="vertical_relaxed", rechunk=True)
        self.writer.write_table(self._arrow(frame).cast(self.arrow_schema))
        self.rows += frame.height
        self.pending.clear()
        self.pending_rows = 0

    def close(self) -> None:
        self.flush()
        self.writer.close()


def _error_rows(errors: list[RecordError]) -> list[dict[str, Any]]:
    return [
        {
            "source_line": e.line,
            "byte_offset": e.offset,
            "reason": e.reason,
            "raw": e.raw,
            "is_rejection": e.is_rejection,
        }
        for e in errors
    ]


def run_capture(job: CaptureJob) -> CaptureResult:
    """Decode one capture into its folder of Parquet files; see the module doc."""
    from ..ingest.pcap import read_capture  # numpy decoders: loaded where they run

    data = store.DataDir(job.data_root)
    result = CaptureResult(job.capture_id)
    tmp = data.new_tmp(result.capture_id)
    try:
        packets = _TableWriter(tmp / store.PACKETS_FILE, RAW_PACKETS, job)
        app = _TableWriter(tmp / store.APP_MESSAGES_FILE, RAW_APP_MESSAGES, job)
        errors = _TableWriter(tmp / store.ERRORS_FILE, RAW_INGEST_ERRORS, job)
        for chunk in prefetch(read_capture(Path(job.path), engine=job.engine)):
            packets.add(chunk.frames["raw_packets"])
            app.add(chunk.frames["raw_app_messages"])
            errors.add(RAW_INGEST_ERRORS.frame(_error_rows(chunk.errors)))
            result.records_read += chunk.records_read
            result.records_parsed += chunk.records_parsed
            result.records_rejected += chunk.records_rejected
            result.warnings += sum(1 for e in chunk.errors if not e.is_rejection)
            room = KEEP_ERRORS - len(result.first_errors)
            result.first_errors.extend(chunk.errors[: max(room, 0)])
        for writer in (packets, app, errors):
            writer.close()
        result.packet_rows, result.app_message_rows = packets.rows, app.rows
        result.flow_rows = summarize_flows(
            tmp / store.PACKETS_FILE,
            tmp / store.FLOWS_FILE,
            temp_dir=tmp / "spill",
            threads=job.threads,
            memory_limit=job.memory_limit,
        )
        shutil.rmtree(tmp / "spill", ignore_errors=True)
        manifest = {
            "capture_id": result.capture_id,
            "bundle_id": job.bundle_id,
            "node": job.node,
            "source_file": job.source_file,
            "content_sha256": job.content_sha256,
            "engine": job.engine,
            "records_read": result.records_read,
            "records_parsed": result.records_parsed,
            "records_rejected": result.records_rejected,
            "rows": {
                "raw_packets": result.packet_rows,
                "raw_app_messages": result.app_message_rows,
                "raw_flows": result.flow_rows,
            },
        }
        (tmp / store.MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        data.publish(tmp, result.capture_id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result
