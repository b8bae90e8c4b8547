"""Oracle: the real nft in a throwaway network namespace (root only, skipped otherwise).

Each ruleset is loaded with ``nft -f``; the kernel then prints it as text (plain and ``-a``) and as
JSON (``-j``), and the rows natlens reads from the three must be the same (nft_compare.py lists the
few fields nft 1.0.6's JSON leaves out). The kube-proxy rulesets come from the lab generator in
both shapes, so the ingestor is tested on what kube-proxy's nftables mode looks like.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ingest.nft_compare import differences, parse

LAB = Path(__file__).resolve().parent.parent.parent / "captures" / "lab"
RULESETS = Path(__file__).parent / "nft_rulesets"
pytestmark = pytest.mark.root


def _run(ns: str, *cmd: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, *cmd],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nft")):
        pytest.skip("needs root, iproute2 and nft")
    name = f"natlens-nft-{os.getpid()}"
    try:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create a network namespace: {exc.stderr!r}")
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def _kube_proxy_ruleset(shape: str, plan: str) -> str:
    sys.path.insert(0, str(LAB))
    try:
        import lab_kproxy_nftables
        import lab_model
    finally:
        sys.path.remove(str(LAB))
    cluster = lab_model.build_cluster(lab_model.PLANS[plan])
    return lab_kproxy_nftables.nft_text(cluster, cluster.nodes[1], shape)


def _check_round_trip(ns: str, ruleset: str) -> int:
    _run(ns, "nft", "flush", "ruleset")
    _run(ns, "nft", "-f", "-", stdin=ruleset)
    plain = parse(_run(ns, "nft", "list", "ruleset"), "nft-ruleset")
    handles = parse(_run(ns, "nft", "-a", "list", "ruleset"), "nft-ruleset")
    as_json = parse(_run(ns, "nft", "-j", "list", "ruleset"), "nft-json")
    for chunk in (plain, handles, as_json):
        assert chunk.errors == []
    assert differences(handles, as_json, with_handles=True) == []
    assert differences(plain, as_json, with_handles=False) == []
    assert as_json.frames["raw_nft_rules"]["handle"].null_count() == 0
    return int(as_json.frames["raw_nft_rules"].height)


@pytest.mark.parametrize("shape", ["vmap", "dnat-map"])
@pytest.mark.parametrize("plan", ["kind", "kubeadm"])
def test_kube_proxy_table_reads_the_same_from_text_and_json(
    netns: str, shape: str, plan: str
) -> None:
    assert _check_round_trip(netns, _kube_proxy_ruleset(shape, plan)) > 20


def test_many_families_and_expressions_read_the_same(netns: str) -> None:
    assert _check_round_trip(netns, (RULESETS / "mixed-families.nft").read_text()) > 25
