"""Golden reports per sample bundle, and the seed write-up's questions answered.

Regenerate the golden files with `pytest tests/test_reports.py --update-golden` and review the diff.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from tests.golden import check_or_update

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden"
runner = CliRunner()


def _analyze(
    bundle: str, analyzed: Callable[[Path], tuple[Path, str]]
) -> tuple[str, duckdb.DuckDBPyConnection]:
    db, report = analyzed(REPO / "captures" / bundle)
    return report, duckdb.connect(str(db), read_only=True)


@pytest.mark.parametrize("bundle", ["seed-kind-ipvs", "lab-iptables", "lab-ipvs"])
def test_report_matches_golden(
    bundle: str, analyzed: Callable[[Path], tuple[Path, str]], update_golden: bool
) -> None:
    text, con = _analyze(bundle, analyzed)
    con.close()
    assert str(REPO) not in text and "/tmp" not in text  # no absolute paths
    golden = GOLDEN / bundle / "report.md"
    golden.parent.mkdir(parents=True, exist_ok=True)
    check_or_update(golden, text, update_golden)


def test_report_is_the_same_from_report_command(
    analyzed: Callable[[Path], tuple[Path, str]],
) -> None:
    db, text = analyzed(REPO / "captures" / "seed-kind-ipvs")
    again = runner.invoke(app, ["report", "--db", str(db)])
    assert again.exit_code == 0
    assert again.stdout == text


def test_seed_services_backends_and_translations(
    analyzed: Callable[[Path], tuple[Path, str]],
) -> None:
    text, con = _analyze("seed-kind-ipvs", analyzed)
    services = {r[0] for r in con.execute("select distinct service from ipvs_services").fetchall()}
    # the ClusterIP service, NodePort 30001 on every local address of every node, kube-dns
    assert "TCP 10.200.1.216:9000" in services
    for nodeport_vip in (
        "172.18.0.4",
        "172.18.0.5",
        "172.18.0.2",
        "172.18.0.3",
        "10.10.0.1",
        "10.10.2.1",
        "10.10.1.1",
        "10.10.3.1",
    ):
        assert f"TCP {nodeport_vip}:30001" in services
    assert {"TCP 10.200.1.10:53", "UDP 10.200.1.10:53", "TCP 10.200.1.10:9153"} <= services
    backends = con.execute(
        "select distinct backend_ip, backend_port from ipvs_backends "
        "where service = 'TCP 10.200.1.216:9000' order by all"
    ).fetchall()
    assert backends == [("10.10.1.2", 80), ("10.10.2.2", 80), ("10.10.3.2", 80)]
    translations = con.execute(
        "select client_ip, client_port, dialed_ip, dialed_port, backend_ip, backend_port, "
        "snat_ip, snat_port, nat_kind from nat_translations order by client_port"
    ).fetchall()
    assert translations == [
        (
            "172.18.0.6",
            34212,
            "172.18.0.5",
            30001,
            "10.10.1.2",
            80,
            "172.18.0.5",
            29038,
            "dnat+snat",
        ),
        (
            "172.18.0.6",
            34218,
            "172.18.0.5",
            30001,
            "10.10.3.2",
            80,
            "172.18.0.5",
            4766,
            "dnat+snat",
        ),
        (
            "172.18.0.6",
            34232,
            "172.18.0.5",
            30001,
            "10.10.2.2",
            80,
            "10.10.2.1",
            17574,
            "dnat+snat",
        ),
        (
            "172.18.0.6",
            55212,
            "172.18.0.5",
            30001,
            "10.10.2.2",
            80,
            "10.10.2.1",
            14677,
            "dnat+snat",
        ),
    ]
    con.close()
    for needle in ("10.200.1.216:9000", "10.200.1.10:53", "172.18.0.5:30001", "10.10.2.1"):
        assert needle in text


def test_seed_snat_classes_and_missing_inputs(
    analyzed: Callable[[Path], tuple[Path, str]],
) -> None:
    _, con = _analyze("seed-kind-ipvs", analyzed)
    rows = con.execute(
        "select backend_ip, snat_class, decision, missing_inputs from snat_decisions "
        "order by client_port"
    ).fetchall()
    con.close()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("10.10.1.2", "node IP", "unknown"),
        ("10.10.3.2", "node IP", "unknown"),
        ("10.10.2.2", "pod gateway", "unknown"),
        ("10.10.2.2", "pod gateway", "unknown"),
    ]
    for *_, missing in rows:
        assert any("iptables-save" in m for m in missing)
        assert any("ip -j route" in m for m in missing)
