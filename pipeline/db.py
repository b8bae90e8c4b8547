"""The DuckDB store: connect, create the raw tables from schemas.py, apply queries/ as views.

A query file whose header says ``-- materialized: true`` is heavy (flows, connections): its SQL
becomes the view ``<name>__live`` and ``<name>`` is a table holding its result, rebuilt by
``refresh_materialized`` at the end of every ``analyze`` that changed the data, and whenever
the query text changed since the table was built (a newer natlens on an older database).
Everything downstream reads the table, so a report or an ad-hoc query never recomputes them.
"""

from __future__ import annotations

import hashlib
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from .capture.store import DataDir, default_data_dir
from .errors import QueryError
from .resources import queries_dir
from .schemas import ALL_TABLES, DB_TABLES, PARQUET_TABLES, TableSchema

QUERY_LAYERS = ("10_staging", "20_intermediate", "30_answers", "40_findings", "checks")
CHECK_PREFIX = "check_"
_HEADER_KEY = re.compile(r"^--\s*(question|grain|inputs|materialized)\s*:\s*(.*)$")
LIVE_SUFFIX = "__live"
MATERIALIZED_LOG = "natlens_materialized"
CATALOG_LOG = "natlens_catalog"
"""One row: the catalog_fingerprint of the tables and views this database was last built with."""
SETTINGS_TABLE = "natlens_settings"
"""key/value rows: `data_dir`, the folder of the captures' Parquet files."""
EMPTY_PREFIX = "natlens_empty__"
"""An empty table per Parquet-backed raw table: what its view reads while no capture is loaded."""
NATLENS_MARKER_TABLES = (CATALOG_LOG, "raw_ingest_files", "natlens_settings")
"""A DuckDB file holding one of these was made by natlens; one with other tables only is not."""
DUCKDB_MAGIC, DUCKDB_MAGIC_OFFSET = b"DUCK", 8
SQLITE_MAGIC = b"SQLite format 3\0"
NO_NETWORK_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}
"""natlens never fetches DuckDB extensions (the ones it uses are built into the duckdb wheel)."""
STORAGE_VERSION = "v2.0.0"
"""DuckDB storage format of the files natlens creates: every DuckDB >= 2.0.0 opens them.

why: the oldest DuckDB natlens supports (pyproject: duckdb>=2.0,<3) must open any file a newer
one wrote, and DuckDB's default is its own newest format; a file keeps the format it was created
with. No 1.x DuckDB opens them whatever the format: natlens's tables use TIMESTAMPTZ_NS (2.0)."""
_ONLY_OURS = "natlens opens only DuckDB files it created, or a new or empty path"
MEMORY_LIMIT_VARIABLE = "natlens_memory_limit"
DEFAULT_MEMORY_LIMIT = "512MB"
DEFAULT_LIMIT_VARIABLE = "natlens_memory_limit_is_default"
"""True when the limit in force is DEFAULT_MEMORY_LIMIT because none was given."""
"""analyze's DuckDB memory limit when none is given: with the Python side bounded too (blocks
of text, batches of translations, chunks of packets), a whole run stays near 1 GiB."""
"""DuckDB variable holding --memory-limit as given (unset: DuckDB's default is in force)."""


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
    materialized: bool = False

    @property
    def relation(self) -> str:
        """The name the SQL's result is created under: a view, or `<name>__live` beside a table."""
        return self.name + LIVE_SUFFIX if self.materialized else self.name

    @property
    def body_sha256(self) -> str:
        return hashlib.sha256(self.body.encode()).hexdigest()


