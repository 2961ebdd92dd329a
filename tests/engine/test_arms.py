"""A bucket's arms in memory: evidence columns, the recent-traffic window, widening on a
catalog change, and readings of the posteriors."""

from __future__ import annotations

import numpy as np
import pytest

from bandit_router.core.posterior import Evidence
from bandit_router.core.settings import PolicyConfig
from bandit_router.engine.arms import BucketArms

POLICY = PolicyConfig(name="p", mode="utility", half_life_hours=0.0)
PRIOR_LATENCY = np.array([1000.0, 2000.0])
PRICE_OUT = np.array([1e-6, 4e-6])


def _read(arms: BucketArms, now: float = 0.0):
    return arms.read(POLICY, PRIOR_LATENCY, now, np.ones(2), np.ones(2), PRICE_OUT)


def test_the_recent_window_counts_only_its_last_decisions():
    arms = BucketArms(models=2, window=3)
    for i in (0, 0, 1, 1, 1):
        arms.record(i)
    assert arms.counts.tolist() == [0, 3]
    arms.record(0)
    assert arms.counts.tolist() == [1, 2]


def test_evidence_moves_the_quality_posterior_and_the_version():
    arms = BucketArms(models=2, window=10)
    before = arms.version
    arms.set(1, Evidence(q_pos=9.0, q_neg=1.0, updated_at=0.0))
    assert arms.version == before + 1
    reading = _read(arms)
    assert reading.alpha.tolist() == [1.0, 10.0] and reading.beta.tolist() == [1.0, 2.0]
    assert reading.quality_mean[1] == pytest.approx(10 / 12)


def test_widening_keeps_each_model_evidence_in_its_new_column():
    arms = BucketArms(models=2, window=10)
    arms.set(0, Evidence(q_pos=3.0, q_neg=1.0, updated_at=5.0))
    arms.record(1)
    wide = arms.widened(np.array([0, 2]), models=3)  # a model joined between the two
    assert wide.evidence.shape[1] == 3
    assert wide.evidence[:, 1].sum() == 0 and wide.updated_at[0] == 5.0
    assert wide.counts.tolist() == [0, 0, 1] and list(wide.recent) == [2]
    assert wide.version > arms.version


def test_an_untried_model_expects_the_bucket_answer_length():
    """An answer's length depends mostly on the request: an untried model's expected output
    is what the bucket's other models answered, so its expected cost is realistic."""
    arms = BucketArms(models=2, window=10)
    arms.set(0, Evidence(out_n=50.0, out_sum=50 * 1200.0, updated_at=0.0))
    reading = _read(arms)
    assert reading.output_tokens[1] > 900  # near the bucket's 1,200, far from the 400 prior
    assert reading.output_cost[1] == pytest.approx(reading.output_tokens[1] * 4e-6)
