"""natlens opens only DuckDB files it created, or a new or empty path; never fetches extensions.

Real files: a SQLite database from Python's sqlite3, a DuckDB file with a foreign table, a text
file, an empty file, a FIFO. A refused file is left byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipeline.db import CATALOG_LOG, connect
from pipeline.errors import ExitCode, QueryError

REPO = Path(__file__).resolve().parent.parent


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sqlite_file(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.execute("create table customers (id integer, name text)")
    con.execute("insert into customers values (1, 'x')")
    con.commit()
    con.close()
    return path


def _foreign_duckdb(path: Path) -> Path:
    con = duckdb.connect(str(path))
    con.execute("create table invoices (id integer)")
    con.execute("insert into invoices values (1)")
    con.close()
    return path


def _tables(path: Path) -> list[str]:
    con = duckdb.connect(str(path), read_only=True)
    rows = con.execute("select table_name from duckdb_tables() order by 1").fetchall()
    con.close()
    return [name for (name,) in rows]


def test_duckdb_files_carry_the_magic_bytes_the_check_reads(tmp_path: Path) -> None:
    path = _foreign_duckdb(tmp_path / "f.duckdb")
    assert path.read_bytes()[8:12] == b"DUCK"
    assert _sqlite_file(tmp_path / "s.db").read_bytes()[:16] == b"SQLite format 3\0"


def test_a_sqlite_file_is_refused_before_duckdb_opens_it(tmp_path: Path) -> None:
    path = _sqlite_file(tmp_path / "s.db")
    before = _sha(path)
    with pytest.raises(QueryError, match="a SQLite database; natlens opens only DuckDB files"):
        connect(path)
    assert _sha(path) == before


def test_a_text_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.duckdb"
    path.write_text("my notes, not a database\n")
    with pytest.raises(QueryError, match="not a DuckDB file; natlens opens only"):
        connect(path)
    assert path.read_text() == "my notes, not a database\n"


def test_a_duckdb_file_of_someone_else_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    path = _foreign_duckdb(tmp_path / "f.duckdb")
    before = _sha(path)
    with pytest.raises(QueryError, match="not a natlens database; natlens does not add its"):
        connect(path)
    assert _sha(path) == before
    assert _tables(path) == ["invoices"]


def test_a_fifo_is_refused_without_being_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(QueryError, match="not a regular file"):
        connect(tmp_path / "pipe")  # opening it to read the magic would block forever


@pytest.mark.parametrize("make", ["empty file", "empty duckdb", "natlens database"])
def test_new_empty_and_natlens_files_are_opened(tmp_path: Path, make: str) -> None:
    path = tmp_path / "n.duckdb"
    if make == "empty file":
        path.touch()  # e.g. from mktemp: DuckDB itself refuses a 0-byte file
    elif make == "empty duckdb":
        duckdb.connect(str(path)).close()
    else:
        connect(path).close()
    con = connect(path)
    assert con.execute(f"select count(*) from {CATALOG_LOG}").fetchall() == [(1,)]
    con.close()
    assert "raw_ingest_files" in _tables(path)


def test_extensions_are_never_installed_or_loaded_automatically(tmp_path: Path) -> None:
    con = connect(tmp_path / "n.duckdb")
    settings = con.execute(
        "select current_setting('autoinstall_known_extensions'), "
        "current_setting('autoload_known_extensions')"
    ).fetchall()
    loaded = con.execute(
        "select extension_name from duckdb_extensions() "
        "where loaded and install_mode <> 'STATICALLY_LINKED'"
    ).fetchall()
    with pytest.raises(duckdb.Error, match="httpfs"):  # not fetched: refused at once
        con.execute("select * from read_csv('https://example.invalid/x.csv')")
    con.close()
    assert settings == [(False, False)]
    assert loaded == []


@pytest.mark.parametrize("kind", ["sqlite", "foreign duckdb"])
def test_the_cli_exits_4_with_one_line(tmp_path: Path, kind: str) -> None:
    path = (
        _sqlite_file(tmp_path / "x.db")
        if kind == "sqlite"
        else _foreign_duckdb(tmp_path / "x.duckdb")
    )
    before = _sha(path)
    for args in (["sql", "select 1"], ["report"]):
        run = subprocess.run(
            [sys.executable, "-m", "pipeline", *args, "--db", str(path)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == ExitCode.DATABASE, run.stderr
        [line] = run.stderr.splitlines()
        assert line.startswith(f"{path}: error: "), line
        assert run.stdout == ""
    assert _sha(path) == before
