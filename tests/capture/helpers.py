"""Run the real `natlens` CLI in a child process and compare databases (capture-stage tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[2]
ANSWERS = (
    "packets",
    "flows",
    "app_messages",
    "connections",
    "snat_decisions",
    "nat_translations",
    "clock_offsets",
    "backend_distribution",
    "ingest_errors",
)
"""Views whose rows must equal a fresh run's (ingest_files too, without its status column)."""


def natlens(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return sorted(con.execute(sql).fetchall(), key=repr)
    finally:
        con.close()


def snapshot(db: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every answer's rows (sorted), and each file's counts: what a fresh run must equal."""
    got = {name: rows(db, f"select * from {name}") for name in ANSWERS}
    got["ingest_files"] = rows(
        db,
        "select source_file, kind, records_read, records_parsed, records_rejected "
        "from ingest_files",
    )
    return got


def assert_same(db: Path, fresh: Path) -> None:
    ours, theirs = snapshot(db), snapshot(fresh)
    for name in theirs:
        assert ours[name] == theirs[name], f"{name} differs from a fresh run's"
