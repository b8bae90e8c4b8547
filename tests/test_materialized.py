"""Materialised views: the tables hold what their live views compute, and are rebuilt exactly
when the data or the SQL changed."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb

from pipeline.analyze import load_file
from pipeline.bundle import discover
from pipeline.db import MATERIALIZED_LOG, connect, read_view_files, refresh_materialized
from pipeline.explain.run import recompute

REPO = Path(__file__).resolve().parent.parent
LAB = REPO / "captures" / "lab-iptables"
MATERIALIZED = [v.name for v in read_view_files() if v.materialized]


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def test_the_heavy_views_are_materialised_and_upstream_first() -> None:
    assert {"connections", "int_legs__sessionized"} <= set(MATERIALIZED)
    assert "flows" not in MATERIALIZED  # summarised once per capture, when it is loaded
    order = [v.name for v in read_view_files()]
    assert order.index("flows") < order.index("connections")
    assert order.index("int_legs__grouped") < order.index("int_connections__counted")


def test_tables_hold_exactly_what_the_live_views_compute(
    analyzed: Callable[[Path], tuple[Path, str]],
) -> None:
    db, _ = analyzed(LAB)
    con = duckdb.connect(str(db), read_only=True)
    try:
        for name in MATERIALIZED:
            kind = con.execute(
                "select table_type from information_schema.tables where table_name = ?", [name]
            ).fetchall()
            assert kind == [("BASE TABLE",)], name
            assert _count(con, f"select count(*) from {name}") > 0, name
            for a, b in ((name, f"{name}__live"), (f"{name}__live", name)):
                missing = f"select count(*) from (select * from {a} except all select * from {b})"
                assert _count(con, missing) == 0, f"{a} has rows {b} lacks"
    finally:
        con.close()


def test_refresh_happens_when_data_changes_and_only_then(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    (bundle / "myk8s-worker").mkdir(parents=True)
    shutil.copy(LAB / "myk8s-worker" / "eth0.pcap", bundle / "myk8s-worker")
    db = tmp_path / "n.duckdb"
    con = connect(db)
    [first] = discover([bundle])
    assert load_file(con, first).status == "loaded"
    assert refresh_materialized(con) == MATERIALIZED
    flows_one_file = _count(con, "select count(*) from flows")
    assert flows_one_file > 0
    assert refresh_materialized(con) == []  # same data, same SQL: nothing to do
    assert load_file(con, first).status == "unchanged"
    assert refresh_materialized(con) == []

    shutil.copy(LAB / "myk8s-worker" / "veth049fcc7b.pcap", bundle / "myk8s-worker")
    for f in discover([bundle]):
        load_file(con, f)
    assert refresh_materialized(con) == MATERIALIZED
    assert _count(con, "select count(*) from flows") > flows_one_file
    assert _count(con, "select count(distinct source_file) from flows") == 2
    con.close()


def test_refresh_happens_when_the_snat_explanations_change(tmp_path: Path) -> None:
    """connections carry each translation's SNAT class from derived_snat_decisions, which
    `recompute` rewrites (a newer natlens may explain differently): a change there rebuilds."""
    con = connect(tmp_path / "n.duckdb")
    for f in discover([REPO / "captures" / "seed-kind-ipvs"]):
        load_file(con, f)
    recompute(con)
    assert refresh_materialized(con) == MATERIALIZED
    assert refresh_materialized(con) == []
    classes = "select count(*) from connections where snat_class = 'node IP'"
    node_ip = _count(con, classes)
    assert node_ip > 0
    con.execute("update derived_snat_decisions set snat_class = 'other'")
    assert refresh_materialized(con) == MATERIALIZED
    assert _count(con, classes) == 0
    recompute(con)
    assert refresh_materialized(con) == MATERIALIZED
    assert _count(con, classes) == node_ip
    con.close()


def test_a_table_built_from_other_sql_is_rebuilt_when_the_database_is_opened(
    tmp_path: Path,
) -> None:
    db = tmp_path / "n.duckdb"
    con = connect(db)
    [f] = discover([LAB / "myk8s-worker" / "eth0.pcap"], node="myk8s-worker")
    load_file(con, f)
    refresh_materialized(con)
    want = _count(con, "select count(*) from flows")
    want = _count(con, "select count(*) from connections")
    # what an older natlens would have left: a table from different SQL, now stale
    con.execute("delete from connections")
    con.execute(f"update {MATERIALIZED_LOG} set body_sha256 = 'older' where name = 'connections'")
    con.close()
    con = connect(db)
    assert _count(con, "select count(*) from connections") == want
    assert refresh_materialized(con) == []
    con.close()


def test_a_step_that_cannot_stay_under_the_default_cap_runs_uncapped(
    analyzed: Callable[[Path], tuple[Path, str]], tmp_path: Path
) -> None:
    """Under a cap nobody asked for, a step DuckDB cannot fit runs again under DuckDB's own
    limit (and the cap is put back); under a cap the user gave, it is a clear error."""
    import pytest

    from pipeline.db import DEFAULT_MEMORY_LIMIT, _materialize
    from pipeline.errors import QueryError

    source, _ = analyzed(LAB)
    db = tmp_path / "n.duckdb"
    shutil.copy(source, db)
    [connections] = [v for v in read_view_files() if v.name == "connections"]
    for is_default in (False, True):
        con = connect(db, memory_limit="1GB", limit_is_default=is_default)
        try:
            con.execute("SET memory_limit = '1MB'")  # far too little for any join
            if not is_default:
                with pytest.raises(QueryError, match="Out of Memory"):
                    _materialize(con, connections, "fingerprint")
                continue
            _materialize(con, connections, "fingerprint")
            [(limit,)] = con.execute("select current_setting('memory_limit')").fetchall()
            scratch = duckdb.connect()
            scratch.execute(f"SET memory_limit = '{DEFAULT_MEMORY_LIMIT}'")
            assert (limit,) == scratch.execute("select current_setting('memory_limit')").fetchone()
            scratch.close()
            assert _count(con, "select count(*) from connections") > 0
        finally:
            con.close()
