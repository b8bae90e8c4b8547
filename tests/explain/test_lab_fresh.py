"""Issue 5 acceptance on freshly generated lab bundles (real kernel NAT, both modes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import FRESH_LAB_KEYS
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
