"""The committed lab bundles are complete and agree with the kernel's own records (no root
needed): every ground-truth request is in the DNAT node's conntrack table (reply tuple = backend
-> RemoteAddr), in its conntrack events and, before and after NAT, in its packet capture."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lab.bundle_checks import check_bundle

CAPTURES = Path(__file__).resolve().parents[2] / "captures"


@pytest.mark.parametrize(("name", "ipvs_like"), [("lab-iptables", False), ("lab-ipvs", True)])
def test_committed_bundle_is_complete_and_consistent(name: str, ipvs_like: bool) -> None:
    check_bundle(CAPTURES / name, ipvs_like, requests_per_scenario=30)


def test_committed_nftables_bundle_is_complete_and_consistent() -> None:
    check_bundle(CAPTURES / "lab-nftables", False, requests_per_scenario=10, nft_shape="vmap")
