"""A capture whose stage fails is stored as failed with its first cause, the other files load,
and the next run tries it again (it is never `unchanged`). The failure is real: the data
directory is a tmpfs too small for the capture's Parquet files (a full disk)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.capture.helpers import REPO, natlens, rows

pytestmark = pytest.mark.root


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a tmpfs")
    mountpoint = tmp_path / "data"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_a_capture_that_failed_is_loaded_by_the_next_run(small_disk: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    node = bundle / "myk8s-worker"
    node.mkdir(parents=True)
    src = REPO / "captures" / "lab-iptables" / "myk8s-worker"
    shutil.copy(src / "any.pcap", node)  # about 1 MB: its Parquet files do not fit in 64 KiB
    shutil.copy(src / "conntrack.txt", node)
    db = tmp_path / "n.duckdb"

    first = natlens("analyze", str(bundle), "--db", str(db), "--data-dir", str(small_disk),
                    check=False)  # fmt: skip
    assert first.returncode == 3, first.stderr
    assert "Traceback" not in first.stderr
    assert "b/myk8s-worker/any.pcap: error: OSError" in first.stderr
    assert "No space left on device" in first.stderr
    stored = rows(db, "select source_file, status, reason from ingest_files order by all")
    assert [(f, s) for f, s, _ in stored] == [
        ("b/myk8s-worker/any.pcap", "failed"),
        ("b/myk8s-worker/conntrack.txt", "loaded"),  # the other file loaded
    ]
    assert "No space left on device" in str(stored[0][2])
    assert not list((small_disk / "tmp").glob("*")) if (small_disk / "tmp").exists() else True

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    second = natlens("analyze", str(bundle), "--db", str(db))
    assert "b/myk8s-worker/any.pcap: pcap: read" in second.stderr  # tried again, not unchanged
    assert rows(db, "select status from ingest_files where kind = 'pcap'") == [("loaded",)]
    assert rows(db, "select count(*) > 1000 from packets") == [(True,)]
    third = natlens("analyze", str(bundle), "--db", str(db))
    assert "any.pcap: unchanged" in third.stderr


def _conntrack_lines(count: int) -> str:
    line = (
        "ipv4     2 tcp      6 86395 ESTABLISHED src=10.0.{a}.{b} dst=10.96.0.10 sport={p} "
        "dport=80 src=10.244.1.5 dst=10.0.{a}.{b} sport=8080 dport={p} [ASSURED] mark=0 use=2\n"
    )
    return "".join(
        line.format(a=i // 250 % 250, b=i % 250 + 1, p=1024 + i % 60000) for i in range(count)
    )


def test_a_full_disk_under_the_database_is_one_line_exit_4_and_the_next_run_completes(
    tmp_path: Path,
) -> None:
    """The database file is on a real tmpfs too small for the rows: the first cause (no space)
    is said in one line, exit 4; on a bigger disk the same command then loads everything."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        node = tmp_path / "b" / "w1"
        node.mkdir(parents=True)
        (node / "conntrack.txt").write_text(_conntrack_lines(40_000))  # about 7 MB of rows
        db = disk / "n.duckdb"
        report = disk / "r.md"
        full = natlens("analyze", str(tmp_path / "b"), "--db", str(db), "-o", str(report),
                       check=False)  # fmt: skip
        assert full.returncode == 4, full.stderr
        assert "Traceback" not in full.stderr
        assert "No space left on device" in full.stderr
        # one line besides the progress lines (`natlens: ...`, stderr is not a terminal here)
        said = [x for x in full.stderr.strip().splitlines() if not x.startswith("natlens: ")]
        assert len(said) == 1, full.stderr
        assert not report.exists()
        subprocess.run(["mount", "-o", "remount,size=256m", str(disk)], check=True)
        again = natlens("analyze", str(tmp_path / "b"), "--db", str(db), check=False)
        assert again.returncode == 0, again.stderr
        assert "read 40000 = parsed 40000 + rejected 0" in again.stderr
        assert rows(db, "select count(*) from conntrack_entries") == [(40_000,)]
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
