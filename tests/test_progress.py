"""Progress of `natlens analyze` (issue 13): without a terminal, periodic plain status lines
with bytes and packets and each later step named with its time; nothing with --quiet; on a
terminal, a bar with bytes and packets."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from rich.console import Console
from typer.testing import CliRunner

import pipeline.cli
from pipeline.cli import app

NODE = Path(__file__).resolve().parent.parent / "captures" / "lab-iptables" / "myk8s-worker"
STATUS = re.compile(
    r"^natlens: loading: (\d+)/(\d+) files, [\d.]+ k?M?G?B of [\d.]+ k?M?G?B, (\d+) packets, "
    r"[\d.]+ k?M?G?B/s, ETA (\d+s|unknown)"
)
STEPS = ("explaining rules and routes", "building legs and connections", "rendering the report")


def _analyze(db: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NATLENS_PROGRESS_SECONDS": "0.2"}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "analyze", str(NODE), "--db", str(db), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_plain_status_lines_without_a_terminal_and_none_with_quiet(tmp_path: Path) -> None:
    db = tmp_path / "p.duckdb"
    run = _analyze(db, "-o", str(tmp_path / "r.md"))
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    status = [m for line in lines if (m := STATUS.match(line))]
    assert len(status) >= 2, run.stderr  # periodic, not one line at the end
    assert all(int(m[2]) == 10 for m in status)  # the node's ten files
    [total] = [line for line in lines if line.startswith("natlens: loading done in ")]
    packets = int(re.search(r"(\d+) packets", total)[1])  # type: ignore[index]
    with duckdb.connect(str(db), read_only=True) as con:
        [(pcap_records,)] = con.execute(
            "select sum(records_read) from raw_ingest_files where engine is not null"
        ).fetchall()
    assert packets == pcap_records > 0
    assert "10/10 files" in total
    for step in STEPS:
        assert any(re.match(rf"^natlens: {step} done in \d+\.\ds$", x) for x in lines), step
    assert "\x1b[" not in run.stderr  # no terminal codes in a log

    again = _analyze(tmp_path / "q.duckdb", "--quiet")
    assert again.returncode == 0, again.stderr
    assert "natlens:" not in again.stderr


def test_a_bar_with_bytes_and_packets_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=200, stderr=True)
    monkeypatch.setattr(pipeline.cli, "err", terminal)
    result = CliRunner().invoke(app, ["analyze", str(NODE), "--db", str(tmp_path / "t.duckdb")])
    assert result.exit_code == 0, screen.getvalue()
    text = screen.getvalue()
    assert re.search(r"[\d.]+/[\d.]+ kB", text)  # the bar's bytes done of total
    assert re.search(r"\d+ packets", text)
    for step in STEPS[:2]:
        assert f"natlens: {step} done in " in text
