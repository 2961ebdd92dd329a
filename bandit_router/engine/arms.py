"""A bucket's arms in memory: evidence as columns (one per catalog model), read vectorised."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from bandit_router.core import posterior, value
from bandit_router.core.posterior import FIELDS, Evidence
from bandit_router.core.settings import PolicyConfig

F = {name: i for i, name in enumerate(FIELDS)}  # row of each evidence field
QUALITY_ROWS = [F["q_pos"], F["q_neg"], F["jq_pos"], F["jq_neg"]]  # every quality fact


def quality_counts(ev: np.ndarray, accuracy: float) -> tuple[np.ndarray, np.ndarray]:
    """Every column's quality evidence as Beta counts: the clients' and implicit facts plus
    what a noisy judge's scores say (`posterior.judged`, with the judge's `accuracy`)."""
    judged_pos, judged_neg = posterior.judged(ev[F["jq_pos"]], ev[F["jq_neg"]], accuracy)
    return ev[F["q_pos"]] + judged_pos, ev[F["q_neg"]] + judged_neg


@dataclass(frozen=True, slots=True)
class Reading:
    """A bucket's posteriors at one moment (every array has one entry per catalog model)."""

    evidence: np.ndarray  # decayed, FIELDS x models
    alpha: np.ndarray
    beta: np.ndarray
    latency_mean: np.ndarray  # of log-latency
    latency_var: np.ndarray
    latency_count: np.ndarray
    output_tokens: np.ndarray  # expected
    sampler: posterior.BetaSampler
    typical_latency_ms: np.ndarray
    output_cost: np.ndarray  # USD of the expected answer, per model
    longest_answer: float  # the largest expected output_tokens
    # value mode: credible bounds of quality at the policy's contention_level (else None)
    quality_low: np.ndarray | None
    quality_high: np.ndarray | None

    @property
    def quality_mean(self) -> np.ndarray:
        return self.sampler.mean


class BucketArms:
    """Evidence of one (policy, bucket)'s arms, plus its recent decisions."""

    __slots__ = ("counts", "evidence", "recent", "updated_at", "version")

    def __init__(self, models: int, window: int) -> None:
        self.evidence = np.zeros((len(FIELDS), models))
        self.updated_at = np.zeros(models)
        self.recent: deque[int] = deque(maxlen=window)
        self.counts = np.zeros(models, dtype=np.int64)
        self.version = 0  # changes whenever evidence does (readings are cached by it)

    def set(self, i: int, ev: Evidence) -> None:
        self.evidence[:, i] = [getattr(ev, name) for name in FIELDS]
        self.updated_at[i] = ev.updated_at
        self.version += 1

    def widened(self, columns: np.ndarray, models: int) -> BucketArms:
        """A copy with `models` columns, where column i of this one is `columns[i]` (a
        catalog change only adds models: evidence, traffic and recency carry over)."""
        out = BucketArms(models, self.recent.maxlen or 1)
        out.evidence[:, columns] = self.evidence
        out.updated_at[columns] = self.updated_at
        out.counts[columns] = self.counts
        out.recent.extend(int(columns[i]) for i in self.recent)
        out.version = self.version + 1
        return out

    def record(self, i: int) -> None:
        if len(self.recent) == self.recent.maxlen:
            self.counts[self.recent[0]] -= 1
        self.recent.append(i)
        self.counts[i] += 1

    def read(self, policy: PolicyConfig, prior_latency_ms: np.ndarray, now: float,
             alpha0: np.ndarray, beta0: np.ndarray, price_out: np.ndarray,
             judge_accuracy: float = 1.0) -> Reading:
        """Posteriors decayed to `now`, over the quality prior Beta(alpha0, beta0)."""
        prior = policy.prior
        ev = self.evidence * posterior.decay_factor(now - self.updated_at,
                                                    policy.half_life_hours * 3600.0)
        worth = posterior.dispersion(ev[F["q_pos"]], ev[F["q_neg"]], ev[F["q_sq"]],
                                     prior.quality_strength)
        judged_pos, judged_neg = posterior.judged(ev[F["jq_pos"]], ev[F["jq_neg"]],
                                                  judge_accuracy)
        alpha = alpha0 + ev[F["q_pos"]] * worth + judged_pos
        beta = beta0 + ev[F["q_neg"]] * worth + judged_neg
        lat_mean, lat_var, lat_count = posterior.latency_params(
            ev[F["lat_n"]], ev[F["lat_sum"]], ev[F["lat_sumsq"]], prior_latency_ms, prior)
        # An answer's length depends mostly on the request: an untried model's prior is
        # what the bucket's other models answered, so its expected cost is realistic.
        bucket_out = posterior.expected_output_tokens(ev[F["out_n"]].sum(),
                                                      ev[F["out_sum"]].sum(), prior)
        out = posterior.expected_output_tokens(ev[F["out_n"]], ev[F["out_sum"]], prior,
                                               bucket_out)
        sampler = posterior.BetaSampler.of(alpha, beta)
        low = high = None
        if policy.mode == "value" and policy.contention_level > 0:
            low, high = value.bounds(sampler, policy.contention_level)
        return Reading(evidence=ev, alpha=alpha, beta=beta, latency_mean=lat_mean,
                       latency_var=lat_var, latency_count=lat_count, output_tokens=out,
                       sampler=sampler, quality_low=low, quality_high=high,
                       typical_latency_ms=posterior.typical_latency_ms(lat_mean),
                       output_cost=out * price_out, longest_answer=float(out.max()))
