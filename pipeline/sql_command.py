"""`natlens sql` and `natlens views`: user SQL over a database opened read-only.

The SQL comes from an argument, a file or stdin; its statements run in order and each one that
returns rows is printed in the chosen format. `--param name=value` binds `$name`. A failing
statement stops the run with DuckDB's whole message (its LINE and caret, the names it suggests).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import duckdb

from .db import QUERY_LAYERS, read_view_files
from .errors import InputError, QueryError
from .formats import Format, batches_of, write_result


@dataclass(frozen=True)
class SqlText:
    """SQL to run and where it came from (`query`, a file name or `stdin`), for messages."""

    where: str
    sql: str


def read_sql(query: str | None, file: Path | None, stdin: TextIO | None = None) -> SqlText:
    """The SQL of an argument (`-` reads stdin) or of `-f FILE` (`-` reads stdin too)."""
    stdin = stdin if stdin is not None else sys.stdin
    if query is not None and file is not None:
        raise InputError("query", "give SQL as an argument or with -f FILE, not both")
    if file is not None and str(file) != "-":
        try:
            return SqlText(str(file), file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise InputError(str(file), "no such file") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(str(file), f"cannot read: {exc}") from exc
    if query is None and file is None:
        raise InputError("query", "no SQL given", hint="natlens sql 'select ...', -f FILE or -")
    if query is not None and query != "-":
        return SqlText("query", query)
    return SqlText("stdin", stdin.read())


def parse_params(given: list[str]) -> dict[str, str]:
    """`name=value` pairs; the value is text, cast by DuckDB to what the statement needs."""
    params: dict[str, str] = {}
    for item in given:
        name, sep, value = item.partition("=")
        name = name.strip().lstrip("$")
        if not sep or not name.isidentifier():
            raise InputError("--param", f"{item!r} is not name=value")
        params[name] = value
    return params


def split(text: SqlText) -> list[duckdb.Statement]:
    """The statements of `text`, parsed before any of them runs."""
    try:
        statements = duckdb.extract_statements(text.sql)
    except duckdb.Error as exc:
        raise QueryError(text.where, str(exc)) from exc
    if not statements:
        raise QueryError(text.where, "no SQL statement")
    return statements


def _shows_rows(statement: duckdb.Statement) -> bool:
    return list(statement.expected_result_type) == [duckdb.ExpectedResultType.QUERY_RESULT]


def run(
    con: duckdb.DuckDBPyConnection,
    text: SqlText,
    params: dict[str, str],
    out: TextIO,
    fmt: Format,
    *,
    header: bool = True,
    width: int | None = None,
) -> None:
    """Run every statement of `text` in order, writing each result to `out`."""
    statements = split(text)
    unused = set(params) - {n for s in statements for n in s.named_parameters}
    if unused:
        raise InputError("--param", f"not used by the SQL: {', '.join(sorted(unused))}")
    shown = 0
    for number, statement in enumerate(statements, start=1):
        where = text.where if len(statements) == 1 else f"{text.where}: statement {number}"
        wanted = {n: params[n] for n in statement.named_parameters if n in params}
        missing = set(statement.named_parameters) - set(wanted)
        if missing:
            raise QueryError(where, f"no value for ${', $'.join(sorted(missing))} (--param)")
        try:
            # why: the text without the blanks before it, so DuckDB's LINE 1 is its first line
            cursor = con.execute(statement.query.strip(), wanted or None)
            if not _shows_rows(statement) or cursor.description is None:
                continue
            columns = [d[0] for d in cursor.description]
            if shown and fmt in (Format.table, Format.markdown):
                out.write("\n")
            write_result(out, fmt, columns, batches_of(cursor), header=header, width=width)
        except duckdb.Error as exc:
            raise QueryError(where, str(exc)) from exc
        out.flush()
        shown += 1


def terminal_width() -> int | None:
    """The terminal's width for the table format (COLUMNS, else the terminal; 0 = no limit)."""
    columns = shutil.get_terminal_size(fallback=(0, 0)).columns
    return columns if columns > 0 else None


def view_rows(
    con: duckdb.DuckDBPyConnection | None,
) -> tuple[list[str], list[tuple[str, str, str, str]]]:
    """`natlens views`: one row per view: name, layer, kind, question.

    Without a database: the views natlens defines (from its SQL files). With one: what that
    database holds (views and tables, with the comment each carries, a question for natlens's).
    """
    columns = ["name", "layer", "kind", "question"]
    files = sorted(read_view_files(), key=lambda v: (QUERY_LAYERS.index(v.layer), v.name))
    if con is None:
        rows = [(v.name, v.layer, "table" if v.materialized else "view", v.question) for v in files]
        return columns, rows
    layer_of = {v.name: v.layer for v in files}
    order = {v.name: i for i, v in enumerate(files)}
    found = con.execute(
        """
        select view_name as name, 'view' as kind, coalesce(comment, '') as question
        from duckdb_views() where not internal and schema_name = 'main'
            and database_name = current_database()
        union all
        select table_name, 'table', coalesce(comment, '')
        from duckdb_tables() where schema_name = 'main' and database_name = current_database()
        """
    ).fetchall()
    rows = [
        (str(name), layer_of.get(name, "raw" if str(name).startswith("raw_") else ""), kind, q)
        for name, kind, q in found
        if name in layer_of or str(name).startswith("raw_")
    ]
    rows.sort(key=lambda r: (order.get(r[0], len(order)), r[0]))
    return columns, rows
