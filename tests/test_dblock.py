"""Overlapping runs (issue 13): one analyze per database at a time, readers side by side.

- two analyzes started together with --wait both end cleanly and the result equals one run;
- without --wait the second names what holds the lock (pid, command, start) and exits 6;
- `sql` and `report` open a finished database read-only: they work while another reader has it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.dblock import LockedError, exclusive, lock_path_for, read_holder
from pipeline.errors import ExitCode
from tests.connections_checks import copy_without

REPO = Path(__file__).resolve().parent.parent
LAB = REPO / "captures" / "lab-iptables"


def natlens(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab bundle without its pcaps: a quick analyze that still builds connections."""
    return copy_without(LAB, tmp_path_factory.mktemp("bundle"), ".pcap")


def answers(db: Path) -> dict[str, object]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {
            "files": con.execute(
                "select bundle_id, node, source_file, kind, records_read, records_parsed, "
                "records_rejected, status from ingest_files order by all"
            ).fetchall(),
            "connections": con.execute(
                "select * exclude (legs) from connections order by all"
            ).fetchall(),
            "conntrack": con.execute("select count(*) from conntrack_entries").fetchall(),
        }


def test_lock_names_its_holder_and_waits(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    with exclusive(db, command="natlens analyze A"):
        holder = read_holder(lock_path_for(db))
        assert holder.pid == os.getpid() and holder.command == "natlens analyze A"
        started = time.monotonic()
        with pytest.raises(LockedError) as caught, exclusive(db, wait_s=0.5):
            pass
        assert 0.5 <= time.monotonic() - started < 3
        text = str(caught.value)
        assert f"pid {os.getpid()} (natlens analyze A)" in text and "after waiting 0.5 s" in text
    with exclusive(db, wait_s=0):  # released at the end of the block
        pass
    assert lock_path_for(db).exists()  # never deleted: see pipeline/dblock.py


def test_two_analyzes_with_wait_equal_one_run(bundle: Path, tmp_path: Path) -> None:
    one = tmp_path / "one.duckdb"
    result = CliRunner().invoke(app, ["analyze", str(bundle), "--db", str(one), "-q"])
    assert result.exit_code == 0, result.stderr
    both = tmp_path / "both.duckdb"
    runs = [natlens("analyze", str(bundle), "--db", str(both), "--wait", "300") for _ in "ab"]
    outs = [r.communicate(timeout=600) for r in runs]
    for run, (_, stderr) in zip(runs, outs, strict=True):
        assert run.returncode == 0, stderr
    # one of them loaded the files, the other found them unchanged
    summaries = sorted(line for _, e in outs for line in e.splitlines() if line.startswith("total"))
    assert len(summaries) == 2 and "unchanged)" in summaries[1], summaries
    assert answers(both) == answers(one)


def test_without_wait_the_second_names_the_holder_and_exits_6(bundle: Path, tmp_path: Path) -> None:
    db = tmp_path / "held.duckdb"
    first = natlens("analyze", str(bundle), "--db", str(db), "-q")
    deadline = time.monotonic() + 60
    while read_holder(lock_path_for(db)).pid != first.pid:
        assert time.monotonic() < deadline and first.poll() is None, "first run never held it"
        time.sleep(0.02)
    second = CliRunner().invoke(app, ["analyze", str(bundle), "--db", str(db), "-q"])
    _, first_err = first.communicate(timeout=600)
    assert first.returncode == 0, first_err
    assert second.exit_code == ExitCode.LOCKED == 6
    assert f"held.duckdb.lock: error: the database is in use by pid {first.pid} (" in second.stderr
    assert "analyze" in second.stderr and "started 20" in second.stderr
    assert "--wait" in second.stderr


def test_sql_and_report_work_while_another_reader_holds_the_database(
    bundle: Path, tmp_path: Path
) -> None:
    db = tmp_path / "read.duckdb"
    result = CliRunner().invoke(app, ["analyze", str(bundle), "--db", str(db), "-q"])
    assert result.exit_code == 0, result.stderr
    with duckdb.connect(str(db), read_only=True) as reader:
        expected = reader.execute("select count(*) from connections").fetchone()
        query = natlens(
            "sql", "select count(*) as n from connections", "--db", str(db), "--format", "csv"
        )
        report = natlens("report", "--db", str(db))
        q_out, q_err = query.communicate(timeout=300)
        r_out, r_err = report.communicate(timeout=300)
    assert query.returncode == 0, q_err
    assert q_out.split() == ["n", str(expected[0] if expected else None)]
    assert report.returncode == 0, r_err
    assert "## Connections through NAT" in r_out
    # read-only: a statement that writes is refused, the database is unchanged
    write = natlens("sql", "create table t as select 1", "--db", str(db))
    _, w_err = write.communicate(timeout=300)
    assert write.returncode == ExitCode.DATABASE and "read-only" in w_err.lower()
