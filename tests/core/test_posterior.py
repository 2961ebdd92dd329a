"""Posterior math for one arm, checked as properties over arbitrary feedback histories."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bandit_router.core import posterior
from bandit_router.core.posterior import FIELDS, STAMPS, Evidence, decayed, observe
from bandit_router.core.settings import Prior
from bandit_router.core.types import MAX_LATENCY_MS

PRIOR = Prior()  # the default prior: mean 0.5, strength 2 (uniform), latency sd 0.5
PRIOR_LATENCY_MS = 2500.0
DAY = 86_400.0

# --- strategies -----------------------------------------------------------------------------

qualities = st.floats(0.0, 1.0)
latencies = st.floats(0.0, 86_400_000.0)  # up to a day, the service's own bound
tokens = st.integers(0, 100_000_000)


def _facts(q: float | None, lat: float | None, tin: int | None,
           tout: int | None) -> tuple[tuple[str, float], ...]:
    named = (("quality", q), ("latency_ms", lat), ("input_tokens", tin), ("output_tokens", tout))
    return tuple((name, float(v)) for name, v in named if v is not None)


messages = st.builds(_facts, st.none() | qualities, st.none() | latencies, st.none() | tokens,
                     st.none() | tokens)
# Time between messages; a little negative too, as a wall clock can step back.
gaps = st.floats(-3600.0, 3e8)
histories = st.lists(st.tuples(gaps, messages), max_size=25)
# 0 turns decay off; otherwise anything from a millisecond to millennia.
half_lives = st.just(0.0) | st.floats(1e-3, 1e11)
caps = st.just(0.0) | st.floats(1e-3, 1e6)


def run(history: list[tuple[float, tuple[tuple[str, float], ...]]], half_life_s: float,
        cap: float, start: float = 1_000_000.0) -> tuple[Evidence, float]:
    ev, now = Evidence(), start
    for gap, facts in history:
        now += gap
        ev = observe(ev, facts, now, half_life_s, cap)
    return ev, now


def quality_mean(ev: Evidence, prior: Prior = PRIOR) -> float:
    a, b = posterior.quality_params(ev.q_pos, ev.q_neg, prior)
    return a / (a + b)


def expected_latency(ev: Evidence, prior: Prior = PRIOR) -> float:
    mean, _, _ = posterior.latency_params(ev.lat_n, ev.lat_sum, ev.lat_sumsq,
                                            PRIOR_LATENCY_MS, prior)
    return float(posterior.typical_latency_ms(mean))


# --- whatever happens, the posterior stays a posterior --------------------------------------

@given(history=histories, half_life_s=half_lives, cap=caps)
@settings(max_examples=300, deadline=None)
def test_any_history_keeps_posteriors_proper(history, half_life_s: float, cap: float) -> None:
    ev, _ = run(history, half_life_s, cap)
    for name in FIELDS:
        value = getattr(ev, name)
        assert math.isfinite(value), name
        assert value >= 0.0, name  # log-latency too: latencies are floored at 1 ms
    alpha, beta = posterior.quality_params(ev.q_pos, ev.q_neg, PRIOR)
    assert 0 < alpha < math.inf and 0 < beta < math.inf
    assert alpha >= PRIOR.alpha and beta >= PRIOR.beta
    mean, var, count = posterior.latency_params(ev.lat_n, ev.lat_sum, ev.lat_sumsq,
                                                PRIOR_LATENCY_MS, PRIOR)
    assert math.isfinite(mean) and 0 < var < math.inf and count >= PRIOR.latency_strength
    assert 0 < posterior.typical_latency_ms(mean) < math.inf
    out = posterior.expected_output_tokens(ev.out_n, ev.out_sum, PRIOR)
    assert 0 <= out <= 100_000_000
    if cap > 0:
        for count_name in ("quality_n", "lat_n", "in_n", "out_n"):
            assert getattr(ev, count_name) <= cap * (1 + 1e-9), count_name


@given(history=histories, half_life_s=half_lives, cap=caps)
@settings(max_examples=100, deadline=None)
def test_updated_at_follows_the_latest_message(history, half_life_s: float, cap: float) -> None:
    ev, _ = run(history, half_life_s, cap)
    times = np.cumsum([1_000_000.0] + [gap for gap, _ in history])
    assert ev.updated_at == (max(times[1:]) if history else 0.0)


# --- quality --------------------------------------------------------------------------------

def test_quality_feedback_adds_to_alpha_and_beta() -> None:
    ev = observe(Evidence(), (("quality", 0.8),), 10.0, 0.0, 0.0)
    assert ev.q_pos == pytest.approx(0.8) and ev.q_neg == pytest.approx(0.2)
    alpha, beta = posterior.quality_params(ev.q_pos, ev.q_neg, PRIOR)
    m, n0 = PRIOR.quality_mean, PRIOR.quality_strength
    assert alpha == pytest.approx(m * n0 + 0.8) and beta == pytest.approx((1 - m) * n0 + 0.2)


@given(history=histories, half_life_s=half_lives, gap=st.floats(0, 3e8), q=qualities)
@settings(max_examples=300, deadline=None)
def test_quality_mean_moves_toward_the_observation(history, half_life_s: float, gap: float,
                                                   q: float) -> None:
    ev, now = run(history, half_life_s, cap=0.0)
    now += gap
    before = quality_mean(decayed(ev, now, half_life_s))  # what the router believes at `now`
    after = quality_mean(observe(ev, (("quality", q),), now, half_life_s, 0.0))
    tol = 1e-12
    assert min(before, q) - tol <= after <= max(before, q) + tol  # never overshoots
    if q > before + 1e-9:
        assert after > before
    elif q < before - 1e-9:
        assert after < before


@given(history=histories, half_life_s=half_lives, cap=st.floats(1.0, 20.0), q=qualities)
@settings(max_examples=100, deadline=None)
def test_cap_bounds_quality_evidence_and_keeps_its_mean(history, half_life_s: float, cap: float,
                                                        q: float) -> None:
    ev, now = run(history, half_life_s, cap)
    assert ev.quality_n <= cap * (1 + 1e-9)
    after = observe(ev, (("quality", q),), now, half_life_s, cap)
    assert after.quality_n <= cap * (1 + 1e-9)
    # capping shrinks the confidence, not the mean of the evidence it caps
    assert after.q_pos / after.quality_n == pytest.approx(
        (ev.q_pos + q) / (ev.quality_n + 1.0), abs=1e-9)
    many = after
    for _ in range(3 * math.ceil(cap)):
        many = observe(many, (("quality", q),), now, half_life_s, cap)
    assert many.quality_n == pytest.approx(cap)
    # a long run of the same quality pulls the evidence mean to it despite the cap
    assert many.q_pos / many.quality_n == pytest.approx(q, abs=0.15)


def test_cap_zero_means_no_cap() -> None:
    ev = Evidence()
    for _ in range(1000):
        ev = observe(ev, (("quality", 1.0),), 5.0, 0.0, 0.0)
    assert ev.quality_n == 1000


# --- decay ----------------------------------------------------------------------------------

@given(history=histories, half_life_s=st.floats(1.0, 1e9), dt=st.floats(0, 1e9))
@settings(max_examples=200, deadline=None)
def test_decay_scales_evidence_by_half_life(history, half_life_s: float, dt: float) -> None:
    ev, now = run(history, half_life_s, cap=0.0)
    later = decayed(ev, now + dt, half_life_s)
    # dt as the clock's floats represent it; none if the clock stepped back before `now`
    elapsed = max((now + dt) - ev.updated_at, 0.0)
    factor = 2.0 ** (-elapsed / half_life_s)
    for name in FIELDS:
        assert getattr(later, name) == pytest.approx(getattr(ev, name) * factor, rel=1e-9,
                                                     abs=1e-300)
        assert getattr(later, name) <= getattr(ev, name)
    assert later.updated_at == max(now + dt, ev.updated_at)


@given(history=histories, half_life_s=st.floats(1.0, 1e9), dt1=st.floats(0, 1e9),
       extra=st.floats(0, 1e9))
@settings(max_examples=200, deadline=None)
def test_decay_moves_the_mean_toward_the_prior(history, half_life_s: float, dt1: float,
                                               extra: float) -> None:
    ev, now = run(history, half_life_s, cap=0.0)
    m0 = PRIOR.quality_mean
    distances = [abs(quality_mean(decayed(ev, now + dt, half_life_s)) - m0)
                 for dt in (0.0, dt1, dt1 + extra)]
    assert distances[0] + 1e-12 >= distances[1] and distances[1] + 1e-12 >= distances[2]


def test_one_half_life_halves_evidence() -> None:
    ev = observe(Evidence(), (("quality", 1.0), ("latency_ms", 1000.0)), 0.0, DAY, 0.0)
    later = decayed(ev, DAY, DAY)
    assert later.q_pos == pytest.approx(0.5)
    assert later.lat_n == pytest.approx(0.5)
    assert later.lat_sum == pytest.approx(0.5 * math.log(1000.0))
    assert decayed(ev, 10 * DAY, DAY).q_pos == pytest.approx(2.0 ** -10)


def test_decay_off_keeps_evidence() -> None:
    ev = observe(Evidence(), (("quality", 1.0),), 0.0, 0.0, 0.0)
    later = decayed(ev, 1e9, 0.0)
    assert later.q_pos == 1.0
    assert later.updated_at == 1e9


def test_clock_stepping_back_neither_grows_nor_rewinds_evidence() -> None:
    ev = observe(Evidence(), (("quality", 1.0),), 1000.0, 60.0, 0.0)
    earlier = decayed(ev, 400.0, 60.0)
    assert earlier.q_pos == 1.0
    assert earlier.updated_at == 1000.0


# --- credible interval ----------------------------------------------------------------------

@given(alpha=st.floats(0.05, 1e6), beta=st.floats(0.05, 1e6))
@settings(max_examples=300, deadline=None)
def test_quality_interval_contains_the_mean(alpha: float, beta: float) -> None:
    lo, hi = posterior.quality_interval(alpha, beta)
    mean = alpha / (alpha + beta)
    assert 0.0 <= lo <= mean <= hi <= 1.0


def test_quality_interval_shrinks_with_evidence() -> None:
    widths = []
    for n in (0, 10, 100, 1000):
        a, b = posterior.quality_params(0.7 * n, 0.3 * n, PRIOR)
        lo, hi = posterior.quality_interval(a, b)
        widths.append(hi - lo)
    assert widths == sorted(widths, reverse=True) and widths[-1] < 0.06


def test_quality_interval_works_on_arrays() -> None:
    alpha, beta = np.array([1.2, 50.0, 2.0]), np.array([0.8, 2.0, 200.0])
    lo, hi = posterior.quality_interval(alpha, beta)
    assert lo.shape == hi.shape == (3,)
    for i in range(3):
        single = posterior.quality_interval(alpha[i], beta[i])
        assert (lo[i], hi[i]) == pytest.approx(single)


# --- latency --------------------------------------------------------------------------------

def test_latency_prior_comes_from_the_catalog() -> None:
    mean, var, count = posterior.latency_params(0.0, 0.0, 0.0, PRIOR_LATENCY_MS, PRIOR)
    assert mean == pytest.approx(math.log(PRIOR_LATENCY_MS))
    assert var == pytest.approx(PRIOR.latency_log_sd ** 2)
    assert count == PRIOR.latency_strength


def _latency_state(history) -> Evidence:
    ev = Evidence()
    for lat in history:
        ev = observe(ev, (("latency_ms", lat),), 0.0, 0.0, 0.0)
    return ev


slower_by = st.floats(1e-6, 1e3)  # relative step up in latency


@given(history=st.lists(latencies, max_size=20), step=slower_by)
@settings(max_examples=300, deadline=None)
def test_slower_than_expected_raises_expected_latency(history, step: float) -> None:
    ev = _latency_state(history)
    before = expected_latency(ev)
    lat = before * (1 + step)
    assume(lat <= MAX_LATENCY_MS)
    after = expected_latency(observe(ev, (("latency_ms", lat),), 0.0, 0.0, 0.0))
    assert after > before


@given(history=st.lists(latencies, max_size=20), fast=latencies, step=slower_by)
@settings(max_examples=300, deadline=None)
def test_slower_observation_gives_higher_expected_latency(history, fast: float,
                                                          step: float) -> None:
    """Whatever came before, of two possible next answers the slower one gives the higher
    typical latency (sub-millisecond answers all count as 1 ms)."""
    ev = _latency_state(history)
    fast = max(fast, 1.0)
    slow = fast * (1 + step)
    assume(slow <= MAX_LATENCY_MS)  # beyond a day, latencies are clamped to a day
    e_fast = expected_latency(observe(ev, (("latency_ms", fast),), 0.0, 0.0, 0.0))
    e_slow = expected_latency(observe(ev, (("latency_ms", slow),), 0.0, 0.0, 0.0))
    assert e_slow > e_fast


@given(a=st.floats(1.0, 86_400_000.0), b=st.floats(1.0, 86_400_000.0))
@settings(max_examples=200, deadline=None)
def test_a_steady_slower_stream_gives_higher_expected_latency(a: float, b: float) -> None:
    """After 20 answers at one latency, slower answers always mean slower expectations."""
    fast, slow = sorted((a, b))
    assume(math.log(slow) - math.log(fast) > 1e-6)
    assert expected_latency(_latency_state([slow] * 20)) > expected_latency(
        _latency_state([fast] * 20))


def test_steady_observations_pull_expected_latency_to_them() -> None:
    ev = _latency_state([800.0] * 200)
    assert expected_latency(ev) == pytest.approx(800.0, rel=0.02)


def test_a_single_fast_answer_does_not_make_a_model_look_slower() -> None:
    # Prior 2500 ms. One 100 ms answer makes the spread of log-latency huge; a log-normal
    # mean exp(mu + var/2) would end above the prior's. The typical latency must not.
    prior_only = expected_latency(Evidence())
    after_fast = expected_latency(_latency_state([100.0]))
    assert after_fast < prior_only


def test_sub_millisecond_latency_counts_as_one_ms() -> None:
    zero = observe(Evidence(), (("latency_ms", 0.0),), 0.0, 0.0, 0.0)
    one = observe(Evidence(), (("latency_ms", 1.0),), 0.0, 0.0, 0.0)
    assert zero == one
    assert zero.lat_n == 1.0 and zero.lat_sum == 0.0


# --- tokens ---------------------------------------------------------------------------------

def test_expected_output_tokens_blend_prior_and_evidence() -> None:
    assert posterior.expected_output_tokens(0.0, 0.0, PRIOR) == PRIOR.output_tokens
    ev = Evidence()
    for _ in range(98):
        ev = observe(ev, (("output_tokens", 1000.0),), 0.0, 0.0, 0.0)
    # (2 * 400 + 98 * 1000) / 100
    assert posterior.expected_output_tokens(ev.out_n, ev.out_sum, PRIOR) == pytest.approx(988.0)


def test_success_is_not_evidence_by_itself() -> None:
    ev = observe(Evidence(), (("success", 1.0),), 7.0, 0.0, 0.0)
    assert all(getattr(ev, name) == 0.0 for name in FIELDS)
    assert ev.updated_at == 7.0


def test_evidence_fields_are_the_decayable_ones() -> None:
    assert set(FIELDS) == {f.name for f in fields(Evidence)} - set(STAMPS)


# --- the spread of graded quality ------------------------------------------------------------

def _answers(qs) -> tuple[float, float, float]:
    qs = np.asarray(qs, dtype=float)
    return float(qs.sum()), float((1 - qs).sum()), float((qs * qs).sum())


@given(st.lists(st.booleans(), min_size=1, max_size=200))
@settings(max_examples=200, deadline=None)
def test_zero_one_answers_count_as_they_are(flips):
    assert posterior.dispersion(*_answers(flips), 2.0) == 1.0


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=200),
       st.floats(0.1, 100.0))
@settings(max_examples=300, deadline=None)
def test_answers_never_count_for_less_than_coin_flips(qs, strength):
    ratio = posterior.dispersion(*_answers(qs), strength)
    assert 1.0 <= ratio < 1e9 and np.isfinite(ratio)


def test_agreeing_graded_answers_count_for_more_the_more_there_are():
    rng = np.random.default_rng(0)
    ratios = [posterior.dispersion(*_answers(rng.beta(18, 2, size=n)), 2.0)
              for n in (1, 10, 100, 1000)]
    assert ratios[0] == 1.0  # one answer says nothing about the spread
    assert ratios == sorted(ratios)
    # Beta(18, 2) answers: variance 0.0043 against 0.09 for coin flips of mean 0.9
    assert 15 < ratios[-1] < 25


def test_a_missing_sum_of_squares_counts_as_coin_flips():
    assert posterior.dispersion(90.0, 10.0, 0.0, 2.0) == 1.0  # below (sum q)^2 / n
    ev = posterior.observe(posterior.Evidence(), (("quality", 0.9),), 1.0, 0.0, 0.0)
    assert ev.q_sq == pytest.approx(0.81)
