"""Promised shares from ipvsadm schedulers: rr/wrr by weight, weight 0 gets nothing, lc/wlc/sh/mh
are not predictable from counts. Inputs are printed in ipvsadm's and conntrack's own formats."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from pipeline.cli import app

IPVSADM = """\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.0.0.1:80 wrr
  -> 10.1.0.1:8080                Masq    3      0          0
  -> 10.1.0.2:8080                Masq    1      0          0
  -> 10.1.0.3:8080                Masq    0      0          0
TCP  10.0.0.2:80 wlc
  -> 10.1.0.1:8080                Masq    1      0          0
  -> 10.1.0.2:8080                Masq    1      0          0
TCP  10.0.0.3:80 rr
  -> 10.1.0.1:8080                Masq    1      0          0
  -> 10.1.0.2:8080                Masq    0      0          0
"""


def _entry(vip: str, sport: int, backend: str) -> str:
    return (
        f"tcp      6 100 TIME_WAIT src=192.168.1.9 dst={vip} sport={sport} dport=80 "
        f"src={backend} dst=192.168.1.9 sport=8080 dport={sport} [ASSURED] mark=0 use=1"
    )


@pytest.fixture
def db(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    node = tmp_path / "bundle" / "node-a"
    node.mkdir(parents=True)
    (node / "ipvsadm.txt").write_text(IPVSADM)
    lines = [_entry("10.0.0.1", 40000 + i, "10.1.0.1" if i % 4 else "10.1.0.2") for i in range(8)]
    lines += [_entry("10.0.0.2", 41000 + i, "10.1.0.1") for i in range(3)]
    lines += [_entry("10.0.0.3", 42000 + i, "10.1.0.2") for i in range(2)]
    (node / "conntrack.txt").write_text("\n".join(lines) + "\n")
    path = tmp_path / "n.duckdb"
    result = CliRunner().invoke(app, ["analyze", str(tmp_path / "bundle"), "--db", str(path)])
    assert result.exit_code == 0, result.stderr
    con = duckdb.connect(str(path), read_only=True)
    yield con
    con.close()


def _shares(con: duckdb.DuckDBPyConnection, vip: str) -> dict[str, float | None]:
    rows = con.execute(
        "select backend_ip, expected_share from derived_expected_backends where dialed_ip = ?",
        [vip],
    ).fetchall()
    return dict(rows)


def test_wrr_shares_by_weight_and_weight_zero_gets_nothing(db: duckdb.DuckDBPyConnection) -> None:
    assert _shares(db, "10.0.0.1") == {"10.1.0.1": 0.75, "10.1.0.2": 0.25, "10.1.0.3": 0.0}


def test_wlc_is_not_predictable(db: duckdb.DuckDBPyConnection) -> None:
    assert _shares(db, "10.0.0.2") == {"10.1.0.1": None, "10.1.0.2": None}
    verdict = db.execute(
        "select distinct verdict from backend_distribution where dialed_ip = '10.0.0.2'"
    ).fetchall()
    assert verdict == [
        ("not predictable from the rules (scheduler or match depends on live state)",)
    ]


def test_traffic_to_a_drained_backend_is_flagged(db: duckdb.DuckDBPyConnection) -> None:
    assert _shares(db, "10.0.0.3") == {"10.1.0.1": 1.0, "10.1.0.2": 0.0}
    p_value, verdict = db.execute(
        "select distinct p_value, verdict from backend_distribution "
        "where dialed_ip = '10.0.0.3' and scope = 'all'"
    ).fetchone()  # type: ignore[misc]
    assert p_value == 0.0
    assert "no share: 10.1.0.2:8080" in verdict


def test_wrr_fit_test_is_computed(db: duckdb.DuckDBPyConnection) -> None:
    chi2, dof, p_value = db.execute(
        "select distinct chi2, dof, p_value from backend_distribution "
        "where dialed_ip = '10.0.0.1' and scope = 'all'"
    ).fetchone()  # type: ignore[misc]
    # observed 6/2 against expected 6/2: a perfect fit
    assert (chi2, dof, p_value) == (0.0, 1, 1.0)
