"""`natlens export`: a view or a query written whole to a file (or stdout) for other tools.

Parquet, CSV and JSON lines are written by DuckDB's COPY; `zeek` is Zeek's ASCII log format
(pipeline/export/zeek.py). A file is written beside its target and renamed over it when complete,
so a failure leaves the previous file; `-` streams the finished output to stdout.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from contextlib import suppress
from enum import StrEnum
from pathlib import Path

import duckdb

from ..atomic import replace_with, temporary_beside
from ..errors import InputError, QueryError
from ..formats import batches_of
from ..reader import open_read_only
from .zeek import missing_columns, write_conn_log

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ExportFormat(StrEnum):
    parquet = "parquet"
    csv = "csv"
    jsonl = "jsonl"
    zeek = "zeek"


_COPY_OPTIONS = {
    ExportFormat.parquet: "FORMAT parquet",
    ExportFormat.csv: "FORMAT csv, HEADER true",
    ExportFormat.jsonl: "FORMAT json",
}


def export_query(what: str) -> str:
    """A view's name becomes `select * from` it; otherwise `what` must be one query."""
    if _NAME.fullmatch(what.strip()):
        return f'select * from "{what.strip()}"'
    try:
        statements = duckdb.extract_statements(what)
    except duckdb.Error as exc:
        raise QueryError("query", str(exc)) from exc
    if len(statements) != 1 or list(statements[0].expected_result_type) != [
        duckdb.ExpectedResultType.QUERY_RESULT
    ]:
        raise InputError("query", "export takes a view name or one query (select ...)")
    return statements[0].query.strip().rstrip(";")


def export(
    db: Path,
    what: str,
    fmt: ExportFormat,
    output: str,
    *,
    note: Callable[[str], None] = lambda _: None,
) -> int:
    """Write the rows of `what` (a view or a query) from `db` to `output` (`-`: stdout)."""
    query = export_query(what)
    to_stdout = output == "-"
    if to_stdout:
        fd, name = tempfile.mkstemp(prefix="natlens-export-", suffix=f".{fmt.value}")
        os.close(fd)
        os.unlink(name)  # DuckDB's COPY creates it
        target, temporary = Path(name), Path(name)
    else:
        target, temporary = temporary_beside(Path(output))
    con = open_read_only(db, allowed_paths=(temporary,), note=note)
    try:
        rows = _write(con, query, fmt, temporary)
    except duckdb.Error as exc:
        with suppress(OSError):
            temporary.unlink()
        where = what.strip() if _NAME.fullmatch(what.strip()) else "query"
        raise QueryError(where, str(exc)) from exc
    except BaseException:
        with suppress(OSError):
            temporary.unlink()
        raise
    finally:
        con.close()
    if to_stdout:
        try:
            with temporary.open("rb") as handle:
                shutil.copyfileobj(handle, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        finally:
            temporary.unlink()
    else:
        replace_with(temporary, target)
    return rows


def _write(con: duckdb.DuckDBPyConnection, query: str, fmt: ExportFormat, path: Path) -> int:
    if fmt == ExportFormat.zeek:
        cursor = con.execute(query)
        columns = [d[0] for d in cursor.description or []]
        missing = missing_columns(columns)
        if missing:
            raise InputError(
                "query",
                f"the zeek format writes conn.log rows; missing columns: {', '.join(missing)}",
                hint="export `flows` or a query that selects its columns",
            )
        with path.open("x", encoding="utf-8", newline="\n") as out:
            return write_conn_log(out, columns, batches_of(cursor))
    quoted = "'" + str(path).replace("'", "''") + "'"
    row = con.execute(f"COPY ({query}) TO {quoted} ({_COPY_OPTIONS[fmt]})").fetchone()
    return int(row[0]) if row else 0
