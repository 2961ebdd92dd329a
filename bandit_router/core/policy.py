"""Thompson sampling over a bucket's eligible arms, in the three modes a policy can have:
`value` (the default, see value.py), and the older `utility` and `cheapest_adequate`."""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import numpy as np

from bandit_router.core import posterior, value
from bandit_router.core.reward import utility
from bandit_router.core.settings import Mode, Weights

# In value mode, a budget's pacing price p adds PACING_POINTS * p points per price doubling.
# The price is sized for utility mode, where 0.1 is a typical cost weight; ten points per
# unit makes a price of 0.1 add one point per doubling, about as strong a push as it gives
# there over a catalog spanning some 100x in price.
PACING_POINTS = 10.0


class ArmPosteriors(NamedTuple):
    """Read-side posteriors of a bucket's arms (one entry per catalog model). A named tuple,
    not a dataclass: one is built per decision, and tuples are built fastest."""

    alpha: np.ndarray
    beta: np.ndarray
    latency_mean: np.ndarray  # of log-latency
    latency_var: np.ndarray
    latency_count: np.ndarray
    expected_cost: np.ndarray  # USD, for the request at hand
    expected_latency: np.ndarray  # ms
    sampler: posterior.BetaSampler | None = None  # precomputed from alpha and beta
    quality_low: np.ndarray | None = None  # value mode: credible bounds; None = no arm is
    quality_high: np.ndarray | None = None  # set aside
    cost_floor: float = 1e-12  # USD: value mode weighs a cheaper (free) model at this cost;
    # 0 when no expected cost can be 0 (every price is positive)


class Choice(NamedTuple):
    order: np.ndarray  # eligible arm indices, preferred first
    quality_sample: np.ndarray  # per eligible arm, aligned with `eligible`
    score: np.ndarray  # what the mode ranked by: utility, value, or the charged quality
    eligible: np.ndarray
    contending: np.ndarray | None = None  # value mode: arms not set aside
    # value mode: the arm with the best expected value, the one the router believes best;
    # the head of `order` differs from it when Thompson sampling explores
    favourite: int | None = None


def price_points(weights: Weights, price: float) -> float:
    """Points per price doubling a value-mode decision uses, pacing included."""
    return weights.points_per_price_doubling + PACING_POINTS * price


def thompson(rng: np.random.Generator, arms: ArmPosteriors, eligible: np.ndarray,
             weights: Weights, mode: Mode, quality_target: float,
             price: float = 0.0) -> Choice:
    """Draw quality and latency for each eligible arm and rank the arms.

    `value` mode ranks by sampled value (value.py), arms that cannot matter last.
    `utility` mode ranks by sampled utility. `cheapest_adequate` ranks the arms whose
    sampled quality clears `quality_target` by expected cost (cheapest first), then the
    rest by sampled quality, so the head is the cheapest adequate arm, or the best one.

    `price` is a budget's dual price on cost (see budget.py). It adds to the cost weight;
    in `cheapest_adequate` mode, where the weight plays no part, it is charged against the
    sampled quality instead, so a pricier arm must clear the target by more.
    """
    if mode == "value":
        return _by_value(rng, arms, eligible, weights, price)
    every = eligible.size == arms.alpha.size  # the usual case: no fancy indexing needed
    sampler = arms.sampler or posterior.BetaSampler.of(arms.alpha, arms.beta)
    q = sampler.draw(rng, None if every else eligible)
    cost = arms.expected_cost if every else arms.expected_cost[eligible]
    latency, latency_ref = None, 0.0
    if weights.latency > 0:  # a latency draw only when latency counts
        sub = slice(None) if every else eligible
        z = rng.standard_normal(eligible.size)
        latency = posterior.sample_latency_ms(arms.latency_mean[sub], arms.latency_var[sub],
                                              arms.latency_count[sub], z)
        latency_ref = float(arms.expected_latency[sub].max())
    cost_ref = float(cost.max())
    if price > 0 and mode == "utility":
        weights = replace(weights, cost=weights.cost + price)
    if latency is None and cost_ref > 0:  # the usual utility, in two array operations
        u = cost * (-weights.cost / cost_ref)
        u += q
    else:
        u = utility(q, cost, latency, cost_ref, latency_ref, weights)
    if mode == "utility":
        ranked = np.argsort(u)[::-1]  # best first (ties have probability zero)
        if every:  # indices of eligible arms are the ranks themselves
            return Choice(order=ranked, quality_sample=q, score=u, eligible=eligible)
    else:
        charged = q - price * cost / cost_ref if price > 0 and cost_ref > 0 else q
        adequate = charged >= quality_target
        # lexsort: last key is primary. Adequate first; among them cost, among the rest -q.
        secondary = np.where(adequate, cost, -charged)
        ranked = np.lexsort((-u, secondary, ~adequate))
        u = charged
    return Choice(order=eligible[ranked], quality_sample=q, score=u, eligible=eligible)


def _by_value(rng: np.random.Generator, arms: ArmPosteriors, eligible: np.ndarray,
              weights: Weights, price: float) -> Choice:
    every = eligible.size == arms.alpha.size
    sub = slice(None) if every else eligible
    sampler = arms.sampler or posterior.BetaSampler.of(arms.alpha, arms.beta)
    q = sampler.draw(rng, None if every else eligible)
    low, high = arms.quality_low, arms.quality_high
    cost = arms.expected_cost[sub]
    log_price = np.log2(np.maximum(cost, arms.cost_floor) if arms.cost_floor > 0 else cost)
    points, latency_points = price_points(weights, price), weights.points_per_latency_doubling
    typical = np.log2(arms.expected_latency[sub]) if latency_points > 0 else None
    expected = value.penalty(log_price, typical, points, latency_points)
    sampled = expected
    if latency_points > 0:  # a latency draw only when latency counts
        z = rng.standard_normal(eligible.size)
        latency = posterior.sample_latency_ms(arms.latency_mean[sub], arms.latency_var[sub],
                                              arms.latency_count[sub], z)
        sampled = value.penalty(log_price, np.log2(latency), points, latency_points)
    if low is not None and high is not None:
        low, high = low[sub], high[sub]
    ranking = value.rank(q, low, high, sampled, expected)
    favourite = int(eligible[np.argmax(sampler.mean[sub] - expected)]) if eligible.size \
        else None
    return Choice(order=eligible[ranking.order], quality_sample=q, score=ranking.value,
                  eligible=eligible, contending=ranking.contending, favourite=favourite)
