"""A real `natlens analyze` interrupted (SIGINT, SIGTERM) or killed (SIGKILL) while it decodes a
capture, or in the cross-capture step: one line and 130/143 (no traceback), and the next run
ends with exactly what a fresh run gives. Nothing half-written is ever read."""

from __future__ import annotations

import random
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from benchmarks import pcap_gen
from pipeline.capture import store
from tests.capture.helpers import REPO, assert_same, natlens, rows, start

BIG_PACKETS = 80_000
"""Enough packets that decoding and summarising one capture takes a second or more."""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two nodes of the lab bundle plus two generated captures of BIG_PACKETS packets."""
    root = tmp_path_factory.mktemp("interrupts") / "lab"
    src = REPO / "captures" / "lab-iptables"
    shutil.copytree(src / "cluster", root / "cluster")
    for node in ("myk8s-worker", "myk8s-worker2"):
        shutil.copytree(src / node, root / node)
    pcap_gen.generate(root / "myk8s-worker" / "big1.pcap", BIG_PACKETS)
    pcap_gen.generate(root / "myk8s-worker2" / "big2.pcap", BIG_PACKETS, request=120)
    return root


@pytest.fixture(scope="module")
def fresh(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("fresh") / "n.duckdb"
    natlens("analyze", str(bundle), "--db", str(db), "--quiet")
    return db


def _captures_in(bundle: Path) -> int:
    return sum(1 for p in bundle.rglob("*.pcap"))


def _in_capture(db: Path, bundle: Path) -> bool:
    tmp = db.with_name(db.name + ".d") / store.TMP
    return tmp.is_dir() and any((p / store.PACKETS_FILE).exists() for p in tmp.iterdir())


def _in_cross_step(db: Path, bundle: Path) -> bool:
    captures = db.with_name(db.name + ".d") / store.CAPTURES
    return captures.is_dir() and len(list(captures.iterdir())) == _captures_in(bundle)


PHASES: dict[str, Callable[[Path, Path], bool]] = {
    "capture": _in_capture,
    "cross-capture": _in_cross_step,
}


def _interrupt(
    bundle: Path, db: Path, phase: str, signum: int, delay: float = 0.0
) -> tuple[int, str]:
    process = start("analyze", str(bundle), "--db", str(db), "--quiet")
    deadline = time.monotonic() + 120
    while not PHASES[phase](db, bundle):
        assert process.poll() is None, f"finished before the {phase} step: {process.stderr}"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    time.sleep(delay)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


@pytest.mark.parametrize("phase", list(PHASES))
@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)]
)
def test_an_interrupted_run_is_finished_by_the_next(
    bundle: Path, fresh: Path, tmp_path: Path, phase: str, signum: int, code: int
) -> None:
    db = tmp_path / "n.duckdb"
    returncode, stderr = _interrupt(bundle, db, phase, signum)
    if returncode == 0:  # the step was over before the signal arrived: nothing to check
        pytest.skip(f"analyze finished before the signal ({phase})")
    assert returncode == code, stderr
    assert "Traceback" not in stderr
    if signum != signal.SIGKILL:
        assert stderr.strip().splitlines()[-1].startswith("interrupted (")
        assert len(stderr.strip().splitlines()) == 1, stderr
    natlens("analyze", str(bundle), "--db", str(db), "--quiet")
    assert_same(db, fresh)
    leftovers = db.with_name(db.name + ".d") / store.TMP
    assert not leftovers.exists() or not any(leftovers.iterdir())


def test_a_run_killed_at_a_random_moment_is_finished_by_the_next(
    bundle: Path, fresh: Path, tmp_path: Path
) -> None:
    """Property: wherever SIGKILL lands, the re-run equals a fresh run (two random moments)."""
    chooser = random.Random(20261203)
    for attempt in range(2):
        db = tmp_path / f"n{attempt}.duckdb"
        process = start("analyze", str(bundle), "--db", str(db), "--quiet")
        time.sleep(chooser.uniform(0.5, 5.0))
        process.kill()
        process.communicate(timeout=60)
        natlens("analyze", str(bundle), "--db", str(db), "--quiet")
        assert_same(db, fresh)


def test_report_after_a_kill_in_the_cross_capture_step_is_not_stale(
    bundle: Path, fresh: Path, tmp_path: Path
) -> None:
    """The derived tables a killed run did not rebuild are rebuilt by `report` before it reads
    them (it said "No TCP or UDP connections" from stale tables before)."""
    db = tmp_path / "n.duckdb"
    # why: half a second after the last capture's folder appears, it is recorded and the
    # derived tables are being rebuilt (seconds, for these captures)
    returncode, _ = _interrupt(bundle, db, "cross-capture", signal.SIGKILL, delay=0.5)
    if returncode == 0:
        pytest.skip("analyze finished before the signal")
    recorded = rows(
        db, "select count(*) from ingest_files where kind = 'pcap' and status = 'loaded'"
    )
    if recorded != [(_captures_in(bundle),)]:
        pytest.skip("killed before the last capture was recorded, not in the cross-capture step")
    ours = natlens("report", "--db", str(db))
    assert "note: rebuilt" in ours.stderr
    assert natlens("report", "--db", str(fresh)).stdout == ours.stdout
    assert_same(db, fresh)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_report_interrupted_while_it_rebuilds_writes_nothing_and_changes_nothing(
    fresh: Path, tmp_path: Path, signum: int, code: int
) -> None:
    """`natlens report` on a database whose derived tables are out of date rebuilds them
    (seconds here) before it renders; a signal then: one line, 130/143, no report file, and
    the next report is a fresh database's."""
    db = tmp_path / "n.duckdb"
    shutil.copy(fresh, db)  # its data directory stays the fresh database's (read only here)
    con = duckdb.connect(str(db))
    con.execute("update natlens_materialized set data_fingerprint = 'out of date'")
    con.close()
    report = tmp_path / "report.md"
    process = start("report", "--db", str(db), "-o", str(report))
    wal = db.with_name(db.name + ".wal")
    deadline = time.monotonic() + 120
    while not wal.exists():  # the rebuild has started writing
        if process.poll() is not None:
            pytest.skip("the report was done before its rebuild could be seen")
        assert time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    if process.returncode == 0:
        pytest.skip("the report was done before the signal")
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted (")
    assert not report.exists()
    again = natlens("report", "--db", str(db))
    assert again.stdout == natlens("report", "--db", str(fresh)).stdout
