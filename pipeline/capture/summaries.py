"""A capture's summaries, computed once from its own packets: the Zeek conn.log rows of `flows`.

The SQL is the project's own (queries/20_intermediate/int_flows__summarized.sql and the views it
reads), run in a private in-memory DuckDB over the capture's packets.parquet alone, so a capture
costs what it holds whatever the database already holds.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb

from ..db import read_view_files, views_for

FLOW_SUMMARY_VIEW = "int_flows__summarized"
SUMMARY_MEMORY_LIMIT = "512MB"
"""DuckDB's memory limit for one capture's summaries; beyond it the windows spill to disk."""


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def summary_sql_fingerprint() -> str:
    """A hash of the SQL that makes a capture's summaries (part of every capture id)."""
    digest = hashlib.sha256()
    for view in views_for(FLOW_SUMMARY_VIEW, read_view_files()):
        digest.update(view.name.encode() + b"\0" + view.body.encode() + b"\0")
    return digest.hexdigest()


def summarize_flows(
    packets: Path,
    out: Path,
    *,
    temp_dir: Path,
    threads: int = 1,
    memory_limit: str | None = None,
) -> int:
    """Write the flows summary of the packets in `packets` (Parquet) to `out`; return its rows."""
    con = duckdb.connect(
        ":memory:",
        config={
            "threads": max(threads, 1),
            "memory_limit": memory_limit or SUMMARY_MEMORY_LIMIT,
            "temp_directory": str(temp_dir),
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        },
    )
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        con.execute("SET asof_loop_join_threshold = 0")
        con.execute("SET preserve_insertion_order = false")
        con.execute(
            f"create view raw_packets as select * from read_parquet({_sql_literal(str(packets))})"
        )
        for view in views_for(FLOW_SUMMARY_VIEW):
            con.execute(f"create view {view.name} as\n{view.body}")
        con.execute(
            f"copy (select * from {FLOW_SUMMARY_VIEW} order by first_frame_no, uid) "
            f"to {_sql_literal(str(out))} (format parquet, compression zstd)"
        )
        row = con.execute(f"select count(*) from read_parquet({_sql_literal(str(out))})").fetchone()
        assert row is not None
        return int(row[0])
    finally:
        con.close()