def connect(
    path: str | Path,
    memory_limit: str | None = None,
    data_dir: str | Path | None = None,
    *,
    limit_is_default: bool = False,
) -> duckdb.DuckDBPyConnection:
    """Open (or create) the database, make sure every raw table exists, (re)apply the views.

    `memory_limit` (DuckDB syntax, e.g. ``1GB``) caps DuckDB's memory; beyond it DuckDB spills
    to a temporary directory beside the database file. `data_dir` is where the captures'
    Parquet files live (default: the one this database was last used with, else `<db>.d`).
    """
    _check_is_natlens_or_new(Path(path))
    try:
        con = duckdb.connect(
            str(path),
            config={**NO_NETWORK_CONFIG, "storage_compatibility_version": STORAGE_VERSION},
        )
    except duckdb.Error as exc:
        raise QueryError(str(path), f"cannot open DuckDB file: {exc}") from exc
    _check_natlens_catalog(con, str(path))
    con.execute("SET TimeZone = 'UTC'")
    # why: views hide row counts from the planner, which then estimates a handful of rows and
    # picks a nested-loop ASOF join: minutes instead of seconds on a million packets
    con.execute("SET asof_loop_join_threshold = 0")
    con.execute("SET enable_progress_bar = false")
    if memory_limit is not None:
        try:
            con.execute(f"SET memory_limit = {_quote(memory_limit)}")
            # the limit as given, for code that lowers it for a while and then restores it
            con.execute(f"SET VARIABLE {MEMORY_LIMIT_VARIABLE} = {_quote(memory_limit)}")
            con.execute(f"SET VARIABLE {DEFAULT_LIMIT_VARIABLE} = {limit_is_default}")
            # why: DuckDB's advice for staying under a limit; materialised tables have no
            # meaningful row order (every view that shows rows orders them itself)
            con.execute("SET preserve_insertion_order = false")
        except duckdb.Error as exc:
            con.close()
            raise QueryError(str(path), f"bad --memory-limit {memory_limit!r}: {exc}") from exc
    try:
        _set_data_dir(con, Path(path), data_dir)
        views = read_view_files()
        fingerprint = catalog_fingerprint(views)
        # why: one transaction for all the DDL; committing each statement on its own made
        # opening a new database take about 2 s
        con.execute("begin transaction")
        # why: re-creating every view took about 0.7 s on each open; a database built with the
        # same tables and SQL is used as it is
        if not _catalog_is_current(con, views, fingerprint):
            ensure_tables(con)
            apply_views(con, in_transaction=True, views=views)
            con.execute(f"create table if not exists {CATALOG_LOG} (fingerprint varchar)")
            con.execute(f"delete from {CATALOG_LOG}")
            con.execute(f"insert into {CATALOG_LOG} values (?)", [fingerprint])
        con.execute("commit")
        refresh_parquet_views(con)
    except duckdb.Error as exc:  # e.g. out of memory under a small memory_limit
        con.close()
        raise QueryError(str(path), str(exc).splitlines()[0]) from exc
    return con


def _set_data_dir(con: duckdb.DuckDBPyConnection, db: Path, given: str | Path | None) -> None:
    con.execute(
        f"create table if not exists {SETTINGS_TABLE} (key varchar primary key, value varchar)"
    )
    stored = con.execute(f"select value from {SETTINGS_TABLE} where key = 'data_dir'").fetchone()
    if given is None and stored is not None:
        return
    chosen = Path(given) if given is not None else default_data_dir(db.absolute())
    con.execute(
        f"insert or replace into {SETTINGS_TABLE} values ('data_dir', ?)", [str(chosen.absolute())]
    )


def data_dir(con: duckdb.DuckDBPyConnection) -> DataDir:
    """The data directory of this database (set by connect)."""
    row = con.execute(f"select value from {SETTINGS_TABLE} where key = 'data_dir'").fetchone()
    if row is None:
        raise QueryError("database", "no data directory recorded (not opened through connect)")
    return DataDir(str(row[0]))


