"""Reports are written whole or not at all: a full disk leaves the previous report as it was.

The full disk is real: a 64 KiB tmpfs (root only) filled to the last byte.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.atomic import write_text_atomic
from pipeline.db import connect
from pipeline.errors import ExitCode

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "captures" / "seed-kind-ipvs"
OLD_REPORT = "# natlens report\n\nthe previous good report\n"


def _natlens(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_replaces_the_file_and_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "report.md"
    path.write_text(OLD_REPORT)
    path.chmod(0o640)
    write_text_atomic(path, "new ✓\n")
    assert path.read_text(encoding="utf-8") == "new ✓\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


def test_a_new_file_gets_the_umask_permissions(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_text_atomic(tmp_path / "new.md", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.md").stat().st_mode) == 0o640


def test_a_link_is_written_through(tmp_path: Path) -> None:
    (tmp_path / "real.md").write_text(OLD_REPORT)
    (tmp_path / "link.md").symlink_to("real.md")
    write_text_atomic(tmp_path / "link.md", "new\n")
    assert (tmp_path / "link.md").is_symlink()
    assert (tmp_path / "real.md").read_text() == "new\n"


def test_report_into_a_missing_folder_is_one_line_exit_4(tmp_path: Path) -> None:
    db = tmp_path / "n.duckdb"
    connect(db).close()
    out = tmp_path / "missing" / "report.md"
    run = _natlens("report", "--db", db, "-o", out)
    assert run.returncode == ExitCode.DATABASE
    assert run.stderr.splitlines() == [
        f"{out}: error: cannot write report: No such file or directory"
    ]


@pytest.fixture
def full_fs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs holding an old report, filled until a write fails with ENOSPC."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a tmpfs")
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        (mountpoint / "report.md").write_text(OLD_REPORT)
        with (mountpoint / "filler").open("wb", buffering=0) as filler:
            with pytest.raises(OSError) as full:
                while True:
                    filler.write(b"\0" * 4096)
            assert full.value.errno == errno.ENOSPC
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)


@pytest.mark.root
def test_a_full_disk_keeps_the_previous_report(tmp_path: Path, full_fs: Path) -> None:
    report = full_fs / "report.md"
    db = tmp_path / "n.duckdb"
    expected = [f"{report}: error: cannot write report: No space left on device"]
    analyzed = _natlens("analyze", SEED, "--db", db, "-o", report, "--quiet")
    assert analyzed.returncode == ExitCode.DATABASE, analyzed.stderr
    # before it, the seed's rejected records (the author's '...' elisions), one line each
    assert "Traceback" not in analyzed.stderr
    assert analyzed.stderr.splitlines()[-1:] == expected
    assert analyzed.stderr.count("cannot write report") == 1
    assert report.read_text() == OLD_REPORT
    reported = _natlens("report", "--db", db, "-o", report)
    assert reported.returncode == ExitCode.DATABASE, reported.stderr
    assert reported.stderr.splitlines() == expected
    assert report.read_text() == OLD_REPORT
    assert sorted(p.name for p in full_fs.iterdir()) == ["filler", "report.md"]  # no temp left
    # the loads were kept: with room again, the report is written from the same database
    (full_fs / "filler").unlink()
    again = _natlens("report", "--db", db, "-o", report)
    assert again.returncode == 0, again.stderr
    assert report.read_text().startswith("# ") and report.read_text() != OLD_REPORT
