"""Issue 5 acceptance on freshly generated lab bundles (real kernel NAT, both modes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import FRESH_LAB_KEYS, FRESH_NFT_KEYS
from tests.explain.test_lab_nft import check_nft_bundle
from tests.explain.test_lab_snat_decisions import Analyzed, analyze, check_bundle, check_shares


@pytest.mark.root
@pytest.mark.parametrize("key", FRESH_LAB_KEYS)
def test_fresh_lab_bundle_snat_predicted_for_every_translation(
    key: str, fresh_lab_bundles: dict[str, Path], analyzed: Analyzed
) -> None:
    bundle = fresh_lab_bundles[key]
    con = analyze(bundle, analyzed)
    try:
        check_bundle(bundle, con)
        check_shares(con)
    finally:
        con.close()


@pytest.mark.root
@pytest.mark.parametrize("key", FRESH_NFT_KEYS)
def test_fresh_nftables_bundle_snat_predicted_for_every_translation(
    key: str, fresh_nft_bundles: dict[str, Path], analyzed: Analyzed
) -> None:
    """Issue 11: kube-proxy nftables mode, both rule shapes, both addressing plans."""
    bundle = fresh_nft_bundles[key]
    con = analyze(bundle, analyzed)
    try:
        check_nft_bundle(bundle, con)
    finally:
        con.close()