def loaded_capture_ids(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The captures the database holds: loaded files with a folder of Parquet files."""
    return [
        str(capture_id)
        for (capture_id,) in con.execute(
            "select capture_id from raw_ingest_files "
            "where status = 'loaded' and capture_id is not null order by capture_id"
        ).fetchall()
    ]


def refresh_parquet_views(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create raw_packets, raw_app_messages and raw_flows over the loaded captures' files.

    why: the views name each loaded capture's file, never a glob, so a folder that no loaded
    row names (a run killed before its commit, a replaced capture) is never read.
    """
    data = data_dir(con)
    ids = [i for i in loaded_capture_ids(con) if data.has_capture(i)]
    for schema in PARQUET_TABLES:
        columns = ", ".join(f'"{name}"' for name in schema.polars_schema())
        files = [
            str(data.capture_file(i, schema.name.removeprefix("raw_") + ".parquet")) for i in ids
        ]
        if files:
            listed = ", ".join(_quote(f) for f in files)
            body = f"select {columns} from read_parquet([{listed}])"
        else:
            body = f"select {columns} from {EMPTY_PREFIX}{schema.name}"
        con.execute(f"create or replace view {schema.name} as {body}")
        con.execute(f"comment on view {schema.name} is {_quote(schema.doc)}")


def _check_is_natlens_or_new(path: Path) -> None:
    """Refuse a path that holds something other than a DuckDB file, before DuckDB opens it.

    why: DuckDB opens a SQLite file through its sqlite extension, fetched from the network; an
    empty file (e.g. from mktemp) holds nothing and is removed, since DuckDB refuses it.
    """
    if str(path).startswith(":memory:"):
        return
    try:
        info = path.stat()
    except FileNotFoundError:
        return  # a new database
    except OSError as exc:
        raise QueryError(str(path), f"cannot open: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise QueryError(str(path), f"not a regular file; {_ONLY_OURS}")
    try:
        if info.st_size == 0:
            path.resolve().unlink()
            return
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise QueryError(str(path), f"cannot open: {exc.strerror or exc}") from exc
    if head[DUCKDB_MAGIC_OFFSET : DUCKDB_MAGIC_OFFSET + len(DUCKDB_MAGIC)] != DUCKDB_MAGIC:
        what = "a SQLite database" if head == SQLITE_MAGIC else "not a DuckDB file"
        raise QueryError(str(path), f"{what}; {_ONLY_OURS}")


def _check_natlens_catalog(con: duckdb.DuckDBPyConnection, where: str) -> None:
    """Close `con` and refuse a DuckDB file that holds tables or views but none of natlens's.

    Runs before connect changes anything, so such a file is left as it was.
    """
    names = con.execute(
        "select schema_name, table_name from duckdb_tables() "
        "where database_name = current_database() "
        "union all select schema_name, view_name from duckdb_views() "
        "where not internal and database_name = current_database()"
    ).fetchall()
    if names and not {t for s, t in names if s == "main"} & set(NATLENS_MARKER_TABLES):
        con.close()
        raise QueryError(
            where,
            "not a natlens database; natlens does not add its tables to other DuckDB files "
            "(pass a new path with --db)",
        )


def catalog_fingerprint(views: list[ViewFile]) -> str:
    """What connect builds a database from: every raw table's columns and docs, every view."""
    digest = hashlib.sha256()
    for schema in ALL_TABLES:
        columns = [(c.name, str(c.dtype), c.doc) for c in schema.all_columns]
        digest.update(repr((schema.name, schema.doc, columns)).encode())
    for view in views:
        digest.update(repr((view.name, view.materialized, view.question, view.body)).encode())
    return digest.hexdigest()


def catalog_is_current(con: duckdb.DuckDBPyConnection) -> bool:
    """Does this database hold every table and view of this natlens version, as connect builds
    them? (Asked of a read-only connection, which cannot rebuild them.)"""
    views = read_view_files()
    return _catalog_is_current(con, views, catalog_fingerprint(views))


def is_natlens_catalog(con: duckdb.DuckDBPyConnection) -> bool:
    """Does the open database hold one of the tables only natlens creates?"""
    names = {
        t
        for (t,) in con.execute(
            "select table_name from duckdb_tables() "
            "where database_name = current_database() and schema_name = 'main'"
        ).fetchall()
    }
    return bool(names & set(NATLENS_MARKER_TABLES))


def _catalog_is_current(
    con: duckdb.DuckDBPyConnection, views: list[ViewFile], fingerprint: str
) -> bool:
    """Was this database built from the same tables and views, and is every one still there?"""
    tables = {
        t
        for (t,) in con.execute(
            "select table_name from duckdb_tables() where schema_name = 'main'"
        ).fetchall()
    }
    if CATALOG_LOG not in tables:
        return False
    if con.execute(f"select fingerprint from {CATALOG_LOG}").fetchall() != [(fingerprint,)]:
        return False
    present = {
        v
        for (v,) in con.execute(
            "select view_name from duckdb_views() where not internal and schema_name = 'main'"
        ).fetchall()
    }
    wanted_tables = {s.name for s in DB_TABLES} | {v.name for v in views if v.materialized}
    if not ({v.relation for v in views} <= present and wanted_tables <= tables):
        return False
    # every materialised table was built from the SQL of this version
    built = dict(con.execute(f"select name, body_sha256 from {MATERIALIZED_LOG}").fetchall())
    return all(built.get(v.name) == v.body_sha256 for v in views if v.materialized)


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
    # why: duckdb_columns() lists views too; only base tables are created or dropped here
    tables = {
        t
        for (t,) in con.execute(
            "select table_name from duckdb_tables() where schema_name = 'main'"
        ).fetchall()
    }
    for schema in PARQUET_TABLES:
        if schema.name in tables:  # an older natlens kept packets in the database: load again
            con.execute(f"drop table {schema.name}")
            if "raw_ingest_files" in tables:
                con.execute(
                    "delete from raw_ingest_files where kind in ('pcap', 'pcapng') "
                    + (
                        "and capture_id is null"
                        if ("raw_ingest_files", "capture_id") in existing
                        else ""
                    )
                )
        if EMPTY_PREFIX + schema.name not in tables:
            _create_table(con, schema, EMPTY_PREFIX + schema.name)
    for schema in DB_TABLES:
        if schema.name not in tables:
            _create_table(con, schema)
            continue
        for column_name in schema.polars_schema():
            if (schema.name, column_name) not in existing:
                empty = schema.empty().select(column_name).to_arrow()
                con.register("_natlens_col", empty)
                [(dtype,)] = con.execute(
                    "select column_type from (describe select * from _natlens_col)"
                ).fetchall()
                con.unregister("_natlens_col")
                con.execute(f'alter table {schema.name} add column "{column_name}" {dtype}')


def _create_table(
    con: duckdb.DuckDBPyConnection, schema: TableSchema, name: str | None = None
) -> None:
    name = name or schema.name
    con.register("_natlens_empty", schema.empty().to_arrow())
    con.execute(f"create table {name} as select * from _natlens_empty limit 0")
    con.unregister("_natlens_empty")
    con.execute(f"comment on table {name} is {_quote(schema.doc)}")
    for column in schema.all_columns:
        con.execute(f'comment on column {name}."{column.name}" is {_quote(column.doc)}')


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
                    materialized=header.get("materialized", "").lower() == "true",
                )
            )
    return _dependency_order(files)


