"""The data directory beside the database: one folder of Parquet files per loaded capture.

Layout (documented in docs/storage.md)::

    <db>.d/
      captures/<capture_id>/packets.parquet       raw_packets rows of one capture (zstd)
      captures/<capture_id>/app_messages.parquet  raw_app_messages rows
      captures/<capture_id>/flows.parquet         raw_flows rows (its Zeek conn.log summary)
      captures/<capture_id>/errors.parquet        raw_ingest_errors rows (rejected records)
      captures/<capture_id>/manifest.json         counts, for people and other tools
      tmp/<capture_id>.<pid>.<n>/                 a capture being written (never read)

A capture folder is written under tmp/ and renamed into captures/ when complete. The database
lists the capture ids it loaded (raw_ingest_files.capture_id); the views read only those, so a
folder that no loaded row names (left by a killed run, or replaced) is never read, and is
removed by the next run that opens the database for writing.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

CAPTURES = "captures"
TMP = "tmp"
PACKETS_FILE = "packets.parquet"
APP_MESSAGES_FILE = "app_messages.parquet"
FLOWS_FILE = "flows.parquet"
ERRORS_FILE = "errors.parquet"
MANIFEST_FILE = "manifest.json"
_COUNTER = itertools.count()


def default_data_dir(db: Path) -> Path:
    """`<db>.d` beside the database file."""
    return db.with_name(db.name + ".d")


class DataDir:
    """A data directory (created on first write)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()

    def capture_dir(self, capture_id: str) -> Path:
        return self.root / CAPTURES / capture_id

    def capture_file(self, capture_id: str, name: str) -> Path:
        return self.capture_dir(capture_id) / name

    def has_capture(self, capture_id: str) -> bool:
        return (self.capture_dir(capture_id) / MANIFEST_FILE).is_file()

    def new_tmp(self, capture_id: str) -> Path:
        """An empty folder under tmp/ that no other writer uses."""
        path = self.root / TMP / f"{capture_id}.{os.getpid()}.{next(_COUNTER)}"
        path.mkdir(parents=True)
        return path

    def publish(self, tmp: Path, capture_id: str) -> None:
        """Move a completely written capture folder into captures/ (atomic rename).

        why: the same capture id means the same content, decoded by the same natlens, so a
        folder already there holds the same files and is replaced without a reader noticing
        anything but the rename.
        """
        for path in tmp.iterdir():  # the files' data reach the disk before the rename does
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
        final = self.capture_dir(capture_id)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            old = self.root / TMP / f"{capture_id}.replaced.{os.getpid()}.{next(_COUNTER)}"
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
        _fsync_dir(final.parent)

    def remove(self, capture_id: str) -> None:
        shutil.rmtree(self.capture_dir(capture_id), ignore_errors=True)

    def sweep(self, keep: set[str]) -> list[str]:
        """Remove every capture folder not in `keep` and everything under tmp/.

        Only called by the one process that holds the database open for writing (DuckDB's
        file lock), before it starts any capture of its own. Returns the ids removed.
        """
        shutil.rmtree(self.root / TMP, ignore_errors=True)
        removed: list[str] = []
        captures = self.root / CAPTURES
        if not captures.is_dir():
            return removed
        for entry in sorted(captures.iterdir()):
            if entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name)
        return removed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
