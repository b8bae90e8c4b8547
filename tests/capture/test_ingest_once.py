"""Captures are decoded once into Parquet files with their flow summaries; the database reads
those, and everything natlens answers is what the all-at-once SQL gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipeline.capture import store
from pipeline.db import data_dir, loaded_capture_ids
from tests.capture.helpers import REPO, assert_same, natlens, rows

LABS = [REPO / "captures" / name for name in ("lab-iptables", "lab-ipvs")]
PCAP_FIXTURES = REPO / "tests" / "fixtures" / "pcap"
ZEEK = REPO / "tests" / "fixtures" / "zeek"


def _except_all(con: duckdb.DuckDBPyConnection, a: str, b: str) -> int:
    row = con.execute(f"select count(*) from ({a} except all {b})").fetchone()
    assert row is not None
    return int(row[0])


def _analyze(bundle: Path, tmp: Path, *extra: str) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    db = tmp / "n.duckdb"
    natlens("analyze", str(bundle), "--db", str(db), "--quiet", *extra)
    return db


@pytest.mark.parametrize("bundle", [*LABS, ZEEK, PCAP_FIXTURES], ids=lambda p: p.name)
def test_stored_summaries_equal_the_sql_over_every_packet(bundle: Path, tmp_path: Path) -> None:
    """flows from the per-capture summaries = int_flows__summarized over all packets at once;
    connections, app_messages and snat_decisions built on them = the same views on the live
    flows (today's SQL path)."""
    db = _analyze(bundle, tmp_path)
    con = duckdb.connect(str(db))
    try:
        stored = "select * from stg_pcap__flows"
        live = "select * from int_flows__summarized"
        assert con.execute(f"select count(*) from ({stored})").fetchone()[0] > 0  # type: ignore[index]
        assert _except_all(con, stored, live) == 0
        assert _except_all(con, live, stored) == 0
        before = {
            name: con.execute(f"select * from {name}").fetchall()
            for name in ("flows", "app_messages", "snat_decisions", "connections__live")
        }
        con.execute("create or replace view raw_flows as select * from int_flows__summarized")
        for name, old_rows in before.items():
            new_rows = con.execute(f"select * from {name}").fetchall()
            assert sorted(new_rows, key=repr) == sorted(old_rows, key=repr), name
        materialized = "select * from connections"
        assert _except_all(con, materialized, "select * from connections__live") == 0
    finally:
        con.close()


def test_packets_counts_complete_records_and_any_parquet_reader_agrees(tmp_path: Path) -> None:
    """Cut and damaged captures too: packets holds one outer row per complete record."""
    db = _analyze(PCAP_FIXTURES, tmp_path)
    per_file = rows(
        db,
        "select f.source_file, f.records_parsed, f.records_rejected, "
        "  (select count(*) from packets p where p.source_file = f.source_file "
        "   and not p.is_inner) "
        "from ingest_files f where f.kind in ('pcap', 'pcapng')",
    )
    assert len(per_file) >= 15
    assert any(rejected > 0 for _, _, rejected, _ in per_file)  # the cut/damaged ones
    for source_file, parsed, _, outer_rows in per_file:
        assert outer_rows == parsed, source_file
    con = duckdb.connect(str(db), read_only=True)
    data = data_dir(con)
    ids = loaded_capture_ids(con)
    [(total,)] = con.execute("select count(*) from packets").fetchall()
    con.close()
    files = [data.capture_file(i, store.PACKETS_FILE) for i in ids]
    assert len(files) == len(per_file)
    assert pl.scan_parquet(files).select(pl.len()).collect().item() == total
    manifests = [data.capture_file(i, store.MANIFEST_FILE).read_text() for i in ids]
    assert all('"raw_packets"' in m for m in manifests)


def test_a_new_capture_among_loaded_ones_is_the_only_one_decoded(tmp_path: Path) -> None:
    """Add one, replace one, delete one: each run decodes only what changed, and the database
    equals a fresh run's on the same files."""
    src = REPO / "captures" / "lab-iptables"
    bundle = tmp_path / "lab-iptables"
    shutil.copytree(src, bundle)
    added = bundle / "myk8s-worker" / "veth049fcc7b.pcap"
    held = tmp_path / "held.pcap"
    shutil.move(added, held)
    db = tmp_path / "n.duckdb"
    natlens("analyze", str(bundle), "--db", str(db), "--quiet")
    captures = db.with_name(db.name + ".d") / store.CAPTURES
    before = {p.name: p.stat().st_mtime_ns for p in captures.iterdir()}

    shutil.move(held, added)  # add
    result = natlens("analyze", str(bundle), "--db", str(db))
    assert f"{bundle.name}/myk8s-worker/veth049fcc7b.pcap: pcap: read" in result.stderr
    assert result.stderr.count(": pcap: read") == 1  # no other capture decoded again
    after = {p.name: p.stat().st_mtime_ns for p in captures.iterdir()}
    assert len(after) == len(before) + 1
    assert all(after[k] == v for k, v in before.items())  # old folders untouched
    assert_same(db, _analyze(bundle, tmp_path / "fresh1"))

    # replace: a different capture under the same name; delete: a capture gone from the bundle
    shutil.copy(bundle / "myk8s-worker2" / "eth0.pcap", bundle / "myk8s-worker" / "eth0.pcap")
    (bundle / "myk8s-worker3" / "any.pcap").unlink()
    result = natlens("analyze", str(bundle), "--db", str(db))
    assert result.stderr.count(": pcap: read") == 1
    assert "myk8s-worker3/any.pcap: deleted" in result.stderr
    assert len(list(captures.iterdir())) == len(after) - 1  # replaced folder and deleted one gone
    assert_same(db, _analyze(bundle, tmp_path / "fresh2"))


def test_parallel_jobs_give_the_same_rows(tmp_path: Path) -> None:
    bundle = REPO / "captures" / "lab-ipvs"
    two = _analyze(bundle, tmp_path / "two", "--jobs", "2")
    assert_same(two, _analyze(bundle, tmp_path / "one", "--jobs", "1"))


def test_ray_local_gives_the_same_rows_as_one_job(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    bundle = REPO / "captures" / "lab-ipvs"
    ray_db = _analyze(bundle, tmp_path / "ray", "--ray", "local")
    assert_same(ray_db, _analyze(bundle, tmp_path / "one", "--jobs", "1"))


def test_data_dir_option_moves_the_parquet_files(tmp_path: Path) -> None:
    db = tmp_path / "n.duckdb"
    elsewhere = tmp_path / "parquet-here"
    natlens(
        "analyze",
        str(REPO / "captures" / "lab-ipvs" / "myk8s-worker2"),
        "--db",
        str(db),
        "--data-dir",
        str(elsewhere),
        "--quiet",
    )
    assert not db.with_name(db.name + ".d").exists()
    assert len(list((elsewhere / store.CAPTURES).iterdir())) == 3
    # readers find the data directory the database was built with
    result = natlens("sql", "--db", str(db), "select count(*) > 0 from packets", "--format", "csv")
    assert result.stdout.splitlines()[-1] == "true"
