"""The `findings` view as the CLI's alarm: how many findings are at or above a severity."""

from __future__ import annotations

from enum import StrEnum

import duckdb

SEVERITY_ORDER = ("error", "warning", "info")
"""Most severe first; `findings.severity` holds one of these."""


class FailOn(StrEnum):
    """`natlens analyze --fail-on`: the least severe finding that fails the run."""

    warning = "warning"
    error = "error"


def count_at_or_above(con: duckdb.DuckDBPyConnection, level: str) -> dict[str, int]:
    """Findings in the database whose severity is `level` or worse, counted per severity."""
    wanted = list(SEVERITY_ORDER[: SEVERITY_ORDER.index(level) + 1])
    rows = con.execute(
        "select severity, count(*) from findings where list_contains(?, severity) "
        "group by severity",
        [wanted],
    ).fetchall()
    return {str(severity): int(n) for severity, n in rows}
