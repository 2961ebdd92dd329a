"""Thompson sampling over a bucket's eligible arms, in the two modes a policy can have."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bandit_router import posterior
from bandit_router.config import Mode, Weights
from bandit_router.reward import utility


@dataclass(frozen=True, slots=True)
class ArmPosteriors:
    """Read-side posteriors of a bucket's arms (one entry per catalog model)."""

    alpha: np.ndarray
    beta: np.ndarray
    latency_mean: np.ndarray  # of log-latency
    latency_var: np.ndarray
    latency_count: np.ndarray
    expected_cost: np.ndarray  # USD, for the request at hand
    expected_latency: np.ndarray  # ms


@dataclass(frozen=True, slots=True)
class Choice:
    order: np.ndarray  # eligible arm indices, preferred first
    quality_sample: np.ndarray  # per eligible arm, aligned with `eligible`
    utility: np.ndarray
    eligible: np.ndarray


def thompson(rng: np.random.Generator, arms: ArmPosteriors, eligible: np.ndarray,
             weights: Weights, mode: Mode, quality_target: float) -> Choice:
    """Draw quality and latency for each eligible arm and rank the arms.

    `utility` mode ranks by sampled utility. `cheapest_adequate` ranks the arms whose
    sampled quality clears `quality_target` by expected cost (cheapest first), then the
    rest by sampled quality, so the head is the cheapest adequate arm, or the best one.
    """
    q = rng.beta(arms.alpha[eligible], arms.beta[eligible])
    z = rng.standard_normal(eligible.size)
    latency = posterior.sample_latency_ms(arms.latency_mean[eligible], arms.latency_var[eligible],
                                          arms.latency_count[eligible], z)
    cost = arms.expected_cost[eligible]
    u = utility(q, cost, latency, float(cost.max()),
                float(arms.expected_latency[eligible].max()), weights)
    if mode == "utility":
        ranked = np.argsort(-u, kind="stable")
    else:
        adequate = q >= quality_target
        # lexsort: last key is primary. Adequate first; among them cost, among the rest -q.
        secondary = np.where(adequate, cost, -q)
        ranked = np.lexsort((-u, secondary, ~adequate))
    return Choice(order=eligible[ranked], quality_sample=q, utility=u, eligible=eligible)
