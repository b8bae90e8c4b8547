"""Issue 11 acceptance on kube-proxy nftables-mode lab bundles: SNAT predicted from nft rules.

The committed captures/lab-nftables bundle (vmap shape) is checked here; test_lab_fresh.py runs
the same checks on fresh bundles of both rule shapes on both addressing plans.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from tests.explain.test_lab_snat_decisions import (
    REPO,
    Analyzed,
    analyze,
    check_ground_truth,
    rows,
)

NUMGEN = re.compile(r"numgen random mod (\d+) (?:vmap|map) \{ ([^}]*) \}")
ENDPOINT = re.compile(r"__(\d+\.\d+\.\d+\.\d+)/(\d+)$|^(\d+\.\d+\.\d+\.\d+) \. (\d+)$")


def promised_shares(bundle: Path) -> dict[str, dict[tuple[str, int], float]]:
    """node -> (endpoint ip, port) -> slots / N, read from each node's nft-ruleset.txt."""
    out: dict[str, dict[tuple[str, int], float]] = {}
    for ruleset in sorted(bundle.glob("*/nft-ruleset.txt")):
        shares: dict[tuple[str, int], float] = {}
        for modulus, slots in NUMGEN.findall(ruleset.read_text()):
            for slot in slots.split(", "):
                target = slot.split(" : ", 1)[1].strip().removeprefix("goto ")
                m = ENDPOINT.search(target)
                assert m, target
                ip, port = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
                key = (ip, int(port))
                shares[key] = shares.get(key, 0.0) + 1 / int(modulus)
        out[ruleset.parent.name] = shares
    return out


def check_nft_bundle(bundle: Path, con: duckdb.DuckDBPyConnection) -> None:
    decisions = rows(con, "select * from snat_decisions")
    assert decisions, "no translations found"
    wrong = [d for d in decisions if d["agrees"] is not True]
    assert not wrong, wrong[:3]
    masquerades = 0
    for d in decisions:
        trail = [str(step) for step in d["trail"]]  # type: ignore[union-attr]
        # the walk went through kube-proxy's nftables table, named table/chain/position
        assert any(step.startswith("ip kube-proxy/nat-") for step in trail), d
        assert not d["unknowns"], d
        assert str(d["dnat_by"]).startswith("ip kube-proxy/"), d
        assert "dnat" in str(d["dnat_by"]), d
        if d["decision"] == "masquerade":
            masquerades += 1
            marked_by = str(d["mark_set_by"])
            # the mark-for-masquerade chain (vmap shape), the inlined mark (dnat-map shape) or
            # the hairpin set rule (dnat-map shape, no mark)
            assert (
                "mark-for-masquerade" in marked_by
                or "meta mark set meta mark | 0x00004000" in marked_by
                or "@hairpin-connections" in marked_by
            ), d
            assert any("masquerade fully-random" in step for step in trail), d
            assert d["is_random_fully"] is True
            assert d["egress_iface"]
        else:
            assert d["decision"] == "none", d
            assert d["mark_set_by"] is None, d
    assert masquerades, "no masqueraded translation in the bundle"
    check_ground_truth(bundle, con, decisions)
    # every rule of kube-proxy's table was read (nothing left as "cannot follow")
    unread = rows(
        con,
        "select distinct node, unknowns from snat_decisions where len(unknowns) > 0",
    )
    assert not unread, unread
    promised = promised_shares(bundle)
    expected = rows(con, "select * from derived_expected_backends")
    assert expected
    for r in expected:
        assert r["basis"] == "nftables numgen map (rule walk)", r
        share = promised[str(r["node"])][(str(r["backend_ip"]), int(r["backend_port"]))]  # type: ignore[call-overload]
        assert r["expected_share"] == pytest.approx(share, abs=1e-9), r
    dist = rows(con, "select * from backend_distribution where scope = 'all'")
    assert dist
    for r in dist:
        assert r["p_value"] is not None and 0.0 <= float(r["p_value"]) <= 1.0  # type: ignore[arg-type]
        assert r["dof"] == 2  # three endpoints per service in the lab


def test_committed_nftables_bundle_snat_predicted_for_every_translation(
    analyzed: Analyzed,
) -> None:
    bundle = REPO / "captures" / "lab-nftables"
    con = analyze(bundle, analyzed)
    try:
        check_nft_bundle(bundle, con)
    finally:
        con.close()


def test_text_and_json_dumps_give_the_same_kube_proxy_walk(analyzed: Analyzed) -> None:
    """`nft list ruleset` and `nft -j list ruleset` of one node: the same rules, terms and maps."""
    from pipeline.explain.nft_inputs import load_ruleset

    con = analyze(REPO / "captures" / "lab-nftables", analyzed)
    try:
        files = rows(
            con,
            "select distinct node, format, source_file from stg_nft__rules order by all",
        )
        by_node: dict[str, dict[str, str]] = {}
        for f in files:
            by_node.setdefault(str(f["node"]), {})[str(f["format"])] = str(f["source_file"])
        assert len(by_node) == 4
        for node, forms in by_node.items():
            text = load_ruleset(con, "lab-nftables", node, forms["text"])
            json = load_ruleset(con, "lab-nftables", node, forms["json"])
            kube = sorted(k for k in text.chains if k[1] == "kube-proxy")
            assert kube == sorted(k for k in json.chains if k[1] == "kube-proxy")
            for key in kube:
                assert [r.terms for r in text.chains[key]] == [r.terms for r in json.chains[key]]
                assert all(r.terms is not None for r in text.chains[key]), key
                # the JSON dump has handles, the text dump (printed without -a) positions
                assert all("/handle " in r.rule.ref for r in json.chains[key])
            assert {k: v for k, v in text.sets.items() if k[1] == "kube-proxy"} == {
                k: v for k, v in json.sets.items() if k[1] == "kube-proxy"
            }
            nat = [(b.key, b.hook, b.priority) for b in text.base if b.chain_type == "nat"]
            assert nat == [(b.key, b.hook, b.priority) for b in json.base if b.chain_type == "nat"]
    finally:
        con.close()
