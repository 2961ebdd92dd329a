"""The value objective: quality, minus what each doubling of price (and of latency) costs.

    value = quality - (points per price doubling / 100) * log2(price)
                    - (points per latency doubling / 100) * log2(latency)

Each arm's value depends on that arm alone, so adding or removing a model never changes
how the others rank (independence of irrelevant alternatives), and only price *ratios*
matter: the currency, the size of the request and the catalog's dearest model do not.
Among equally good models the cheapest has the highest value.

Exploration is confined to arms that can still matter: an arm whose value, at the top of
its credible interval (the policy's `contention_level`, three sigma by default), is below
the best arm's value at the bottom of its interval is set aside (ranked after the others,
still a fallback) until evidence or decay makes it a contender again. An arm that loses to
every other cannot set another aside. The level is checked at every decision, so it must be
strict: at 95%, a bucket judged thousands of times sets aside a good arm after a lucky
streak of another often enough to cost money in the replay benchmark, and a set-aside arm
gets no evidence to clear itself until decay widens its interval again.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import ndtri

from bandit_router.core.posterior import BetaSampler, quality_interval

POINT = 0.01  # one quality point: a hundredth of the 0..1 quality scale


class Ranking(NamedTuple):
    order: np.ndarray  # positions into the arms given, preferred first
    value: np.ndarray  # the sampled value of each arm
    contending: np.ndarray  # bool: not set aside


def bounds(sampler: BetaSampler, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Central credible bounds of each arm's quality at `level`: exact for the arms the
    sampler draws from the Beta itself (little evidence: skewed), the normal approximation
    for the rest (which the sampler uses too)."""
    z = float(ndtri(0.5 + level / 2.0))
    low = sampler.mean - z * sampler.sd
    high = sampler.mean + z * sampler.sd
    if sampler.any_exact:
        e = sampler.exact
        low[e], high[e] = quality_interval(sampler.alpha[e], sampler.beta[e], level)
    return low, high


def penalty(log2_price: np.ndarray, log2_latency: np.ndarray | None,
            price_points: float, latency_points: float) -> np.ndarray:
    """What each arm's price (and latency) takes off its quality, in quality units."""
    out = log2_price * (price_points * POINT)
    if log2_latency is not None and latency_points > 0:
        out = out + log2_latency * (latency_points * POINT)
    return out


def rank(quality: np.ndarray, low: np.ndarray | None, high: np.ndarray | None,
         sampled_penalty: np.ndarray, expected_penalty: np.ndarray) -> Ranking:
    """Rank arms by sampled value, contenders first (`low`, `high` None: no bounds, every
    arm contends).

    `quality` is each arm's Thompson draw, `low`/`high` its credible bounds; the sampled
    penalty uses the latency draw, the expected one the typical latency (for the bounds).
    """
    value = quality - sampled_penalty
    # stable: exact ties keep catalog order, so an added arm cannot reorder two tied others
    # (numpy's default sort of small arrays is not stable on every CPU)
    if low is None or high is None:
        return Ranking(np.argsort(-value, kind="stable"), value, np.ones(value.size, bool))
    floor = (low - expected_penalty).max()
    contending = high - expected_penalty >= floor
    if contending.all():  # the usual case once the arms are known
        return Ranking(np.argsort(-value, kind="stable"), value, contending)
    return Ranking(np.lexsort((-value, ~contending)), value, contending)