def view_needs(files: list[ViewFile]) -> dict[str, set[str]]:
    """For each view, the other views (of `files`) its SQL reads."""
    names = {f.name for f in files}
    # why: only what follows FROM or JOIN is a relation; column and CTE names may repeat a
    # view's name (a column called `flows`) without being a dependency, and a CTE of the same
    # name (`with connections as (...)`) shadows the view
    relation = re.compile(r"\b(?:from|join)\s+([a-z_][a-z0-9_]*)\b", re.IGNORECASE)
    cte = re.compile(r"\b([a-z_][a-z0-9_]*)\s+as\s+(?:not\s+)?(?:materialized\s+)?\(", re.I)
    needs: dict[str, set[str]] = {}
    for f in files:
        sql = _without_comments(f.body)
        needs[f.name] = (set(relation.findall(sql)) & names) - set(cte.findall(sql)) - {f.name}
    return needs


def views_for(target: str, views: list[ViewFile] | None = None) -> list[ViewFile]:
    """`target` and every view it reads, directly or not, in dependency order."""
    views = read_view_files() if views is None else views
    needs = view_needs(views)
    wanted = {target}
    pending = [target]
    while pending:
        for name in needs[pending.pop()]:
            if name not in wanted:
                wanted.add(name)
                pending.append(name)
    return [v for v in views if v.name in wanted]


