"""The `natlens` command as a user runs it: exit codes, stderr diagnostics, stdout data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.errors import ExitCode

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "captures" / "seed-kind-ipvs"
LAB = REPO / "captures" / "lab-iptables"
runner = CliRunner()


def _counts(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    tables = [
        r[0]
        for r in con.execute(
            "select table_name from duckdb_tables() where table_name like 'raw_%'"
        ).fetchall()
    ]
    counts = {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in tables}  # type: ignore[index]
    con.close()
    return counts


def test_analyze_twice_changes_no_counts(tmp_path: Path) -> None:
    db = tmp_path / "n.duckdb"
    first = runner.invoke(app, ["analyze", str(SEED), "--db", str(db)])
    assert first.exit_code == 0, first.stderr
    before = _counts(db)
    assert before["raw_ingest_files"] > 0
    second = runner.invoke(app, ["analyze", str(SEED), "--db", str(db)])
    assert second.exit_code == 0, second.stderr
    assert _counts(db) == before
    assert "unchanged" in second.stderr


def test_changed_file_replaces_its_rows(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(SEED, bundle)
    db = tmp_path / "n.duckdb"
    assert runner.invoke(app, ["analyze", str(bundle), "--db", str(db)]).exit_code == 0
    target = bundle / "myk8s-worker" / "conntrack-L-src-172.18.0.6.txt"
    lines = target.read_text().splitlines(keepends=True)
    target.write_text("".join(lines[:2]))
    assert runner.invoke(app, ["analyze", str(bundle), "--db", str(db)]).exit_code == 0
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        "select count(*) from raw_ingest_files where source_file like '%172.18.0.6.txt'"
    ).fetchone()
    assert rows == (1,)
    con.close()


def test_missing_path_is_reported_and_other_files_still_load(tmp_path: Path) -> None:
    db = tmp_path / "n.duckdb"
    result = runner.invoke(app, ["analyze", str(tmp_path / "nope"), str(SEED), "--db", str(db)])
    assert result.exit_code == ExitCode.INPUT
    assert f"{tmp_path / 'nope'}: error: no such file or directory" in result.stderr
    assert _counts(db)["raw_ingest_files"] > 0


def test_unrecognised_and_binary_files_are_listed_as_skipped(tmp_path: Path) -> None:
    prose = tmp_path / "notes.txt"
    prose.write_text("we ran curl a few times and it worked\n")
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\x00\x01\x02garbage")
    db = tmp_path / "n.duckdb"
    result = runner.invoke(app, ["analyze", str(prose), str(blob), "--db", str(db)])
    assert result.exit_code == 0, result.stderr
    out = runner.invoke(
        app,
        [
            "sql",
            "--db",
            str(db),
            "--format",
            "jsonl",
            "select source_file, status, reason from ingest_files order by source_file",
        ],
    )
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(r["source_file"], r["status"]) for r in rows] == [
        ("blob.bin", "skipped"),
        ("notes.txt", "skipped"),
    ]
    assert "binary" in rows[0]["reason"]
    assert "not recognised" in rows[1]["reason"]


def test_sql_formats(tmp_path: Path) -> None:
    db = tmp_path / "n.duckdb"
    runner.invoke(app, ["analyze", str(SEED), "--db", str(db)])
    query = "select 1 as a, 'x|y' as b"
    csv = runner.invoke(app, ["sql", "--db", str(db), "--format", "csv", query]).stdout
    assert csv == "a,b\n1,x|y\n"
    out = runner.invoke(app, ["sql", "--db", str(db), "--format", "json", query]).stdout
    assert json.loads(out) == [{"a": 1, "b": "x|y"}]
    md = runner.invoke(app, ["sql", "--db", str(db), "--format", "markdown", query]).stdout
    assert md.splitlines()[2] == "| 1 | x\\|y |"
    table = runner.invoke(app, ["sql", "--db", str(db), query]).stdout
    assert table.splitlines()[0].split() == ["a", "b"]


def test_sql_error_is_located_not_a_traceback(tmp_path: Path) -> None:
    db = tmp_path / "n.duckdb"
    runner.invoke(app, ["analyze", str(SEED), "--db", str(db)])
    result = runner.invoke(app, ["sql", "--db", str(db), "select * from no_such_view"])
    assert result.exit_code == ExitCode.DATABASE
    assert result.stderr.startswith("query: error:")
    assert "Traceback" not in result.stderr


def test_report_and_sql_need_an_existing_database(tmp_path: Path) -> None:
    for args in (["report"], ["sql", "select 1"]):
        result = runner.invoke(app, [*args, "--db", str(tmp_path / "missing.duckdb")])
        assert result.exit_code == ExitCode.INPUT
        assert "no such database" in result.stderr


def test_views_lists_every_answer_view_with_its_question() -> None:
    result = runner.invoke(app, ["views", "--format", "tsv", "--no-header"])
    assert result.exit_code == 0
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    listed = {row[0]: row[3] for row in rows}
    kinds = {row[0]: row[2] for row in rows}
    assert kinds["connections"] == "table"
    assert kinds["flows"] == "view"  # over the summaries stored when each capture was loaded
    assert kinds["nat_translations"] == "view"
    for name in (
        "ingest_files",
        "ingest_errors",
        "conntrack_entries",
        "nat_translations",
        "ipvs_services",
        "ipvs_backends",
        "backend_distribution",
    ):
        assert listed[name].endswith("?"), name


def test_strict_exits_1_when_records_were_rejected(tmp_path: Path) -> None:
    # the seed bundle keeps the author's `...` elisions: rejected records, located
    result = runner.invoke(
        app, ["analyze", str(SEED), "--db", str(tmp_path / "n.duckdb"), "--strict"]
    )
    assert result.exit_code == ExitCode.RECORD_ERRORS
    assert "ipvsadm-Ln.txt:16: error:" in result.stderr
    again = runner.invoke(  # every file unchanged: the database still holds the rejections
        app, ["analyze", str(SEED), "--db", str(tmp_path / "n.duckdb"), "--strict"]
    )
    assert "unchanged" in again.stderr
    assert again.exit_code == ExitCode.RECORD_ERRORS


def test_memory_limit_is_applied_and_a_bad_one_is_a_usage_error(tmp_path: Path) -> None:
    from pipeline.db import connect

    con = connect(tmp_path / "m.duckdb", memory_limit="300MB")
    [(limit,)] = con.execute("select current_setting('memory_limit')").fetchall()
    con.close()
    assert limit.endswith("MiB") and 280 < float(limit.split()[0]) < 300, limit
    result = runner.invoke(
        app, ["analyze", str(SEED), "--db", str(tmp_path / "n.duckdb"), "--memory-limit", "lots"]
    )
    assert result.exit_code == ExitCode.USAGE
    assert not (tmp_path / "n.duckdb").exists()
    result = runner.invoke(
        app,
        ["analyze", str(SEED), "--db", str(tmp_path / "n.duckdb"), "--memory-limit", "256MB", "-q"],
    )
    assert result.exit_code == ExitCode.OK, result.stderr


@pytest.mark.parametrize("limit", ["1MB", "8MB"])
def test_running_out_of_memory_is_a_database_error_not_a_traceback(
    tmp_path: Path, limit: str
) -> None:
    result = runner.invoke(
        app,
        ["analyze", str(LAB), "--db", str(tmp_path / "n.duckdb"), "--memory-limit", limit, "-q"],
    )
    assert result.exit_code == ExitCode.DATABASE, result.stderr
    assert "Out of Memory" in result.stderr
    assert "Traceback" not in result.stderr
