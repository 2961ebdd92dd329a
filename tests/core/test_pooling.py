"""Pooled priors: what a policy's other buckets say about a model starts its arm's prior."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bandit_router.core.pooling import Pool
from bandit_router.core.settings import Prior

PRIOR = Prior(quality_mean=0.5, quality_strength=2.0)
BASE = np.array([0.5, 0.5])


def _pool(cells: dict[str, list[tuple[float, float]]]) -> Pool:
    evidence = {b: np.array(list(zip(*row, strict=True))) for b, row in cells.items()}
    return Pool(evidence, BASE, regularisation=2.0)


def test_no_evidence_anywhere_keeps_exactly_the_configured_prior():
    pool = _pool({"a": [(0, 0), (0, 0)]})
    alpha, beta = pool.prior("b", PRIOR, pool_strength=20, optimistic=False)
    np.testing.assert_allclose(alpha, [PRIOR.alpha] * 2)
    np.testing.assert_allclose(beta, [PRIOR.beta] * 2)


def test_a_model_strong_elsewhere_starts_stronger_in_a_new_bucket():
    # model 0 good in three buckets, model 1 poor in them
    pool = _pool({b: [(45, 5), (10, 40)] for b in ("x", "y", "z")})
    alpha, beta = pool.prior("new", PRIOR, pool_strength=20, optimistic=False)
    mean = alpha / (alpha + beta)
    assert mean[0] > 0.7 > 0.5 > 0.3 > mean[1]
    assert np.all(alpha + beta <= PRIOR.quality_strength + 20 + 1e-9)  # capped


def test_optimistic_pooling_never_lowers_a_prior_mean():
    pool = _pool({b: [(45, 5), (10, 40)] for b in ("x", "y", "z")})
    alpha, beta = pool.prior("new", PRIOR, pool_strength=20, optimistic=True)
    assert np.all(alpha / (alpha + beta) >= PRIOR.quality_mean - 1e-9)


@given(arrays(np.float64, (3, 2, 2), elements=st.floats(0, 1e4)),
       st.floats(0, 1e3), st.booleans())
def test_priors_are_finite_positive_betas_for_any_evidence(cells, strength, optimistic):
    evidence = {f"b{i}": cells[i] for i in range(3)}
    pool = Pool(evidence, BASE, regularisation=2.0)
    for bucket in ("b0", "b1", "unseen"):
        alpha, beta = pool.prior(bucket, PRIOR, strength, optimistic)
        assert np.all(np.isfinite(alpha)) and np.all(np.isfinite(beta))
        assert np.all(alpha > 0) and np.all(beta > 0)
