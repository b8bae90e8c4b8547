"""Issue 4 acceptance: connections stitched across nodes, checked against the lab's ground truth.

On the committed lab bundles (no root) and on freshly generated ones (root, both modes):
- with conntrack: every request is in `connections` with the right backend, SNAT source, DNAT
  node and SNAT class;
- with every conntrack file removed (pcaps only): at least 99% right, and every other request is
  listed as unmatched or ambiguous, never matched wrongly;
- backend_distribution's packet-capture counts equal the ground truth's per backend;
- clock_offsets finds the nodes' common clock (and a skew put into one node's pcaps);
- the report has the per-service table and one example connection traced through its legs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from tests.conftest import FRESH_LAB_KEYS, FRESH_NFT_KEYS
from tests.connections_checks import (
    analyze,
    check_clock_offsets,
    check_connections,
    check_pcap_distribution,
    check_report,
    copy_without,
    rows,
    shift_pcaps,
)

REPO = Path(__file__).resolve().parent.parent
MODES = ["iptables", "ipvs"]
SERVICES = {"default/svc-clusterip:svc-webport", "default/svc-udp:svc-udpport"}


Analyzed = Callable[[Path], tuple[Path, str]]


def check_with_conntrack(bundle: Path, analyzed: Analyzed) -> None:
    db, report = analyzed(bundle)
    with duckdb.connect(str(db), read_only=True) as con:
        check_with_conntrack_db(bundle, con, report)


def check_with_conntrack_db(bundle: Path, con: duckdb.DuckDBPyConnection, report: str) -> None:
    outcome = check_connections(bundle, con)
    assert not outcome.wrong and outcome.right_share == 1.0, outcome.summary()
    evidence = {r["evidence"] for r in rows(con, "select evidence from connections")}
    assert evidence == {"both"}
    check_pcap_distribution(bundle, con)
    check_clock_offsets(con)
    check_report(report, SERVICES)
    failed = rows(con, "select count(*) as n from check_connections_conntrack_pcap_disagree")
    assert failed == [{"n": 0}]
    assert rows(con, "select count(*) as n from check_connections_leg_claimed_twice") == [{"n": 0}]


def check_pcaps_only(bundle: Path, tmp_path: Path) -> None:
    pcaps_only = copy_without(bundle, tmp_path / "pcaps-only", "conntrack")
    with analyze(pcaps_only, tmp_path / "pcap.duckdb") as con:
        check_pcaps_only_db(pcaps_only, con)


def check_pcaps_only_db(pcaps_only: Path, con: duckdb.DuckDBPyConnection) -> None:
    outcome = check_connections(pcaps_only, con)
    assert not outcome.wrong, outcome.summary()
    assert outcome.right_share >= 0.99, outcome.summary()
    # every request that is not matched is listed, as unmatched or ambiguous
    assert set(outcome.by_status) <= {"unmatched", "ambiguous"}, outcome.summary()
    assert {r["evidence"] for r in rows(con, "select evidence from connections")} == {"pcap"}
    check_pcap_distribution(pcaps_only, con)


@pytest.mark.parametrize("mode", MODES)
def test_committed_bundle_with_conntrack(mode: str, analyzed: Analyzed) -> None:
    check_with_conntrack(REPO / "captures" / f"lab-{mode}", analyzed)


@pytest.mark.parametrize("mode", MODES)
def test_committed_bundle_pcaps_only(mode: str, tmp_path: Path) -> None:
    check_pcaps_only(REPO / "captures" / f"lab-{mode}", tmp_path)


def test_committed_bundle_conntrack_only(tmp_path: Path) -> None:
    """Without pcaps every request is still there, from conntrack alone, with no legs."""
    bundle = copy_without(REPO / "captures" / "lab-iptables", tmp_path, ".pcap")
    with analyze(bundle, tmp_path / "ct-only.duckdb") as con:
        outcome = check_connections(bundle, con)
        found = rows(con, "select evidence, match_rule, n_legs from connections")
        offsets = rows(con, "select count(*) as n from clock_offsets")
    assert outcome.right_share == 1.0, outcome.summary()
    assert {(r["evidence"], r["match_rule"], r["n_legs"]) for r in found} == {
        ("conntrack", "conntrack tuple", 0)
    }
    assert offsets == [{"n": 0}]


def test_skewed_node_clock_is_measured_and_links_still_hold(tmp_path: Path) -> None:
    """worker2's pcaps 2.5 s late: clock_offsets says so, and linking does not depend on it."""
    bundle = copy_without(REPO / "captures" / "lab-iptables", tmp_path, "conntrack")
    shift_pcaps(bundle / "myk8s-worker2", 2.5)
    with analyze(bundle, tmp_path / "skewed.duckdb") as con:
        offsets = check_clock_offsets(
            con,
            {
                ("myk8s-control-plane", "myk8s-worker2"): 2500.0,
                ("myk8s-worker", "myk8s-worker2"): 2500.0,
            },
        )
        outcome = check_connections(bundle, con)
        # worker2 still carries the post-NAT legs of the connections it served
        served = rows(
            con,
            "select count(*) as n from connections "
            "where backend_ip = '10.10.1.2' and list_contains(nodes, 'myk8s-worker2')",
        )
        total = rows(con, "select count(*) as n from connections where backend_ip = '10.10.1.2'")
    assert {(o["node_a"], o["node_b"]) for o in offsets} >= {
        ("myk8s-control-plane", "myk8s-worker2"),
        ("myk8s-worker", "myk8s-worker2"),
    }
    assert not outcome.wrong and outcome.right_share == 1.0, outcome.summary()
    assert served == total


@pytest.mark.root
@pytest.mark.parametrize("key", FRESH_LAB_KEYS)
def test_fresh_bundle_with_conntrack(
    key: str, fresh_lab_bundles: dict[str, Path], analyzed: Analyzed
) -> None:
    check_with_conntrack(fresh_lab_bundles[key], analyzed)


@pytest.mark.root
@pytest.mark.parametrize("key", FRESH_LAB_KEYS)
def test_fresh_bundle_pcaps_only(
    key: str, fresh_lab_bundles: dict[str, Path], tmp_path: Path
) -> None:
    check_pcaps_only(fresh_lab_bundles[key], tmp_path)


@pytest.mark.root
@pytest.mark.parametrize("key", FRESH_NFT_KEYS)
def test_fresh_nftables_bundle_with_conntrack(
    key: str, fresh_nft_bundles: dict[str, Path], analyzed: Analyzed
) -> None:
    """kube-proxy's nftables mode: conntrack is the same, so connections need no change."""
    check_with_conntrack(fresh_nft_bundles[key], analyzed)


@pytest.mark.root
@pytest.mark.parametrize("key", FRESH_NFT_KEYS)
def test_fresh_nftables_bundle_pcaps_only(
    key: str, fresh_nft_bundles: dict[str, Path], tmp_path: Path
) -> None:
    check_pcaps_only(fresh_nft_bundles[key], tmp_path)
