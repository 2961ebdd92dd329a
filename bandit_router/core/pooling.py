"""What a policy's buckets say about each model, as the starting prior of an arm.

Quality is modelled as additive in log-odds: a model's general strength plus a bucket's
general difficulty, fitted to all the policy's evidence (weighted by it, and shrunk toward
the configured prior). An arm starts from that prediction with its own cell left out. In
"optimistic" pooling (the default) the prediction can only raise an arm's prior mean: the
cheap model that fails hard requests must still get tried on easy ones, where routing it
is the whole point; "full" pooling also lowers it, exploring less on data where models
rank alike everywhere, at that risk.

How much the prediction is worth depends on how well the additive model fits: the spread
of the cells around it (the model x bucket interaction, e.g. a small model that is fine on
chat and useless on code) sets the prior's strength, capped by `pool_strength` and by the
evidence the model has elsewhere. Where buckets disagree about models, pooling fades out,
so a model that failed hard requests still gets tried on easy ones. An arm whose model and
bucket have no other evidence keeps exactly the configured prior.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bandit_router.core.posterior import clip
from bandit_router.core.settings import Prior

_ITERATIONS = 25
_EPS = 1e-3
# A bucket's difficulty is only believed once several models agree on it: one model doing
# well in one bucket says more about the model than about the bucket.
_DIFFICULTY_SHRINK = 10.0
# Before there is evidence of it, assume cells spread by one unit of log-odds around the
# additive fit, believed as much as this many well-observed cells.
_PRIOR_SPREAD, _PRIOR_SPREAD_CELLS = 1.0, 3.0


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return np.log(p / (1.0 - p))


class Pool:
    def __init__(self, evidence: Mapping[str, np.ndarray], base_mean: np.ndarray,
                 regularisation: float) -> None:
        """`evidence`: bucket -> (2, models) quality evidence (sum of q, sum of 1 - q)."""
        names = sorted(evidence)
        self.rows = {b: i for i, b in enumerate(names)}
        models = len(base_mean)
        pos = np.array([evidence[b][0] for b in names]).reshape(len(names), models)
        n = pos + np.array([evidence[b][1] for b in names]).reshape(len(names), models)
        self.n, self.totals = n, n.sum(axis=0)
        self.seen = float(self.totals.sum())
        p = (pos + 0.5) / (n + 1.0)
        self.y = _logit(p)
        prior_logit = _logit(np.asarray(base_mean, float))
        self._prior_logit = prior_logit
        bucket_reg = _DIFFICULTY_SHRINK * regularisation
        strength, difficulty = prior_logit.copy(), np.zeros(len(names))
        for _ in range(_ITERATIONS):
            strength = ((n * (self.y - difficulty[:, None])).sum(axis=0)
                        + regularisation * prior_logit) / (n.sum(axis=0) + regularisation)
            difficulty = (n * (self.y - strength)).sum(axis=1) / (n.sum(axis=1) + bucket_reg)
        self.strength, self.difficulty = strength, difficulty
        # The sums behind the last step, kept to take one cell out again (leave-one-out).
        self._strength_sum = (n * (self.y - difficulty[:, None])).sum(axis=0) + \
            regularisation * prior_logit
        self._strength_weight = n.sum(axis=0) + regularisation
        self._difficulty_sum = (n * (self.y - strength)).sum(axis=1)
        self._difficulty_weight = n.sum(axis=1) + bucket_reg
        self.spread = self._spread(n, p, strength[None, :] + difficulty[:, None])

    def _spread(self, n: np.ndarray, p: np.ndarray, fitted: np.ndarray) -> float:
        """Variance of cells' log-odds around the fit, net of their own sampling noise."""
        seen = n > 0
        if not seen.any():
            return _PRIOR_SPREAD
        noise = 1.0 / (n[seen] * p[seen] * (1.0 - p[seen]) + 1.0)
        excess = (self.y[seen] - fitted[seen]) ** 2 - noise
        weight = n[seen] / (n[seen] + 20.0)  # a cell counts fully once it has some evidence
        return max(0.01, float((_PRIOR_SPREAD * _PRIOR_SPREAD_CELLS + (weight * excess).sum())
                               / (_PRIOR_SPREAD_CELLS + weight.sum())))

    def prior(self, bucket: str, prior: Prior, pool_strength: float,
              optimistic: bool) -> tuple[np.ndarray, np.ndarray]:
        """Beta(alpha0, beta0) for each model's arm in `bucket`, its own evidence left out.
        `optimistic`: the record elsewhere may raise a prior mean, never lower it, so a model
        weak elsewhere still gets its chance in a bucket where it might be good."""
        r = self.rows.get(bucket)
        if r is None:
            logit, own = self.strength, np.zeros_like(self.totals)
        else:
            own, y = self.n[r], self.y[r]
            strength = (self._strength_sum - own * (y - self.difficulty[r])) / \
                (self._strength_weight - own)
            difficulty = (self._difficulty_sum[r] - own * (y - self.strength)) / \
                (self._difficulty_weight[r] - own)
            logit = strength + difficulty
        # nan reads as 0; past +-50 the sigmoid is clipped below anyway (and cannot overflow)
        logit = clip(np.where(logit == logit, logit, 0.0), -50.0, 50.0)
        mean = clip(1.0 / (1.0 + np.exp(-logit)), 1e-6, 1.0 - 1e-6)
        if optimistic:
            mean = np.maximum(mean, 1.0 / (1.0 + np.exp(-self._prior_logit)))
        # A Beta whose variance matches the cells' spread (delta method) has this strength.
        believed = 1.0 / (mean * (1.0 - mean) * self.spread)
        borrowed = np.minimum(np.maximum(self.totals - own, 0.0),
                              np.minimum(pool_strength, believed))
        s = prior.quality_strength + borrowed
        return mean * s, (1.0 - mean) * s
