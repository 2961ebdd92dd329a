"""Thompson sampling over hand-built arm posteriors, in both policy modes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandit_router.config import Weights
from bandit_router.policy import ArmPosteriors, Choice, thompson

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

@pytest.mark.parametrize("mode", ["utility", "cheapest_adequate"])
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
    np.testing.assert_allclose(choice.utility, expected, atol=0.005)
    np.testing.assert_allclose(choice.quality_sample, [0.9, 0.8, 0.7], atol=0.005)
    assert choice.order.tolist() == np.argsort(-expected).tolist()


def test_vague_posteriors_explore() -> None:
    # a Beta(1, 1) arm sometimes beats a Beta(3, 2) arm: sampling, not argmax of the mean
    posteriors = arms([0.5, 0.6], cost=[0.0, 0.0])._replace(
                         alpha=np.array([1.0, 3.0]), beta=np.array([1.0, 2.0]))
    picks = Counter(int(choose(posteriors, seed=s).order[0]) for s in range(400))
    assert 0.25 < picks[0] / 400 < 0.6  # P(Beta(1,1) > Beta(3,2)) = 0.4
    assert picks[1] > picks[0]


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


modes = st.sampled_from(["utility", "cheapest_adequate"])
weights = st.builds(Weights, st.floats(0, 1000), st.floats(0, 1000))


@given(problem=problems(), mode=modes, w=weights, target=st.floats(0, 1),
       seed=st.integers(0, 2**32))
@settings(max_examples=300, deadline=None)
def test_only_eligible_arms_each_once(problem, mode: str, w: Weights, target: float,
                                      seed: int) -> None:
    posteriors, eligible = problem
    choice = thompson(rng(seed), posteriors, eligible, w, mode, target)  # type: ignore[arg-type]
    # the head and the fallbacks together are every eligible arm, exactly once
    assert sorted(choice.order.tolist()) == eligible.tolist()
    assert choice.quality_sample.shape == choice.utility.shape == eligible.shape
    assert np.all((choice.quality_sample >= 0) & (choice.quality_sample <= 1))
    assert np.all(np.isfinite(choice.utility))
    if mode == "utility":
        by_arm = dict(zip(eligible.tolist(), choice.utility.tolist(), strict=True))
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
    np.testing.assert_array_equal(a.utility, b.utility)


def test_an_ineligible_dominant_arm_is_never_returned() -> None:
    posteriors = arms([0.99, 0.5, 0.6], cost=[0.0, 1.0, 1.0])
    eligible = np.array([1, 2])
    for s in range(50):
        for mode in ("utility", "cheapest_adequate"):
            order = choose(posteriors, mode, eligible=eligible, seed=s).order
            assert 0 not in order.tolist()
            assert sorted(order.tolist()) == [1, 2]


def test_different_seeds_explore_differently() -> None:
    posteriors = arms([0.6, 0.6, 0.6, 0.6], cost=[1.0, 1.0, 1.0, 1.0], strength=2.0)
    orders = {tuple(choose(posteriors, seed=s).order.tolist()) for s in range(50)}
    assert len(orders) > 5