def _dependency_order(files: list[ViewFile]) -> list[ViewFile]:
    """The files ordered so that every view comes after the views and tables its SQL names."""
    needs = view_needs(files)
    ordered: list[ViewFile] = []
    done: set[str] = set()
    pending = list(files)
    while pending:
        ready = [f for f in pending if needs[f.name] <= done]
        if not ready:
            raise QueryError(str(pending[0].path), "views depend on each other in a cycle")
        ordered += ready
        done |= {f.name for f in ready}
        pending = [f for f in pending if f.name not in done]
    return ordered


def _without_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


def apply_views(
    con: duckdb.DuckDBPyConnection,
    *,
    in_transaction: bool = False,
    views: list[ViewFile] | None = None,
) -> list[ViewFile]:
    """Create or replace one view per SQL file in dependency order; comment each view.

    Materialised results that are missing or were built from other SQL are rebuilt here, each
    in a transaction of its own (with `in_transaction`, the caller's open transaction is
    committed before and reopened after each rebuild).
    """
    views = read_view_files() if views is None else views
    # why: an existing database may hold views from an older version; a new view that reads an
    # old one with fewer columns would not bind, so every view is dropped and created again
    for (name,) in con.execute(
        "select view_name from duckdb_views() where not internal and schema_name = 'main'"
    ).fetchall():
        con.execute(f'drop view if exists "{name}"')
    refresh_parquet_views(con)
    con.execute(
        f"create table if not exists {MATERIALIZED_LOG} "
        "(name varchar primary key, body_sha256 varchar, data_fingerprint varchar, "
        "refreshed_at timestamptz)"
    )
    built = dict(con.execute(f"select name, body_sha256 from {MATERIALIZED_LOG}").fetchall())
    tables = {t for (t,) in con.execute("select table_name from duckdb_tables()").fetchall()}
    rebuilt = False
    for view in views:
        if not view.materialized and view.name in built:  # was materialised by an older version
            con.execute(f"drop table if exists {view.name}")
            con.execute(f"delete from {MATERIALIZED_LOG} where name = ?", [view.name])
        try:
            con.execute(f"create or replace view {view.relation} as\n{view.body}")
        except duckdb.Error as exc:
            raise QueryError(str(view.path), str(exc).splitlines()[0]) from exc
        con.execute(f"comment on view {view.relation} is {_quote(view.question)}")
        # a table downstream of a rebuilt one may have read its old rows: rebuilt too
        if view.materialized and (
            rebuilt or view.name not in tables or built.get(view.name) != view.body_sha256
        ):
            # why: a rebuild is data work; it commits on its own (a failure, e.g. out of
            # memory, keeps the tables built before it) and the DDL batch goes on after it
            if in_transaction:
                con.execute("commit")
            _materialize(con, view)
            if in_transaction:
                con.execute("begin transaction")
            rebuilt = True
    return views


