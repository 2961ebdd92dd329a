"""The value objective's ranking: independence of irrelevant alternatives, contention."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bandit_router.core import value
from bandit_router.core.posterior import BetaSampler


@st.composite
def catalogs(draw, bounded: bool) -> dict:
    """Arms with Thompson draws, credible bounds around them and prices."""
    n = draw(st.integers(2, 9))
    floats = st.floats(0.0, 1.0)
    q = np.array(draw(st.lists(floats, min_size=n, max_size=n)))
    below = np.array(draw(st.lists(st.floats(0.0, 0.5), min_size=n, max_size=n)))
    above = np.array(draw(st.lists(st.floats(0.0, 0.5), min_size=n, max_size=n)))
    log_price = np.array(draw(st.lists(st.floats(-30.0, 5.0), min_size=n, max_size=n)))
    log_latency = np.array(draw(st.lists(st.floats(0.0, 20.0), min_size=n, max_size=n)))
    points = draw(st.floats(0.0, 50.0))
    latency_points = draw(st.floats(0.0, 20.0))
    return {"q": q, "low": q - below if bounded else None, "high": q + above if bounded
            else None, "log_price": log_price, "log_latency": log_latency, "points": points,
            "latency_points": latency_points}


def _rank(c: dict) -> value.Ranking:
    pen = value.penalty(c["log_price"], c["log_latency"], c["points"], c["latency_points"])
    return value.rank(c["q"], c["low"], c["high"], pen, pen)


def _with(c: dict, q: float, low: float, high: float, log_price: float,
          log_latency: float) -> dict:
    out = dict(c)
    for key, x in (("q", q), ("log_price", log_price), ("log_latency", log_latency)):
        out[key] = np.append(c[key], x)
    if c["low"] is not None:
        out["low"], out["high"] = np.append(c["low"], low), np.append(c["high"], high)
    return out


def _others(order: np.ndarray, n: int) -> list[int]:
    return [int(i) for i in order if i < n]


@given(c=catalogs(bounded=True), data=st.data())
@settings(max_examples=250, deadline=None)
def test_an_arm_that_loses_everywhere_changes_no_ranking(c: dict, data) -> None:
    """Property (issue 13): for random catalogs and posteriors, the ranking of the other
    arms is the same with and without an extra arm that loses everywhere: worse drawn
    quality and bounds than every arm, dearer and slower than every arm."""
    n = c["q"].size
    # below every arm: its draw, its bounds (low <= draw <= high), and dearer and slower
    q = float(min(c["q"].min(), c["low"].min())) * data.draw(st.floats(0.0, 1.0))
    low = min(q, float(c["low"].min())) - data.draw(st.floats(0.0, 1.0))
    high = low + (float(c["high"].min()) - low) * data.draw(st.floats(0.0, 1.0))
    price = float(c["log_price"].max()) + data.draw(st.floats(0.0, 10.0))
    latency = float(c["log_latency"].max()) + data.draw(st.floats(0.0, 10.0))
    before, after = _rank(c), _rank(_with(c, q, low, high, price, latency))
    assert _others(after.order, n) == before.order.tolist()
    np.testing.assert_array_equal(after.contending[:n], before.contending)


@given(c=catalogs(bounded=False), data=st.data())
@settings(max_examples=250, deadline=None)
def test_without_contention_any_extra_arm_leaves_the_others_order(c: dict, data) -> None:
    """Stronger: each arm's value depends on that arm alone, so any model added changes the
    choice between two others only by being chosen itself."""
    n = c["q"].size
    extra = [data.draw(st.floats(0.0, 1.0)), 0.0, 0.0, data.draw(st.floats(-30.0, 5.0)),
             data.draw(st.floats(0.0, 20.0))]
    before, after = _rank(c), _rank(_with(c, *extra))
    assert _others(after.order, n) == before.order.tolist()


@given(c=catalogs(bounded=True), shift=st.floats(-40.0, 40.0))
@settings(max_examples=200, deadline=None)
def test_only_price_ratios_matter(c: dict, shift: float) -> None:
    """Multiplying every price by one factor (a currency, a longer request) adds the same
    amount to every log price: no ranking and no contention changes."""
    moved = {**c, "log_price": c["log_price"] + shift}
    a, b = _rank(c), _rank(moved)
    assume(len(set(np.round(a.value, 9))) == a.value.size)  # exact ties may swap under shift
    assert a.order.tolist() == b.order.tolist()
    np.testing.assert_array_equal(a.contending, b.contending)


@given(c=catalogs(bounded=True))
@settings(max_examples=200, deadline=None)
def test_the_best_bounded_arm_always_contends(c: dict) -> None:
    r = _rank(c)
    pen = value.penalty(c["log_price"], c["log_latency"], c["points"], c["latency_points"])
    assert r.contending[int(np.argmax(c["low"] - pen))]
    assert sorted(r.order.tolist()) == list(range(c["q"].size))
    # contenders first, each group by value
    head = r.order[:int(r.contending.sum())]
    assert r.contending[head].all()
    assert np.all(np.diff(r.value[head]) <= 0)


def test_bounds_are_exact_for_little_evidence_and_cover_the_mean() -> None:
    alpha, beta = np.array([1.0, 3.0, 900.0]), np.array([1.0, 1.0, 100.0])
    low, high = value.bounds(BetaSampler.of(alpha, beta), 0.95)
    np.testing.assert_allclose(low[:2], [0.025, 0.29240177], atol=1e-6)  # Beta quantiles
    np.testing.assert_allclose([low[2], high[2]], [0.9 - 1.96 * 0.0095, 0.9 + 1.96 * 0.0095],
                               atol=1e-3)  # the normal approximation with plenty of evidence
    wide = value.bounds(BetaSampler.of(alpha, beta), 0.9973)
    assert np.all(wide[0] < low) and np.all(wide[1] > high)
