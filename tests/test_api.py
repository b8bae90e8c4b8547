"""The Python API (natlens.analyze / connect / report) on a real bundle and a real DuckDB file."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest

import pipeline as natlens
from pipeline.errors import InputError

SEED = Path(__file__).resolve().parent.parent / "captures" / "seed-kind-ipvs"


def test_a_missing_path_raises_located_error_and_makes_no_database(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    with pytest.raises(InputError) as caught:
        natlens.analyze([tmp_path / "nope"], db=db)
    assert caught.value.path.endswith("nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no capture files found"):
        natlens.analyze(empty, db=db)
    assert not db.exists()


def test_analyze_connect_report(tmp_path: Path) -> None:
    db = tmp_path / "seed.duckdb"
    outcomes = natlens.analyze(SEED, db=str(db))
    by_status = {o.status for o in outcomes}
    assert "loaded" in by_status and "failed" not in by_status
    loaded = [o for o in outcomes if o.status == "loaded"]
    assert all(o.records_read == o.records_parsed + o.records_rejected for o in loaded)
    with natlens.connect(db) as con:
        nat = con.sql("select * from nat_translations").pl()
        assert isinstance(nat, pl.DataFrame) and nat.height > 0
        views = con.sql("select view_name from duckdb_views() where not internal").pl()
        assert "flows" in views["view_name"].to_list()
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("create table t (x int)")
        # the report opens beside this connection, and leaves its settings alone
        assert natlens.report(db).startswith("# natlens report")
        con.execute(f"copy (select 1 as x) to '{tmp_path / 'x.csv'}'")
        assert (tmp_path / "x.csv").read_text().split() == ["x", "1"]
    again = natlens.analyze([SEED], db=db)  # unchanged files are not loaded twice
    assert {o.status for o in again} <= {"unchanged", "skipped"}
    text = natlens.report(db)
    assert text.startswith("# natlens report")
    with natlens.connect(db, read_only=False) as con:
        con.execute("create temp table t as select 1 as x")
        assert con.sql("select count(*) as n from nat_translations").pl()["n"][0] == nat.height


def test_connect_refuses_a_missing_database(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such database"):
        natlens.connect(tmp_path / "missing.duckdb")
    with pytest.raises(InputError, match="no such database"):
        natlens.report(tmp_path / "missing.duckdb")