def data_fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    """A hash of raw_ingest_files and of derived_snat_decisions: it changes whenever a load
    adds, replaces or drops a file, and when `recompute` (a newer natlens) explains the
    translations differently (connections carry their SNAT class)."""
    row = con.execute(
        """
        select md5(
            (select coalesce(string_agg(f::varchar, '|' order by f::varchar), '')
             from raw_ingest_files as f)
            || '|'
            || (select count(*)::varchar || ':' || coalesce(bit_xor(hash(d::varchar)), 0)
                from derived_snat_decisions as d)
        )
        """
    ).fetchone()
    assert row is not None
    return str(row[0])


def materialized_are_current(con: duckdb.DuckDBPyConnection) -> bool:
    """Were the materialised tables built from this SQL and from the data loaded now?"""
    views = [v for v in read_view_files() if v.materialized]
    fingerprint = data_fingerprint(con)
    built = {
        name: (body, data)
        for name, body, data in con.execute(
            f"select name, body_sha256, data_fingerprint from {MATERIALIZED_LOG}"
        ).fetchall()
    }
    return all(built.get(v.name) == (v.body_sha256, fingerprint) for v in views)


def refresh_materialized(con: duckdb.DuckDBPyConnection, *, force: bool = False) -> list[str]:
    """Rebuild the materialised tables, upstream first, unless all were built from this data.

    Returns the names rebuilt (none when the data and the SQL are what they were built from).
    """
    if not force and materialized_are_current(con):
        return []
    views = [v for v in read_view_files() if v.materialized]
    fingerprint = data_fingerprint(con)
    for view in views:
        _materialize(con, view, fingerprint)
    return [v.name for v in views]


def _materialize(
    con: duckdb.DuckDBPyConnection, view: ViewFile, fingerprint: str | None = None
) -> None:
    fingerprint = fingerprint if fingerprint is not None else data_fingerprint(con)
    try:
        _build(con, view, fingerprint)
    except duckdb.OutOfMemoryException as exc:
        if not _limit_is_default(con):
            raise QueryError(str(view.path), str(exc).splitlines()[0]) from exc
        _build_uncapped(con, view, fingerprint)
    except duckdb.Error as exc:
        raise QueryError(str(view.path), str(exc).splitlines()[0]) from exc


def _build_uncapped(con: duckdb.DuckDBPyConnection, view: ViewFile, fingerprint: str) -> None:
    """Build `view` again under DuckDB's own limit (80% of RAM), then put the default back.

    why: the default cap keeps a run near 1 GiB, but a few steps cannot spill (the connections
    of an 8-million-packet capture); a run nobody asked to cap should not fail for it.
    """
    con.execute("RESET memory_limit")
    try:
        _build(con, view, fingerprint)
    except duckdb.Error as exc:
        raise QueryError(str(view.path), str(exc).splitlines()[0]) from exc
    finally:
        con.execute(f"SET memory_limit = {_quote(DEFAULT_MEMORY_LIMIT)}")


def _limit_is_default(con: duckdb.DuckDBPyConnection) -> bool:
    [(flag,)] = con.execute(f"select getvariable('{DEFAULT_LIMIT_VARIABLE}')").fetchall()
    return bool(flag)


def _build(con: duckdb.DuckDBPyConnection, view: ViewFile, fingerprint: str) -> None:
    """Materialise one view in its own transaction; a failure rolls it back."""
    try:
        con.execute("begin transaction")
        con.execute(f"create or replace table {view.name} as select * from {view.relation}")
        con.execute(
            f"comment on table {view.name} is "
            f"{_quote(view.question + ' (materialised at the end of analyze)')}"
        )
        con.execute(
            f"insert or replace into {MATERIALIZED_LOG} values (?, ?, ?, now())",
            [view.name, view.body_sha256, fingerprint],
        )
        con.execute("commit")
    except duckdb.Error:
        con.execute("rollback")
        raise


def fetch_dicts(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None
) -> list[dict[str, Any]]:
    """Run a query and return its rows as dicts keyed by column name."""
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
