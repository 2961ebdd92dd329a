"""Thompson sampling over a bucket's eligible arms, in the two modes a policy can have."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bandit_router import posterior
from bandit_router.config import Mode, Weights
from bandit_router.reward import utility


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


class Choice(NamedTuple):
    order: np.ndarray  # eligible arm indices, preferred first
    quality_sample: np.ndarray  # per eligible arm, aligned with `eligible`
    utility: np.ndarray
    eligible: np.ndarray


def thompson(rng: np.random.Generator, arms: ArmPosteriors, eligible: np.ndarray,
             weights: Weights, mode: Mode, quality_target: float,
             price: float = 0.0) -> Choice:
    """Draw quality and latency for each eligible arm and rank the arms.

    `utility` mode ranks by sampled utility. `cheapest_adequate` ranks the arms whose
    sampled quality clears `quality_target` by expected cost (cheapest first), then the
    rest by sampled quality, so the head is the cheapest adequate arm, or the best one.

    `price` is a budget's dual price on cost (see budget.py). It adds to the cost weight;
    in `cheapest_adequate` mode, where the weight plays no part, it is charged against the
    sampled quality instead, so a pricier arm must clear the target by more.
    """
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
        weights = Weights(cost=weights.cost + price, latency=weights.latency)
    if latency is None and cost_ref > 0:  # the usual utility, in two array operations
        u = cost * (-weights.cost / cost_ref)
        u += q
    else:
        u = utility(q, cost, latency, cost_ref, latency_ref, weights)
    if mode == "utility":
        ranked = np.argsort(u)[::-1]  # best first (ties have probability zero)
        if every:  # indices of eligible arms are the ranks themselves
            return Choice(order=ranked, quality_sample=q, utility=u, eligible=eligible)
    else:
        charged = q - price * cost / cost_ref if price > 0 and cost_ref > 0 else q
        adequate = charged >= quality_target
        # lexsort: last key is primary. Adequate first; among them cost, among the rest -q.
        secondary = np.where(adequate, cost, -charged)
        ranked = np.lexsort((-u, secondary, ~adequate))
    return Choice(order=eligible[ranked], quality_sample=q, utility=u, eligible=eligible)
