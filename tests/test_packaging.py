"""A non-editable install ships queries/ and reports/templates/ and runs from another directory."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_contains_sql_and_templates_and_runs_elsewhere(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(REPO),
        ],
        check=True,
    )
    (wheel,) = wheels.glob("natlens-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "pipeline/queries/30_answers/nat_translations.sql" in names
    assert "pipeline/templates/report.md.j2" in names
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "analyze",
            str(REPO / "captures" / "seed-kind-ipvs"),
            "--db",
            "x.duckdb",
            "-o",
            "report.md",
            "--quiet",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    probe = subprocess.run(
        [sys.executable, "-c", "import pipeline.resources as r; print(r.queries_dir())"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip().startswith(str(target))
    assert (elsewhere / "report.md").read_text().startswith("# natlens report")
