"""Open a natlens database for reading: read-only, with DuckDB's configuration locked.

Readers (`natlens sql`, `views --db`, `export`) open the file read-only, so they work beside
another read-only connection (a notebook). After setting it up they lock DuckDB's configuration:
no extension is installed or loaded, and no file outside the database's own data directory (and
the paths a caller names, such as an export's output) is read or written, whatever SQL is run.
A database whose derived tables are out of date is brought up to date first, read-write, and
then opened again read-only; if another process holds it open, that is said plainly.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import duckdb

from .db import (
    DUCKDB_MAGIC,
    DUCKDB_MAGIC_OFFSET,
    NO_NETWORK_CONFIG,
    SETTINGS_TABLE,
    catalog_is_current,
    connect,
    is_natlens_catalog,
    materialized_are_current,
    refresh_materialized,
)
from .errors import InputError, QueryError

NOT_NATLENS = (
    "not a natlens database; natlens reads only DuckDB files it created "
    "(make one with `natlens analyze PATH --db FILE`)"
)
LOCKED_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    **NO_NETWORK_CONFIG,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
}


def open_read_only(
    db: Path,
    *,
    allowed_paths: tuple[Path, ...] = (),
    note: Callable[[str], None] = lambda _: None,
    locked: bool = True,
) -> duckdb.DuckDBPyConnection:
    """The database `db`, current and read-only, its configuration locked.

    `allowed_paths` are files the SQL may write or read besides the data directory (an export's
    temporary file). `note` is told when derived tables were rebuilt first. `locked=False` (the
    Python API's natlens.connect) leaves the configuration open: a notebook may read its own files.
    Raises InputError (no such file) or QueryError (not natlens's, cannot be opened or rebuilt).
    """
    _check_file(db)
    con = _connect(db)
    try:
        current = catalog_is_current(con) and materialized_are_current(con)
    except duckdb.Error:
        current = False  # e.g. written by an older natlens that had no such tables yet
    if not current:
        con.close()
        rebuilt = _bring_up_to_date(db)
        if rebuilt:
            note(f"{db}: note: rebuilt {', '.join(rebuilt)} (they were out of date)")
        con = _connect(db)
    try:
        _settings(con)
        if locked:
            _lock(con, allowed_paths)
    except duckdb.Error as exc:
        con.close()
        raise QueryError(str(db), str(exc)) from exc
    return con


def open_current(db: Path) -> tuple[duckdb.DuckDBPyConnection, list[str]]:
    """Open `db` read-write with its derived tables current; returns the tables rebuilt.

    why: a run killed or failed before it rebuilt them left them stale; they are rebuilt here
    rather than read stale (a run stopped after its loads may not have explained them either).
    """
    # imported here: the rule walk is heavy and only this path needs it
    from .explain.run import recompute

    con = connect(db)
    try:
        if not materialized_are_current(con):
            recompute(con)
        rebuilt = refresh_materialized(con)
    except duckdb.Error as exc:
        con.close()
        raise QueryError(str(db), str(exc).splitlines()[0]) from exc
    except QueryError:
        con.close()
        raise
    return con, rebuilt


def _bring_up_to_date(db: Path) -> list[str]:
    try:
        con, rebuilt = open_current(db)
    except QueryError as exc:
        if "lock" in exc.msg.lower():
            raise QueryError(
                str(db),
                "its derived tables are out of date (a run stopped before its end, or another "
                "natlens version wrote it) and cannot be rebuilt while another process has it "
                "open; close that connection, or run `natlens analyze` again, then retry",
            ) from exc
        raise
    con.close()
    return rebuilt


def _check_file(db: Path) -> None:
    """Refuse a missing path, or one that is not a DuckDB file, before DuckDB opens it."""
    try:
        info = db.stat()
    except FileNotFoundError as exc:
        raise InputError(
            str(db), "no such database", hint="run `natlens analyze PATH --db FILE`"
        ) from exc
    except OSError as exc:
        raise InputError(str(db), f"cannot open: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise QueryError(str(db), f"not a regular file; {NOT_NATLENS}")
    try:
        with db.open("rb") as handle:
            head = handle.read(DUCKDB_MAGIC_OFFSET + len(DUCKDB_MAGIC))
    except OSError as exc:
        raise InputError(str(db), f"cannot open: {exc.strerror or exc}") from exc
    if head[DUCKDB_MAGIC_OFFSET:] != DUCKDB_MAGIC:
        raise QueryError(str(db), NOT_NATLENS)


def _connect(db: Path) -> duckdb.DuckDBPyConnection:
    try:
        con = duckdb.connect(str(db), read_only=True, config=LOCKED_CONFIG)
    except duckdb.Error as exc:
        raise QueryError(str(db), f"cannot open DuckDB file: {exc}") from exc
    if not is_natlens_catalog(con):
        con.close()
        raise QueryError(str(db), NOT_NATLENS)
    return con


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _settings(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    # why: as in db.connect, views hide row counts and the planner would pick nested loops
    con.execute("SET asof_loop_join_threshold = 0")


def _lock(con: duckdb.DuckDBPyConnection, allowed_paths: tuple[Path, ...]) -> None:
    row = con.execute(f"select value from {SETTINGS_TABLE} where key = 'data_dir'").fetchone()
    directories = [os.path.join(str(row[0]), "")] if row is not None else []
    if directories:
        con.execute(f"SET allowed_directories = [{', '.join(map(_quote, directories))}]")
    if allowed_paths:
        listed = ", ".join(_quote(str(p)) for p in allowed_paths)
        con.execute(f"SET allowed_paths = [{listed}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
