"""Opening a database: built once from the schema and the SQL, re-created only when they differ."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from pipeline import db
from pipeline.db import CATALOG_LOG, ViewFile, connect, read_view_files


def _fail(*args: object, **kwargs: object) -> list[ViewFile]:
    raise AssertionError("apply_views ran on a current database")


def _views(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "select view_name from duckdb_views() where not internal and schema_name = 'main'"
    ).fetchall()
    return {name for (name,) in rows}


def test_a_current_database_is_opened_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "n.duckdb"
    connect(path).close()
    monkeypatch.setattr(db, "apply_views", _fail)
    con = connect(path)
    assert {v.relation for v in read_view_files()} <= _views(con)
    [(fingerprint,)] = con.execute(f"select fingerprint from {CATALOG_LOG}").fetchall()
    assert fingerprint == db.catalog_fingerprint(read_view_files())
    assert con.execute("select count(*) from flows").fetchall() == [(0,)]
    con.close()


def test_changed_sql_is_applied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "n.duckdb"
    connect(path).close()
    views = read_view_files()
    wrapped = "select * from (\n{}\n) where false"
    changed = [
        replace(v, body=wrapped.format(v.body)) if v.name == "ingest_errors" else v for v in views
    ]
    monkeypatch.setattr(db, "read_view_files", lambda: changed)
    con = connect(path)
    [(sql,)] = con.execute(
        "select sql from duckdb_views() where view_name = 'ingest_errors'"
    ).fetchall()
    assert "false" in sql.lower()
    [(fingerprint,)] = con.execute(f"select fingerprint from {CATALOG_LOG}").fetchall()
    assert fingerprint == db.catalog_fingerprint(changed) != db.catalog_fingerprint(views)
    con.close()


@pytest.mark.parametrize("drop", ["drop view nat_translations", "drop table connections"])
def test_a_dropped_view_or_table_is_created_again(tmp_path: Path, drop: str) -> None:
    path = tmp_path / "n.duckdb"
    con = connect(path)
    con.execute(drop)
    con.close()
    con = connect(path)
    assert {"nat_translations", "flows", "connections__live"} <= _views(con)
    assert con.execute("select count(*) from connections").fetchall() == [(0,)]
    con.close()
