"""The database natlens writes is in DuckDB's v2.0.0 storage format, which the oldest DuckDB
natlens supports (the lower bound of its duckdb requirement) opens, views and all."""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import duckdb
import pytest

from pipeline.db import STORAGE_VERSION, connect

REPO = Path(__file__).resolve().parent.parent


def duckdb_requirement() -> tuple[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (spec,) = [d for d in project["dependencies"] if re.match(r"duckdb\b", d)]
    match = re.fullmatch(r"duckdb>=([\d.]+),<([\d.]+)", spec)
    assert match, f"duckdb requirement is not a closed range: {spec}"
    return match.group(1), match.group(2)


def _full(version: str) -> str:
    """2.0 -> 2.0.0"""
    return ".".join((version.split(".") + ["0", "0"])[:3])


def storage_tag(path: Path) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        [(tags,)] = con.execute(
            "select tags from duckdb_databases() where path = ?", [str(path)]
        ).fetchall()
    finally:
        con.close()
    return str(tags["storage_version"])


def test_storage_version_is_the_oldest_supported_duckdb(tmp_path: Path) -> None:
    oldest, below = duckdb_requirement()
    assert STORAGE_VERSION == "v" + _full(oldest)
    running = tuple(map(int, duckdb.__version__.split(".")[:3]))
    assert tuple(map(int, _full(oldest).split("."))) <= running < (int(below),)
    db = tmp_path / "new.duckdb"
    connect(db).close()
    assert storage_tag(db) == f"{STORAGE_VERSION}+"
    # the format is the file's: opening and writing again later keeps it
    con = connect(db)
    con.execute("create table t as select 1 as x")
    con.close()
    assert storage_tag(db) == f"{STORAGE_VERSION}+"


def test_oldest_supported_duckdb_opens_the_database(tmp_path: Path) -> None:
    """Opened by the oldest supported duckdb wheel in a throwaway venv (fetched by pip)."""
    oldest, _ = duckdb_requirement()
    db = tmp_path / "natlens.duckdb"
    con = connect(db)
    con.execute("insert into natlens_empty__raw_packets by name select now()::timestamptz as ts")
    con.close()
    venv = tmp_path / "old"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    fetched = subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q",
         f"duckdb=={_full(oldest)}"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    if fetched.returncode != 0:
        pytest.skip(f"pip cannot fetch duckdb {oldest}: {fetched.stderr.strip()[-200:]}")
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    # numpy etc. for duckdb's Python side come from this environment
    (Path(purelib) / "zz_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    script = (
        "import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
        "print(duckdb.__version__); "
        "print(con.execute('select count(*) from duckdb_views() where not internal')"
        ".fetchall()[0][0]); "
        "print(con.execute('select count(*) from flows').fetchall()[0][0]); "
        "print(con.execute('select count(*) from natlens_empty__raw_packets').fetchall()[0][0])"
    )
    result = subprocess.run(
        [python, "-c", script, str(db)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    version, views, flows, packets = result.stdout.split()
    assert version.startswith(oldest)
    assert int(views) > 50
    assert int(flows) == 0 and int(packets) == 1
