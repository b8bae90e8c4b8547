"""Retention (issue 13): `natlens prune --keep N|AGE` removes the oldest bundles' rows, their
Parquet files and, given the folder of bundles, their folders; the rest is untouched."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.retention import Keep, choose, parse_keep, stamp_time
from tests.test_bundle_folder import LAB, STAMPS, make_folder


def test_parse_keep_and_stamps() -> None:
    assert parse_keep("7") == Keep(count=7)
    assert parse_keep("7d") == Keep(age=timedelta(days=7))
    assert parse_keep("12h") == Keep(age=timedelta(hours=12))
    for bad in ("", "7y", "-1", "d7"):
        with pytest.raises(ValueError):
            parse_keep(bad)
    assert stamp_time("20250101T120000Z") == datetime(2025, 1, 1, 12, tzinfo=UTC)
    assert stamp_time("2025-01-01T12:00:00.5Z") == datetime(2025, 1, 1, 12, tzinfo=UTC)
    assert stamp_time("lab-iptables") is None


def test_choose_by_count_and_by_age_never_an_untimed_bundle() -> None:
    ids = [*STAMPS, "lab-iptables"]
    now = datetime(2025, 1, 1, 0, 40, tzinfo=UTC)
    assert choose(ids, Keep(count=2), now) == ([STAMPS[0]], [*STAMPS[1:], "lab-iptables"])
    assert choose(ids, Keep(count=0), now)[0] == list(STAMPS)
    assert choose(ids, Keep(age=timedelta(minutes=20)), now)[0] == list(STAMPS[:2])
    assert choose(ids, Keep(age=timedelta(days=1)), now)[0] == []


def test_prune_keep_2_removes_the_oldest_bundle_everywhere(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    shutil.copy(LAB / "myk8s-worker" / "eth0.pcap", folder / STAMPS[0] / "myk8s-worker")
    shutil.copy(LAB / "myk8s-worker" / "eth0.pcap", folder / STAMPS[2] / "myk8s-worker")
    db = tmp_path / "n.duckdb"
    runner = CliRunner()
    assert runner.invoke(app, ["analyze", str(folder), "--db", str(db), "-q"]).exit_code == 0
    captures = db.parent / (db.name + ".d")
    before = _parquet_folders(captures)
    assert len(before) == 2

    result = runner.invoke(app, ["prune", "--keep", "2", str(folder), "--db", str(db)])
    assert result.exit_code == 0, result.stderr
    assert f"pruned {STAMPS[0]}" in result.stderr and "kept 2" in result.stderr
    assert not (folder / STAMPS[0]).exists() and (folder / STAMPS[1]).exists()
    with duckdb.connect(str(db), read_only=True) as con:
        left = {b for (b,) in con.execute("select distinct bundle_id from ingest_files").fetchall()}
        packets = con.execute("select count(*) from packets").fetchone()
    assert left == set(STAMPS[1:])
    assert packets is not None and packets[0] > 0  # the newer bundle's capture is kept
    assert len(_parquet_folders(captures)) == 1

    # the next scheduled analyze of the folder loads nothing old again
    again = runner.invoke(app, ["analyze", str(folder), "--db", str(db)])
    assert again.exit_code == 0 and STAMPS[0] not in again.stderr


def test_prune_bad_keep_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["prune", "--keep", "forever", "--db", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--keep 'forever'" in result.stderr


def _parquet_folders(data: Path) -> list[Path]:
    return sorted(p.parent for p in data.rglob("packets.parquet"))
