"""The findings views: the contract, no false alarms on clean lab bundles, published outputs,
and `natlens analyze --fail-on` exiting 6 on every run while the database holds a finding."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.db import fetch_dicts, read_view_files
from pipeline.errors import ExitCode

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CONTRACT = [
    "finding",
    "severity",
    "node",
    "subject",
    "first_seen",
    "last_seen",
    "count",
    "summary",
    "evidence",
    "next_step",
]
runner = CliRunner()


def findings_of(db: Path) -> list[dict[str, Any]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return fetch_dicts(con, "select * from findings")
    finally:
        con.close()


def test_every_finding_view_is_in_the_union_with_the_contract_columns(tmp_path: Path) -> None:
    views = [v for v in read_view_files() if v.layer == "40_findings"]
    codes = {v.name for v in views if v.name.startswith("finding_")}
    union = next(v for v in views if v.name == "findings")
    assert codes == {name for name in codes if name in union.body}
    assert {"findings"} == {v.name for v in views} - codes
    db = tmp_path / "n.duckdb"
    assert runner.invoke(app, ["analyze", str(FIXTURES / "sysctl"), "--db", str(db)]).exit_code == 0
    con = duckdb.connect(str(db), read_only=True)
    for name in [*sorted(codes), "findings"]:
        columns = [r[0] for r in con.execute(f"describe select * from {name}").fetchall()]
        assert columns[: len(CONTRACT)] == CONTRACT, name
    con.close()


@pytest.mark.parametrize("bundle", ["lab-iptables", "lab-ipvs"])
def test_no_finding_on_a_clean_lab_bundle(bundle: str, analyzed: Any) -> None:
    db, _ = analyzed(REPO / "captures" / bundle)
    assert findings_of(db) == []


@pytest.mark.root
def test_no_finding_on_fresh_clean_lab_bundles(fresh_lab_bundles: dict[str, Path]) -> None:
    for key, bundle in fresh_lab_bundles.items():
        db = Path(str(bundle) + ".findings.duckdb")
        result = runner.invoke(app, ["analyze", str(bundle), "--db", str(db), "-q"])
        assert result.exit_code == 0, (key, result.stderr)
        assert findings_of(db) == [], (key, findings_of(db))


def test_published_conntrack_stats_with_invalid_packets(tmp_path: Path) -> None:
    """google/nftables#138: `conntrack -S` of a Debian 11 host, 112 invalid on cpu 1."""
    db = tmp_path / "n.duckdb"
    sample = FIXTURES / "conntrack" / "google-nftables-138-S.txt"
    result = runner.invoke(app, ["analyze", str(sample), "--node", "host", "--db", str(db)])
    assert result.exit_code == 0, result.stderr
    [row] = findings_of(db)
    assert (row["finding"], row["severity"], row["node"]) == (
        "conntrack_insert_failures",
        "info",
        "host",
    )
    assert row["subject"] == "conntrack -S invalid"
    assert row["count"] == 112
    assert row["evidence"] == "google-nftables-138-S.txt:1-4"
    assert "4 CPUs" in row["summary"]


def test_counters_rising_between_two_snapshots_are_an_error(tmp_path: Path) -> None:
    """Two published snapshots of one node, in name order: the invalid counter rose."""
    bundle = tmp_path / "b" / "host"
    bundle.mkdir(parents=True)
    sample = (FIXTURES / "conntrack" / "google-nftables-138-S.txt").read_text()
    (bundle / "conntrack-S-1.txt").write_text(sample.replace("invalid=112", "invalid=100"))
    (bundle / "conntrack-S-2.txt").write_text(sample)
    db = tmp_path / "n.duckdb"
    assert runner.invoke(app, ["analyze", str(tmp_path / "b"), "--db", str(db)]).exit_code == 0
    [row] = findings_of(db)
    assert (row["severity"], row["count"]) == ("warning", 12)
    assert row["evidence"] == (
        "b/host/conntrack-S-1.txt:1-4 (100) -> b/host/conntrack-S-2.txt:1-4 (112)"
    )


def test_fail_on_exits_6_on_every_run_while_a_finding_is_there(tmp_path: Path) -> None:
    files = tmp_path / "in"
    files.mkdir()
    shutil.copy(FIXTURES / "sysctl" / "damaged-sysctl.txt", files / "sysctl.txt")
    shutil.copy(FIXTURES / "conntrack" / "google-nftables-138-S.txt", files / "ct-S.txt")
    db = str(tmp_path / "n.duckdb")
    args = ["analyze", str(files), "--db", db, "-q"]
    # a table 99.9% full is a warning, 112 invalid packets are info: no error
    assert runner.invoke(app, [*args, "--fail-on", "error"]).exit_code == ExitCode.OK
    for _ in range(2):  # the second run loads nothing new: judged on the database again
        result = runner.invoke(app, [*args, "--fail-on", "warning"])
        assert result.exit_code == ExitCode.FINDINGS == 7
        assert "findings: 1 warning" in result.stderr
    assert runner.invoke(app, args).exit_code == ExitCode.OK
    # the table is full: now an error
    (files / "sysctl.txt").write_text(
        "net.netfilter.nf_conntrack_count = 262144\nnet.netfilter.nf_conntrack_max = 262144\n"
    )
    result = runner.invoke(app, [*args, "--fail-on", "error"])
    assert result.exit_code == ExitCode.FINDINGS
    assert "findings: 1 error" in result.stderr


def test_fail_on_is_zero_on_a_clean_bundle_and_a_bad_level_is_a_usage_error(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "n.duckdb")
    result = runner.invoke(
        app, ["analyze", str(FIXTURES / "conntrack" / "lab-S.txt"), "--db", db, "-q",
              "--fail-on", "warning"]
    )  # fmt: skip
    assert result.exit_code == ExitCode.OK, result.stderr
    result = runner.invoke(app, ["analyze", str(tmp_path), "--db", db, "--fail-on", "info"])
    assert result.exit_code == ExitCode.USAGE
