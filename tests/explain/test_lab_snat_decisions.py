"""Issue 5 acceptance on the lab bundles: every SNAT source predicted from the rules and routes.

The lab bundles come from real kernel NAT in network namespaces (captures/lab); their
ground_truth.csv records what each backend saw (RemoteAddr) and which node did the DNAT.
The committed bundles are checked here; tests/explain/test_lab_fresh.py regenerates them.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
BUNDLES = ["lab-iptables", "lab-ipvs"]
GT_CLASS = {"none": "none", "node_ip": "node IP", "pod_gateway": "pod gateway"}


Analyzed = Callable[[Path], tuple[Path, str]]


def analyze(bundle: Path, analyzed: Analyzed) -> duckdb.DuckDBPyConnection:
    db, _ = analyzed(bundle)
    return duckdb.connect(str(db), read_only=True)


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, object]]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def check_bundle(bundle: Path, con: duckdb.DuckDBPyConnection) -> None:
    decisions = rows(con, "select * from snat_decisions")
    assert decisions, "no translations found"
    # predicted_snat_ip equals observed_snat_ip for 100% of translations
    wrong = [d for d in decisions if d["agrees"] is not True]
    assert not wrong, wrong[:3]
    for d in decisions:
        if d["decision"] == "masquerade":
            # the trail names the KUBE-MARK-MASQ rule that set the mark, or says no rule did
            # (IPVS mode's hairpin MASQUERADE matches ipset KUBE-LOOP-BACK without a mark)
            if d["mark_set_by"] is None:
                assert str(d["reason"]).startswith("no rule set a mark"), d
                assert any("KUBE-LOOP-BACK" in step for step in d["trail"]), d  # type: ignore[union-attr]
            else:
                assert "KUBE-MARK-MASQ" in str(d["mark_set_by"]), d
            assert any("MASQUERADE" in step for step in d["trail"]), d  # type: ignore[union-attr]
            assert d["egress_iface"]
        else:
            assert d["decision"] == "none", d
            assert "no rule marked" in str(d["reason"]) or "did not lead" in str(d["reason"])
    check_ground_truth(bundle, con, decisions)


def check_ground_truth(
    bundle: Path, con: duckdb.DuckDBPyConnection, decisions: list[dict[str, object]]
) -> None:
    """Each request of ground_truth.csv is one decision with the backend and source it saw."""
    by_key = {
        (d["node"], d["client_ip"], d["client_port"], d["dialed_ip"], d["dialed_port"]): d
        for d in decisions
    }
    # -L, -o extended and -E of one node describe each connection once: still one row
    assert len(by_key) == len(decisions)
    evidence = {
        r[0] for r in con.execute("select distinct evidence from nat_translations").fetchall()
    }
    assert evidence == {"default,event,extended"}, evidence
    with (bundle / "ground_truth.csv").open() as handle:
        truth = list(csv.DictReader(handle))
    assert truth
    for gt in truth:
        key = (
            gt["dnat_node"],
            gt["client_ip"],
            int(gt["client_port"]),
            gt["dialed_ip"],
            int(gt["dialed_port"]),
        )
        d = by_key.get(key)
        assert d is not None, f"request {gt['request_id']} missing from snat_decisions"
        assert (d["backend_ip"], d["backend_port"]) == (gt["backend_ip"], int(gt["backend_port"]))
        assert (d["observed_snat_ip"], d["observed_snat_port"]) == (
            gt["remote_ip"],
            int(gt["remote_port"]),
        )
        assert d["snat_class"] == GT_CLASS[gt["snat_class"]], (gt, d)


def check_shares(con: duckdb.DuckDBPyConnection) -> None:
    dist = rows(con, "select * from backend_distribution where scope = 'all'")
    assert dist
    for r in dist:
        # three endpoints: 1/3 each, from the 0.33333333349/0.5 cascade or IPVS rr
        assert r["expected_share"] == pytest.approx(1 / 3, abs=1e-4), r
        assert r["p_value"] is not None and 0.0 <= float(r["p_value"]) <= 1.0  # type: ignore[arg-type]
        assert r["dof"] == 2


@pytest.mark.parametrize("name", BUNDLES)
def test_committed_lab_bundle_snat_predicted_for_every_translation(
    name: str, analyzed: Analyzed
) -> None:
    bundle = REPO / "captures" / name
    con = analyze(bundle, analyzed)
    try:
        check_bundle(bundle, con)
        check_shares(con)
    finally:
        con.close()


def test_iptables_cascade_shares_are_exact(analyzed: Analyzed) -> None:
    con = analyze(REPO / "captures" / "lab-iptables", analyzed)
    expected = rows(con, "select * from derived_expected_backends")
    con.close()
    assert expected
    for r in expected:
        assert r["basis"] == "iptables statistic (rule walk)"
        assert r["expected_share"] == pytest.approx(1 / 3, abs=1e-9)


def test_report_explains_local_and_remote_nodeport_snat(analyzed: Analyzed) -> None:
    _, text = analyzed(REPO / "captures" / "lab-iptables")
    why = text.split("## Why was it SNATed?", 1)[1].split("## Backend distribution", 1)[0]
    gateway = why.split("tcp 172.18.0.5:30001", 1)[1]
    assert "pod gateway" in why and "node IP" in why
    assert "KUBE-MARK-MASQ" in gateway and "MASQUERADE" in gateway
    assert "10.10.2.1" in gateway  # the local backend sees the pod gateway address
    assert "172.18.0.5" in why.split(": node IP", 1)[1]  # remote backends see the node IP
    assert "sequenceDiagram" in why and "xychart-beta" in text
    assert "p = " in text
