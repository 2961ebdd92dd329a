"""Quality sources: one fact per source per route, weights in the posterior, the tallies
behind a judge's agreement with clients, and a log that rebuilds to the live state."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bandit_router.core.learner import ArmBook, replay
from bandit_router.core.posterior import Evidence, judged, observe
from bandit_router.core.settings import Prior
from bandit_router.core.sources import agreement, source_tally
from bandit_router.core.types import Facts, RouteTicket
from bandit_router.storage.stats import Tally
from bandit_router.storage.store import Store, read_events

TICKET = RouteTicket("default", "chat:low", "gpt-5-mini", 1_800_000_000.0, 10, "n")


def test_each_source_counts_with_its_weight():
    weights = {"client": 1.0, "judge": 0.5, "implicit": 0.25}
    ev = Evidence()
    for fact, value in (("quality", 1.0), ("judge_quality", 0.0), ("implicit_quality", 0.0)):
        ev = observe(ev, ((fact, value),), 0.0, 0.0, 0.0, weights=weights)
    assert (ev.q_pos, ev.q_neg) == (1.0, 0.75)
    silent = observe(Evidence(), (("judge_quality", 1.0),), 0.0, 0.0, 0.0, 50.0,
                     weights={"judge": 0.0})
    assert silent.quality_n == 0.0 and silent.recent_pos == 0.0  # weight 0: not a quality


def _tally(known, applied, derived=False) -> Tally:
    return Tally(**source_tally(known, applied, derived))


def test_a_pair_is_counted_once_when_its_second_half_arrives():
    first = _tally({}, {"judge_quality": 0.8})
    assert (first.judge_n, first.pair_n) == (1, 0)
    second = _tally({"judge_quality": (0.8, False)}, {"quality": 0.6})
    assert second.pair_n == 1 and second.pair_absdiff == pytest.approx(0.2)
    later = _tally({"judge_quality": (0.8, False), "quality": (0.6, False)},
                   {"latency_ms": 100.0})
    assert later.pair_n == 0
    # a quality derived from success=false is no client score: no pair
    assert _tally({"judge_quality": (0.8, False)}, {"quality": 0.0}, derived=True).pair_n == 0
    assert _tally({"quality": (0.0, True)}, {"judge_quality": 0.8}).pair_n == 0


@given(pairs=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=3, max_size=50))
def test_agreement_is_the_mean_difference_and_pearson_correlation(pairs):
    total = Tally()
    for client, judge_score in pairs:
        total.add(_tally({"judge_quality": (judge_score, False)}, {"quality": client}))
    got = agreement(total, 0.25)
    c, j = np.array(pairs).T
    assert got["routes"] == len(pairs)
    assert got["mean_abs_diff"] == pytest.approx(np.abs(c - j).mean(), abs=1e-9)
    if c.std() > 1e-4 and j.std() > 1e-4:
        assert got["correlation"] == pytest.approx(np.corrcoef(c, j)[0, 1], abs=1e-6)
    assert got["flagged"] == (got["mean_abs_diff"] > 0.25)


async def test_one_fact_per_source_and_the_log_rebuilds_the_live_arms(config, db_path):
    store = Store(config, db_path)
    await store.open(publish=lambda changes: None)
    try:
        await store.record_feedback("r1", TICKET, Facts(judge_quality=0.9))
        await store.record_feedback("r1", TICKET, Facts(quality=0.4, implicit_quality=0.0))
        with pytest.raises(Exception, match="judge_quality"):
            await store.record_feedback("r1", TICKET, Facts(judge_quality=0.1))
        live = store._book.states()
    finally:
        await store.close()
    from bandit_router.storage.store import connect
    db = connect(db_path)
    rebuilt = replay(read_events(db), config.policies, config.source_weights)
    assert rebuilt == live
    (ev,) = live.values()
    w = config.source_weights
    assert w["judge_accuracy"] < 1  # a noisy judge: its score is kept apart, as reported
    assert (ev.jq_pos, ev.jq_neg) == pytest.approx((0.9 * w["judge"], 0.1 * w["judge"]))
    assert ev.q_pos == pytest.approx(0.4)
    assert ev.q_neg == pytest.approx(0.6 + w["implicit"])
    usage = db.execute("SELECT sum(judge_n), sum(judge_sum), sum(pair_n), sum(implicit_n) "
                       "FROM usage").fetchall()
    assert usage == [(1, 0.9, 1, 1)]
    db.conn.close()
    assert ArmBook(config.policies, rebuilt, config.source_weights).states() == live


@given(theta=st.floats(0.0, 1.0), p=st.floats(0.55, 0.99), n=st.floats(1.0, 1e6))
def test_a_noisy_judges_expected_scores_read_as_the_true_quality(theta, p, n):
    """Scores at their expected mean read back as the true quality, and are worth fewer
    answers than they are (never more, never negative)."""
    says_good = theta * p + (1 - theta) * (1 - p)
    pos, neg = judged(n * says_good, n * (1 - says_good), p)
    assert pos >= 0 and neg >= 0 and pos + neg <= n * (1 + 1e-12)
    if pos + neg > 1e-9:
        assert pos / (pos + neg) == pytest.approx(theta, abs=1e-9)


@given(theta=st.floats(0.05, 0.95), p=st.floats(0.6, 0.95))
def test_a_noisy_judge_is_worth_what_its_variance_says(theta, p):
    """A Beta of the counts `judged` gives has the variance of the estimate it reads:
    var(theta_hat) = y(1 - y) / (n (2p - 1)^2), with y the mean score (large n, so the
    shrinkage toward the uniform prior is negligible)."""
    n = 1e6
    y = theta * p + (1 - theta) * (1 - p)
    pos, neg = judged(n * y, n * (1 - y), p)
    beta_var = theta * (1 - theta) / (pos + neg)
    assert beta_var == pytest.approx(y * (1 - y) / (n * (2 * p - 1) ** 2), rel=1e-3)


def test_a_perfect_judge_is_read_as_it_scores():
    assert judged(3.0, 1.0, 1.0) == (3.0, 1.0)
    ev = observe(Evidence(), (("judge_quality", 0.75),), 0.0, 0.0, 0.0, prior=Prior(),
                 weights={"judge": 1.0, "judge_accuracy": 1.0})
    assert (ev.q_pos, ev.q_neg, ev.jq_pos) == (0.75, 0.25, 0.0)


def test_a_noisy_judges_scores_converge_to_the_true_quality():
    """4,000 scores from a judge right 85% of the time, of an arm good 80% of the time: read
    at face value its mean would settle at 0.8*0.85 + 0.2*0.15 = 0.71; read as noisy it
    settles at 0.8. Seeded; the tolerance 0.04 is about 4 sd of the estimate (the
    effective sample of a 0.85 judge is (2p-1)^2 = 0.49 of its size: sd ~ 0.009)."""
    rng = np.random.default_rng(3)
    noisy, face = Evidence(), Evidence()
    for _ in range(4000):
        good = rng.random() < 0.8
        score = float(good if rng.random() < 0.85 else not good)
        noisy = observe(noisy, (("judge_quality", score),), 0.0, 0.0, 0.0, prior=Prior(),
                        weights={"judge": 1.0, "judge_accuracy": 0.85})
        face = observe(face, (("judge_quality", score),), 0.0, 0.0, 0.0, prior=Prior(),
                       weights={"judge": 1.0, "judge_accuracy": 1.0})
    pos, neg = judged(noisy.jq_pos, noisy.jq_neg, 0.85)
    assert pos / (pos + neg) == pytest.approx(0.8, abs=0.04)
    assert face.q_pos / face.quality_n == pytest.approx(0.71, abs=0.04)
