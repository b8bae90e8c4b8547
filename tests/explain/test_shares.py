"""The split test of backend_distribution: Pearson's chi-square equals scipy.stats.chisquare."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import chisquare

from pipeline.explain.shares import pearson_chi_square


@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.floats(0.01, 1.0)), min_size=2, max_size=12
    ).filter(lambda pairs: sum(count for count, _ in pairs) > 0)
)
def test_equals_scipy_stats_chisquare(pairs: list[tuple[int, float]]) -> None:
    f_obs = [float(count) for count, _ in pairs]
    weights = [weight for _, weight in pairs]
    f_exp = [w / sum(weights) * sum(f_obs) for w in weights]
    chi2, dof, p_value = pearson_chi_square(f_obs, f_exp)
    want = chisquare(f_obs, f_exp)
    assert dof == len(pairs) - 1
    assert chi2 == pytest.approx(float(want.statistic), rel=1e-9, abs=1e-12)
    assert p_value == pytest.approx(float(want.pvalue), rel=1e-9, abs=1e-12)


def test_a_known_value() -> None:
    # 60 connections over 3 backends promised a third each, seen 30/20/10: chi2 = 10, dof 2,
    # p = exp(-10/2) for 2 degrees of freedom
    chi2, dof, p_value = pearson_chi_square([30.0, 20.0, 10.0], [20.0, 20.0, 20.0])
    assert (chi2, dof) == (10.0, 2)
    assert p_value == pytest.approx(6.737946999085467e-03, rel=1e-12)
