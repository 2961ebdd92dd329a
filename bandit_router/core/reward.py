"""The reward an arm is judged by: quality, minus what its cost and latency are worth."""

from __future__ import annotations

import numpy as np

from bandit_router.core.settings import Weights


def utility(quality, cost, latency, cost_ref: float, latency_ref: float, weights: Weights):
    # `latency` may be None: the latency term is then left out.
    """U = quality - w_cost * cost/cost_ref - w_latency * latency/latency_ref.

    The references make the weights unit-free: `weights.cost` is how many quality points
    paying `cost_ref` is worth. Non-positive references disable that term.
    """
    u = np.array(quality, dtype=float)
    if cost_ref > 0 and weights.cost:
        u -= weights.cost * (np.asarray(cost) / cost_ref)
    if latency is not None and latency_ref > 0 and weights.latency:
        u -= weights.latency * (np.asarray(latency) / latency_ref)
    return u
