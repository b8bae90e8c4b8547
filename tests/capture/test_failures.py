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
