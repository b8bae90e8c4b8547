"""The DuckDB store: connect, create the raw tables from schemas.py, apply queries/ as views."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from pipeline.errors import QueryError
from pipeline.resources import queries_dir
from pipeline.schemas import ALL_TABLES, TableSchema

QUERY_LAYERS = ("10_staging", "20_intermediate", "30_answers", "checks")
CHECK_PREFIX = "check_"
_HEADER_KEY = re.compile(r"^--\s*(question|grain|inputs)\s*:\s*(.*)$")


@dataclass(frozen=True)
class ViewFile:
    """One queries/*.sql file: the view it defines and its header."""

    name: str
    layer: str
    path: Path
    question: str
    grain: str
    inputs: str
    body: str


def connect(path: str | Path) -> duckdb.DuckDBPyConnection:
    """Open (or create) the database, make sure every raw table exists, (re)apply the views."""
    try:
        con = duckdb.connect(str(path))
    except duckdb.Error as exc:
        raise QueryError(str(path), f"cannot open DuckDB file: {exc}") from exc
    con.execute("SET TimeZone = 'UTC'")
    ensure_tables(con)
    apply_views(con)
    return con


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create missing raw tables and add columns that a newer schema defines."""
    existing = {
        (t, c)
        for t, c in con.execute(
            "select table_name, column_name from duckdb_columns() where schema_name = 'main'"
        ).fetchall()
    }
    tables = {t for t, _ in existing}
    for schema in ALL_TABLES:
        if schema.name not in tables:
            _create_table(con, schema)
            continue
        for column_name in schema.polars_schema():
            if (schema.name, column_name) not in existing:
                empty = schema.empty().select(column_name).to_arrow()
                con.register("_natlens_col", empty)
                dtype = con.execute(
                    "select data_type from (describe select * from _natlens_col)"
                ).fetchone()
                con.unregister("_natlens_col")
                assert dtype is not None
                con.execute(f'alter table {schema.name} add column "{column_name}" {dtype[0]}')


def _create_table(con: duckdb.DuckDBPyConnection, schema: TableSchema) -> None:
    con.register("_natlens_empty", schema.empty().to_arrow())
    con.execute(f"create table {schema.name} as select * from _natlens_empty limit 0")
    con.unregister("_natlens_empty")
    con.execute(f"comment on table {schema.name} is {_quote(schema.doc)}")
    for column in schema.all_columns:
        con.execute(f'comment on column {schema.name}."{column.name}" is {_quote(column.doc)}')


def read_view_files() -> list[ViewFile]:
    """Every queries/<layer>/*.sql in apply order, with its header parsed."""
    root = queries_dir()
    files: list[ViewFile] = []
    for layer in QUERY_LAYERS:
        for path in sorted((root / layer).glob("*.sql")):
            text = path.read_text()
            header: dict[str, str] = {}
            for line in text.splitlines():
                match = _HEADER_KEY.match(line.strip())
                if match:
                    header.setdefault(match.group(1), match.group(2).strip())
            name = path.stem if layer != "checks" else CHECK_PREFIX + path.stem
            body = text.strip().rstrip(";")
            files.append(
                ViewFile(
                    name=name,
                    layer=layer,
                    path=path,
                    question=header.get("question", ""),
                    grain=header.get("grain", ""),
                    inputs=header.get("inputs", ""),
                    body=body,
                )
            )
    return files


def apply_views(con: duckdb.DuckDBPyConnection) -> list[ViewFile]:
    """Create or replace one view per SQL file; retry in dependency order; comment each view."""
    views = read_view_files()
    # why: an existing database may hold views from an older version; a new view that reads an
    # old one with fewer columns would not bind, so every view is dropped and created again
    for (name,) in con.execute(
        "select view_name from duckdb_views() where not internal and schema_name = 'main'"
    ).fetchall():
        con.execute(f'drop view if exists "{name}"')
    pending = views
    failures: dict[str, str] = {}
    while pending:
        progressed = False
        still: list[ViewFile] = []
        for view in pending:
            try:
                con.execute(f"create or replace view {view.name} as\n{view.body}")
            except duckdb.CatalogException as exc:
                failures[view.name] = str(exc)
                still.append(view)
                continue
            except duckdb.Error as exc:
                raise QueryError(str(view.path), str(exc).splitlines()[0]) from exc
            con.execute(f"comment on view {view.name} is {_quote(view.question)}")
            failures.pop(view.name, None)
            progressed = True
        if not progressed:
            first = still[0]
            raise QueryError(str(first.path), failures[first.name].splitlines()[0])
        pending = still
    return views


def fetch_dicts(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None
) -> list[dict[str, Any]]:
    """Run a query and return its rows as dicts keyed by column name."""
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
