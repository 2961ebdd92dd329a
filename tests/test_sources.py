"""Quality sources: one fact per source per route, weights in the posterior, the tallies
behind a judge's agreement with clients, and a log that rebuilds to the live state."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bandit_router.learner import ArmBook, replay
from bandit_router.posterior import Evidence, observe
from bandit_router.sources import agreement, source_tally
from bandit_router.stats import Tally
from bandit_router.store import Store, read_events
from bandit_router.types import Facts, RouteTicket

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
    for client, judged in pairs:
        total.add(_tally({"judge_quality": (judged, False)}, {"quality": client}))
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
    from bandit_router.store import connect
    db = connect(db_path)
    rebuilt = replay(read_events(db), config.policies, config.source_weights)
    assert rebuilt == live
    (ev,) = live.values()
    w = config.source_weights
    assert ev.q_pos == pytest.approx(0.9 * w["judge"] + 0.4)
    assert ev.q_neg == pytest.approx(0.1 * w["judge"] + 0.6 + w["implicit"])
    usage = db.execute("SELECT judge_n, judge_sum, pair_n, implicit_n FROM usage").fetchall()
    assert usage == [(1, 0.9, 1, 1)]
    db.conn.close()
    assert ArmBook(config.policies, rebuilt, config.source_weights).states() == live
