"""Thompson sampling over hand-built arm posteriors, in every policy mode."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandit_router.core.policy import ArmPosteriors, Choice, thompson
from bandit_router.core.settings import Weights

SHARP = 1e6  # pseudo-observations: a posterior this sharp samples (almost) its mean
WEIGHTS = Weights(cost=0.3, latency=0.05)


def arms(quality: list[float], cost: list[float], latency_ms: list[float] | None = None,
         strength: float = SHARP) -> ArmPosteriors:
    q = np.asarray(quality, dtype=float)
    lat = np.asarray(latency_ms if latency_ms is not None else [1000.0] * len(quality),
                     dtype=float)
    return ArmPosteriors(
        alpha=q * strength, beta=(1 - q) * strength,
        latency_mean=np.log(lat), latency_var=np.full(q.size, 1e-6),
        latency_count=np.full(q.size, strength),
        expected_cost=np.asarray(cost, dtype=float), expected_latency=lat)


def everyone(posteriors: ArmPosteriors) -> np.ndarray:
    return np.arange(posteriors.alpha.size)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def choose(posteriors: ArmPosteriors, mode: str = "utility", target: float = 0.7,
           eligible: np.ndarray | None = None, weights: Weights = WEIGHTS,
           seed: int = 0) -> Choice:
    chosen = everyone(posteriors) if eligible is None else eligible
    return thompson(rng(seed), posteriors, chosen, weights, mode, target)  # type: ignore[arg-type]


# --- utility mode ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["value", "utility", "cheapest_adequate"])
def test_a_dominant_arm_is_picked(mode: str) -> None:
    # arm 2: best quality, cheapest, fastest; posteriors not even sharp
    posteriors = arms([0.5, 0.6, 0.97, 0.55], cost=[3.0, 2.0, 0.5, 1.0],
                      latency_ms=[4000, 3000, 500, 2000], strength=200)
    picks = Counter(int(choose(posteriors, mode, target=0.9, seed=s).order[0])
                    for s in range(200))
    assert picks == {2: 200}


def test_utility_trades_quality_for_cost() -> None:
    # U = q - 0.3 * cost / max cost: arm 0 = 0.9 - 0.3 = 0.6 < arm 1 = 0.8
    posteriors = arms([0.9, 0.8], cost=[1.0, 0.0])
    assert choose(posteriors).order.tolist() == [1, 0]
    # with cost worth nothing, quality decides
    free = Weights(cost=0.0, latency=0.05)
    assert choose(posteriors, weights=free).order.tolist() == [0, 1]


def test_utility_trades_quality_for_latency() -> None:
    posteriors = arms([0.9, 0.85], cost=[1.0, 1.0], latency_ms=[10_000, 1_000])
    slow_hurts = Weights(cost=0.3, latency=0.5)
    assert choose(posteriors, weights=slow_hurts).order.tolist() == [1, 0]
    # latency weight 0.05: U = 0.9 - 0.3 - 0.05 = 0.55 beats 0.85 - 0.3 - 0.005 = 0.545
    assert choose(posteriors).order.tolist() == [0, 1]


def test_utility_values_follow_the_formula() -> None:
    posteriors = arms([0.9, 0.8, 0.7], cost=[2.0, 1.0, 0.5], latency_ms=[4000, 2000, 1000])
    choice = choose(posteriors)
    expected = (np.array([0.9, 0.8, 0.7]) - 0.3 * np.array([2.0, 1.0, 0.5]) / 2.0
                - 0.05 * np.array([4000, 2000, 1000]) / 4000)
    np.testing.assert_allclose(choice.score, expected, atol=0.005)
    np.testing.assert_allclose(choice.quality_sample, [0.9, 0.8, 0.7], atol=0.005)
    assert choice.order.tolist() == np.argsort(-expected).tolist()


def test_vague_posteriors_explore() -> None:
    # a Beta(1, 1) arm sometimes beats a Beta(3, 2) arm: sampling, not argmax of the mean
    posteriors = arms([0.5, 0.6], cost=[0.0, 0.0])._replace(
                         alpha=np.array([1.0, 3.0]), beta=np.array([1.0, 2.0]))
    picks = Counter(int(choose(posteriors, seed=s).order[0]) for s in range(400))
    assert 0.25 < picks[0] / 400 < 0.6  # P(Beta(1,1) > Beta(3,2)) = 0.4
    assert picks[1] > picks[0]


# --- value mode (the default) ---------------------------------------------------------------

VALUE = Weights(points_per_price_doubling=2.0)


def test_value_follows_the_formula() -> None:
    posteriors = arms([0.9, 0.8, 0.7], cost=[4e-3, 1e-3, 5e-4], latency_ms=[4000, 2000, 1000])
    w = Weights(points_per_price_doubling=3.0, points_per_latency_doubling=1.0)
    choice = choose(posteriors, "value", weights=w)
    value = (np.array([0.9, 0.8, 0.7]) - 0.03 * np.log2([4e-3, 1e-3, 5e-4])
             - 0.01 * np.log2([4000, 2000, 1000]))
    np.testing.assert_allclose(choice.score, value, atol=0.005)
    assert choice.order.tolist() == np.argsort(-value).tolist()


@pytest.mark.parametrize(("dear", "cheap", "winner"), [
    (0.92, 0.90, 1),  # 37x the price for 2 points: not worth it
    (0.95, 0.84, 0),  # 11 points: worth it (37x = 5.2 doublings = 10.4 points at 2/doubling)
    (0.94, 0.84, 1),  # 10 points: not quite
])
def test_a_price_ratio_is_weighed_in_points_per_doubling(dear, cheap, winner) -> None:
    posteriors = arms([dear, cheap], cost=[37e-4, 1e-4])
    assert choose(posteriors, "value", weights=VALUE).order[0] == winner


def test_the_favourite_is_the_best_expected_value_and_explorations_leave_it() -> None:
    # 0.84 at 2x against 0.80 at 1x: twice the price costs 2 points, so 0.84 is worth 2
    # points more; with 20 answers each the draws often say otherwise
    posteriors = arms([0.84, 0.80], cost=[2e-4, 1e-4], strength=20)
    choices = [choose(posteriors, "value", weights=VALUE, seed=s) for s in range(300)]
    assert {c.favourite for c in choices} == {0}
    explored = sum(int(c.order[0]) != c.favourite for c in choices)
    assert 30 < explored < 150  # P(draw of arm 0 beats arm 1 by 2 points) is about 0.4
    sharp = arms([0.84, 0.80], cost=[2e-4, 1e-4])
    assert all(int(choose(sharp, "value", weights=VALUE, seed=s).order[0]) == 0
               for s in range(50))
    assert choose(posteriors, "utility").favourite is None  # value mode only


def test_equals_go_to_the_cheapest() -> None:
    # equally good, prices 1x, 5x, 25x: the cheapest wins whenever its posterior is sharp
    posteriors = arms([0.9, 0.9, 0.9], cost=[25e-4, 1e-4, 5e-4], strength=2000)
    picks = Counter(int(choose(posteriors, "value", weights=VALUE, seed=s).order[0])
                    for s in range(200))
    assert picks[1] >= 195  # a 5x price is 4.6 points; two sd of the difference is ~2


def test_value_depends_on_price_ratios_only() -> None:
    # another currency, or a request ten times longer: every cost x 10, the same choices
    posteriors = arms([0.9, 0.85, 0.6], cost=[1e-2, 2e-3, 1e-4], strength=50)
    scaled = posteriors._replace(expected_cost=posteriors.expected_cost * 10)
    for s in range(50):
        a = choose(posteriors, "value", weights=VALUE, seed=s)
        b = choose(scaled, "value", weights=VALUE, seed=s)
        assert a.order.tolist() == b.order.tolist()


def test_pacing_price_weighs_price_more() -> None:
    # 11 points for 37x is worth it at 2 points per doubling, not at 2 + 10 * 0.1 = 3
    posteriors = arms([0.95, 0.84], cost=[37e-4, 1e-4])
    rng_ = rng()
    assert thompson(rng_, posteriors, everyone(posteriors), VALUE, "value", 0.7).order[0] == 0
    paced = thompson(rng_, posteriors, everyone(posteriors), VALUE, "value", 0.7, price=0.1)
    assert paced.order[0] == 1


def test_a_free_model_is_weighed_at_the_floor_price() -> None:
    posteriors = arms([0.9, 0.5], cost=[1e-4, 0.0])._replace(cost_floor=1e-7)
    choice = choose(posteriors, "value", weights=VALUE)
    assert np.all(np.isfinite(choice.score))
    # 0.4 quality against 1e-4 / 1e-7 = 1000x (10 doublings = 20 points): the paid model
    assert choice.order[0] == 0


def test_arms_that_cannot_matter_are_set_aside() -> None:
    # arm 1 is dear; even at the top of its interval it cannot beat arm 0's bottom
    posteriors = arms([0.9, 0.8], cost=[1e-4, 1e-2], strength=5)._replace(
        quality_low=np.array([0.88, 0.7]), quality_high=np.array([0.92, 0.99]))
    for s in range(20):
        choice = choose(posteriors, "value", weights=VALUE, seed=s)
        assert choice.order.tolist() == [0, 1]  # a vague arm 1 may draw high: still second
        assert choice.contending.tolist() == [True, False]
    # without bounds (contention off) every arm contends, and vague arm 1 sometimes wins
    free = posteriors._replace(quality_low=None, quality_high=None)
    heads = {int(choose(free, "value", weights=VALUE, seed=s).order[0]) for s in range(200)}
    assert heads == {0, 1}


# --- cheapest_adequate mode -----------------------------------------------------------------

def test_cheapest_adequate_picks_the_cheapest_arm_that_clears_the_target() -> None:
    # adequate at 0.8: arms 0 and 1; arm 1 is the cheaper; arm 3 is cheapest but not adequate
    posteriors = arms([0.95, 0.85, 0.75, 0.5], cost=[4.0, 3.0, 1.0, 0.5])
    choice = choose(posteriors, "cheapest_adequate", target=0.8)
    # adequate arms by cost, then the rest by sampled quality
    assert choice.order.tolist() == [1, 0, 2, 3]


def test_cheapest_adequate_follows_the_target() -> None:
    posteriors = arms([0.95, 0.85, 0.75, 0.5], cost=[4.0, 3.0, 1.0, 0.5])
    assert choose(posteriors, "cheapest_adequate", target=0.9).order[0] == 0
    assert choose(posteriors, "cheapest_adequate", target=0.7).order[0] == 2
    assert choose(posteriors, "cheapest_adequate", target=0.0).order[0] == 3


def test_cheapest_adequate_without_adequate_arm_takes_the_best() -> None:
    posteriors = arms([0.6, 0.9, 0.3], cost=[1.0, 5.0, 0.1])
    choice = choose(posteriors, "cheapest_adequate", target=0.99)
    assert choice.order.tolist() == [1, 0, 2]


def test_cheapest_adequate_ignores_the_utility_weights() -> None:
    posteriors = arms([0.95, 0.85], cost=[0.1, 100.0])
    heavy = Weights(cost=1000.0, latency=1000.0)
    assert choose(posteriors, "cheapest_adequate", target=0.8, weights=heavy).order[0] == 0
    assert choose(posteriors, "utility", weights=heavy).order[0] == 0


# --- eligibility, fallbacks, reproducibility ------------------------------------------------

@st.composite
def problems(draw) -> tuple[ArmPosteriors, np.ndarray]:
    n = draw(st.integers(1, 8))
    alpha = np.array(draw(st.lists(st.floats(0.05, 1e4), min_size=n, max_size=n)))
    beta = np.array(draw(st.lists(st.floats(0.05, 1e4), min_size=n, max_size=n)))
    lat = np.array(draw(st.lists(st.floats(1.0, 1e6), min_size=n, max_size=n)))
    var = np.array(draw(st.lists(st.floats(1e-6, 4.0), min_size=n, max_size=n)))
    count = np.array(draw(st.lists(st.floats(0.5, 1e4), min_size=n, max_size=n)))
    cost = np.array(draw(st.lists(st.floats(0.0, 10.0), min_size=n, max_size=n)))
    mask = draw(st.lists(st.booleans(), min_size=n, max_size=n).filter(any))
    posteriors = ArmPosteriors(alpha=alpha, beta=beta, latency_mean=np.log(lat),
                               latency_var=var, latency_count=count, expected_cost=cost,
                               expected_latency=np.exp(np.log(lat) + var / 2))
    return posteriors, np.flatnonzero(mask)


modes = st.sampled_from(["value", "utility", "cheapest_adequate"])
weights = st.builds(Weights, st.floats(0, 1000), st.floats(0, 1000), st.floats(0, 1000),
                    st.floats(0, 1000))


@given(problem=problems(), mode=modes, w=weights, target=st.floats(0, 1),
       seed=st.integers(0, 2**32))
@settings(max_examples=300, deadline=None)
def test_only_eligible_arms_each_once(problem, mode: str, w: Weights, target: float,
                                      seed: int) -> None:
    posteriors, eligible = problem
    choice = thompson(rng(seed), posteriors, eligible, w, mode, target)  # type: ignore[arg-type]
    # the head and the fallbacks together are every eligible arm, exactly once
    assert sorted(choice.order.tolist()) == eligible.tolist()
    assert choice.quality_sample.shape == choice.score.shape == eligible.shape
    assert np.all((choice.quality_sample >= 0) & (choice.quality_sample <= 1))
    assert np.all(np.isfinite(choice.score))
    if mode != "cheapest_adequate":  # ranked by score (value mode: no arm set aside here)
        by_arm = dict(zip(eligible.tolist(), choice.score.tolist(), strict=True))
        ranked = [by_arm[i] for i in choice.order.tolist()]
        assert ranked == sorted(ranked, reverse=True)


@given(problem=problems(), mode=modes, seed=st.integers(0, 2**32))
@settings(max_examples=100, deadline=None)
def test_same_seed_same_order(problem, mode: str, seed: int) -> None:
    posteriors, eligible = problem
    a = thompson(rng(seed), posteriors, eligible, WEIGHTS, mode, 0.7)  # type: ignore[arg-type]
    b = thompson(rng(seed), posteriors, eligible, WEIGHTS, mode, 0.7)  # type: ignore[arg-type]
    assert a.order.tolist() == b.order.tolist()
    np.testing.assert_array_equal(a.quality_sample, b.quality_sample)
    np.testing.assert_array_equal(a.score, b.score)


def test_an_ineligible_dominant_arm_is_never_returned() -> None:
    posteriors = arms([0.99, 0.5, 0.6], cost=[0.0, 1.0, 1.0])
    eligible = np.array([1, 2])
    for s in range(50):
        for mode in ("value", "utility", "cheapest_adequate"):
            order = choose(posteriors, mode, eligible=eligible, seed=s).order
            assert 0 not in order.tolist()
            assert sorted(order.tolist()) == [1, 2]


def test_different_seeds_explore_differently() -> None:
    posteriors = arms([0.6, 0.6, 0.6, 0.6], cost=[1.0, 1.0, 1.0, 1.0], strength=2.0)
    orders = {tuple(choose(posteriors, seed=s).order.tolist()) for s in range(50)}
    assert len(orders) > 5
