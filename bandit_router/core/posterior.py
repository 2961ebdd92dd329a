"""Posterior math for one arm: what feedback taught, how it fades, what it predicts.

An arm's `Evidence` is only what feedback added on top of the prior; the prior itself comes
from config at read time, so a changed prior needs no relearning and the evidence can
always be rebuilt by replaying the feedback log through `observe`.

The read-side functions take plain floats or numpy arrays alike, so the engine can score
every model of a bucket in one vectorised pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

import numpy as np
from scipy.special import betaincinv

from bandit_router.core.settings import Prior
from bandit_router.core.types import MAX_LATENCY_MS, MAX_TOKENS, QUALITY_SOURCES

_MIN_LATENCY_MS = 1.0  # log-latency needs a positive value; sub-millisecond answers count as 1 ms
_MIN_LOG_VAR = 1e-6
_MAX_LOG_LATENCY = math.log(MAX_LATENCY_MS)
CHANGE_Z = 4.0  # how many standard errors recent quality must stray to count as a change


@dataclass(frozen=True, slots=True)
class Evidence:
    """Decayable sufficient statistics added by feedback (prior not included)."""

    q_pos: float = 0.0  # sum of quality
    q_neg: float = 0.0  # sum of (1 - quality)
    lat_n: float = 0.0  # log-latency observations
    lat_sum: float = 0.0
    lat_sumsq: float = 0.0
    in_n: float = 0.0  # input-token observations
    in_sum: float = 0.0
    out_n: float = 0.0  # output-token observations
    out_sum: float = 0.0
    recent_pos: float = 0.0  # quality over roughly the last `change_window` observations
    recent_neg: float = 0.0
    q_sq: float = 0.0  # sum of quality squared: how much answers' quality spreads
    # a noisy judge's scores, as reported (sum of score, sum of 1 - score): read as quality
    # at read time (`judged`), with the judge's accuracy then configured
    jq_pos: float = 0.0
    jq_neg: float = 0.0
    updated_at: float = 0.0
    # since when recent quality has strayed from the long run (0: it has not), and when it
    # last did; stamps, not statistics, so they never decay
    deviant_since: float = 0.0
    deviant_last: float = 0.0

    @property
    def quality_n(self) -> float:
        return self.q_pos + self.q_neg

    @property
    def judge_n(self) -> float:
        return self.jq_pos + self.jq_neg

    @property
    def facts_n(self) -> float:
        """Quality facts of every source the arm holds (what the evidence cap bounds)."""
        return self.quality_n + self.judge_n


# times, not statistics: never decayed or capped
STAMPS = ("updated_at", "deviant_since", "deviant_last")
FIELDS = tuple(f.name for f in fields(Evidence) if f.name not in STAMPS)


def decay_factor(elapsed_s, half_life_s: float):
    """Weight left on evidence `elapsed_s` old; 1 when decay is off. Never above 1."""
    if half_life_s <= 0:
        return np.ones_like(elapsed_s) if isinstance(elapsed_s, np.ndarray) else 1.0
    return np.exp2(-np.maximum(elapsed_s, 0.0) / half_life_s)


def sound(ev: Evidence) -> bool:
    """Every statistic finite and every count and sum that must be non-negative, so."""
    values = [getattr(ev, name) for name in FIELDS]
    if not all(math.isfinite(v) for v in values) or \
            not all(math.isfinite(getattr(ev, name)) for name in STAMPS):
        return False
    # non-negative, log-latency too: latencies count from 1 ms
    return all(0 <= v <= _EVIDENCE_LIMIT for v in values)


def repaired(ev: Evidence) -> Evidence:
    """An unsound arm (a damaged snapshot row) forgets what it cannot trust: non-finite or
    negative statistics are dropped to zero, so the posterior falls back toward its prior."""
    fixed = {name: (v if math.isfinite(v) and 0 <= v <= _EVIDENCE_LIMIT else 0.0)
             for name, v in ((name, getattr(ev, name)) for name in FIELDS)}
    stamps = {name: getattr(ev, name) if math.isfinite(getattr(ev, name)) else 0.0
              for name in STAMPS}
    return Evidence(**fixed, **stamps)


def decayed(ev: Evidence, now: float, half_life_s: float) -> Evidence:
    f = float(decay_factor(now - ev.updated_at, half_life_s))
    if f == 1.0:
        return replace(ev, updated_at=max(now, ev.updated_at))
    scaled = {name: getattr(ev, name) * f for name in FIELDS}
    return Evidence(**scaled, updated_at=max(now, ev.updated_at),
                    deviant_since=ev.deviant_since, deviant_last=ev.deviant_last)


# Each count with the sums it scales: capping keeps every mean, shrinks only the confidence.
# Quality facts of every source share one cap: it bounds the observations an arm keeps.
_CAPPED_GROUPS = (("facts_n", ("q_pos", "q_neg", "q_sq", "jq_pos", "jq_neg")),
                  ("lat_n", ("lat_n", "lat_sum", "lat_sumsq")),
                  ("in_n", ("in_n", "in_sum")), ("out_n", ("out_n", "out_sum")))


def _capped(ev: Evidence, cap: float) -> Evidence:
    if cap <= 0:
        return ev
    changes: dict[str, float] = {}
    for count, group in _CAPPED_GROUPS:
        n = getattr(ev, count)
        if n > cap:
            changes.update({f: getattr(ev, f) * (cap / n) for f in group})
    return replace(ev, **changes) if changes else ev


# A single answer moves a learned answer length by a bounded step: an observation counts at
# most this many times the arm's current expectation, so one wild claim cannot make a model
# look 10,000x dearer; a real change still shows, by repeated steps.
OUTLIER_FACTOR = 8.0


def observe(ev: Evidence, facts: tuple[tuple[str, float], ...], now: float,
            half_life_s: float, cap: float, change_window: float = 0.0,
            prior: Prior | None = None, change_min_s: float = 0.0,
            weights: Mapping[str, float] | None = None) -> Evidence:
    """Fold one feedback message's facts into the evidence: decay to `now`, add (bounded
    against the arm's current estimates; `prior` gives the answer length's prior), cap, and
    (with a `change_window`) forget the past once recent quality has said for at least
    `change_min_s` that the arm changed. A quality fact counts as its source's weight of
    observations (`weights`: client, judge, implicit; 1 each unless given). A judge of
    `judge_accuracy` below 1 is noisy: its scores are kept apart, as reported (`judged`
    reads them), and take no part in change detection."""
    if any(fact == "reset" for fact, _ in facts):  # an administrator cleared this arm
        return Evidence(updated_at=max(now, ev.updated_at))
    ev = decayed(ev, now, half_life_s)
    add = dict.fromkeys(FIELDS, 0.0)
    quality = False  # whether the message held a quality fact (of any source)
    for fact, value in facts:
        # The HTTP layer already refuses these; the log, a replay or a test might not.
        # A NaN or a negative count must never reach a posterior.
        if not math.isfinite(value) or value < 0:
            continue
        value = min(value, _FACT_LIMITS.get(fact, value))
        source = QUALITY_SOURCES.get(fact)
        if source is not None:
            weight = 1.0 if weights is None else weights.get(source, 1.0)
            value = min(value, 1.0)
            if source == "judge" and weights is not None and \
                    weights.get("judge_accuracy", 1.0) < 1.0:
                add["jq_pos"] += weight * value
                add["jq_neg"] += weight * (1.0 - value)
                continue
            quality = quality or weight > 0
            add["q_pos"] += weight * value
            add["q_neg"] += weight * (1.0 - value)
            add["q_sq"] += weight * value * value
        elif fact == "latency_ms":
            # log-latency: one wild answer moves the typical (geometric-mean) latency by
            # its log over the count, and a reported latency is at most an hour (wire)
            x = math.log(max(value, _MIN_LATENCY_MS))
            add["lat_n"] += 1.0
            add["lat_sum"] += x
            add["lat_sumsq"] += x * x
        elif fact == "input_tokens":
            add["in_n"] += 1.0
            add["in_sum"] += value
        elif fact == "output_tokens":
            add["out_n"] += 1.0
            add["out_sum"] += _bounded_length(ev, value, prior)
    summed = {name: getattr(ev, name) + add[name] for name in FIELDS}
    stamps = {"updated_at": ev.updated_at, "deviant_since": ev.deviant_since,
              "deviant_last": ev.deviant_last}
    if quality and change_window > 0:
        keep = 1.0 - 1.0 / change_window  # an exponential window of about that many answers
        summed["recent_pos"] = ev.recent_pos * keep + add["q_pos"]
        summed["recent_neg"] = ev.recent_neg * keep + add["q_neg"]
        stamps["deviant_since"], stamps["deviant_last"] = _after_change(
            summed, change_window, now, change_min_s, ev.deviant_since, ev.deviant_last)
    return _capped(Evidence(**summed, **stamps), cap)


def judged(jq_pos, jq_neg, accuracy: float):
    """What a noisy judge's scores say of an arm's quality, as (successes, failures) of a
    Beta, for floats or arrays alike. A judge of accuracy p grades a good answer good with
    probability p and a bad one good with 1 - p, so its mean score is
    y = (1 - p) + (2p - 1) * quality: read back, quality = (y - (1 - p)) / (2p - 1), unbiased
    (taking scores at face value would squeeze every arm toward 0.5 and make price
    differences look larger than quality ones). The estimate is worth fewer answers than
    it has: as many as give a Beta the estimate's own variance,
    n (2p-1)^2 t(1-t) / (p(1-p) + (2p-1)^2 t(1-t)), with t the estimate shrunk by a
    uniform prior (so it is never 0 or 1): about 0.49 n for a 0.85 judge of a middling arm,
    less near the edges, where a noisy judge says least. p = 1 reads scores as they are."""
    if accuracy >= 1.0:
        return jq_pos, jq_neg
    n = np.asarray(jq_pos + jq_neg, dtype=float)
    if not n.any():  # nothing judged (most buckets of most setups): nothing to read
        return (0.0, 0.0) if n.ndim == 0 else (np.zeros_like(n), np.zeros_like(n))
    gain = 2.0 * accuracy - 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, jq_pos / np.where(n > 0, n, 1.0), 0.5)
    theta = clip((mean - (1.0 - accuracy)) / gain, 0.0, 1.0)
    info = n * gain * gain
    t = (theta * info + 1.0) / (info + 2.0)
    spread = gain * gain * t * (1.0 - t)
    worth = n * spread / (accuracy * (1.0 - accuracy) + spread)
    pos, neg = worth * theta, worth * (1.0 - theta)
    return (float(pos), float(neg)) if pos.ndim == 0 else (pos, neg)


def _bounded_length(ev: Evidence, tokens: float, prior: Prior | None) -> float:
    """An answer length of at most OUTLIER_FACTOR times the arm's expected one."""
    if prior is None:
        return tokens
    expected = expected_output_tokens(ev.out_n, ev.out_sum, prior)
    return min(tokens, OUTLIER_FACTOR * max(expected, 1.0))


def _deviant(s: dict[str, float], window: float) -> bool:
    """Whether the recent window's mean quality strays more than CHANGE_Z standard errors
    from the long-run mean (with enough of both to tell)."""
    recent_n = s["recent_pos"] + s["recent_neg"]
    long_n = s["q_pos"] + s["q_neg"]
    if recent_n < window / 2 or long_n < 2 * recent_n:
        return False
    long_mean = s["q_pos"] / long_n
    spread = math.sqrt(max(long_mean * (1.0 - long_mean), 0.01) / recent_n)
    return abs(s["recent_pos"] / recent_n - long_mean) > CHANGE_Z * spread


def _after_change(s: dict[str, float], window: float, now: float, min_span_s: float,
                  since: float, last: float) -> tuple[float, float]:
    """Change detection: the new (`deviant_since`, `deviant_last`) from the old ones; when
    the arm has changed, the long run in `s` restarts from the recent window. A change
    counts once recent quality has strayed at every answer for `min_span_s`, with answers
    all along: a pause of a quarter of the span breaks the run. So neither a burst, however
    large, nor two bursts around a quiet hour can fake a model update or an outage; only
    feedback that outweighs the honest feedback for the whole span can."""
    if not _deviant(s, window):
        return 0.0, 0.0
    if not since or now - last > min_span_s / 4:
        since = now  # a new run of straying answers
    if now - since < min_span_s:
        return since, now
    # the window keeps no squares: assume the widest spread its mean allows (sum q^2 <= sum q)
    kept = (s["recent_pos"] + s["recent_neg"]) / (s["q_pos"] + s["q_neg"])
    s["q_pos"], s["q_neg"], s["q_sq"] = s["recent_pos"], s["recent_neg"], s["recent_pos"]
    s["jq_pos"], s["jq_neg"] = s["jq_pos"] * kept, s["jq_neg"] * kept  # as old as the rest
    return 0.0, 0.0


# --- reading a posterior (floats or arrays) -------------------------------------------------

def clip(x, low, high):
    """np.clip for the few-element arrays of a bucket: the same result (nan stays nan) at
    about half its cost, which is paid several times per reading."""
    return np.minimum(np.maximum(x, low), high)


def dispersion(q_pos, q_neg, q_sq, prior_strength: float):
    """How many times more an arm's evidence is worth than Bernoulli answers would be.

    The Beta posterior counts an answer of quality q as q of a success: right for 0/1
    scores, but graded scores that agree (a judge's 0.88, 0.91, 0.90, ...) say far more
    about the mean than coin flips of the same mean do. The ratio of the Bernoulli variance
    m(1-m) to the answers' own spread (their sample variance, shrunk toward the Bernoulli
    variance by the prior's strength in answers) scales the evidence: 1 for 0/1 scores,
    more for graded ones.

    A sum of squares below what the mean allows (sum q^2 >= (sum q)^2 / n) is not a
    spread but a missing one (evidence written without it): it counts as Bernoulli."""
    n = np.asarray(q_pos + q_neg, dtype=float)
    if not n.any():  # no quality yet: Bernoulli answers, trivially
        return np.float64(1.0) if n.ndim == 0 else np.ones_like(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = clip(np.where(n > 0, q_pos / n, 0.5), 0.0, 1.0)
        bernoulli = mean * (1.0 - mean)
        second = np.where(n > 0, q_sq / n, 0.0)
        known = second >= mean * mean - 1e-9
        spread = clip(second - mean * mean, 0.0, bernoulli)
        # the answers' sum of squared deviations has n - 1 degrees of freedom
        shrunk = (n * spread + prior_strength * bernoulli) / \
            (np.maximum(n - 1.0, 0.0) + prior_strength)
        # never worth less than Bernoulli answers: m(1-m) is the widest spread [0, 1] allows
        ratio = np.where(known & (n > 0) & (shrunk > 0),
                         np.maximum(bernoulli / shrunk, 1.0), 1.0)
    # ratio >= 1 or nan: nan and inf count as Bernoulli answers
    ratio = np.where(ratio < np.inf, ratio, 1.0)
    return ratio[()] if ratio.ndim == 0 else ratio


def quality_params(q_pos, q_neg, prior: Prior):
    """Beta(alpha, beta) of quality: the prior's pseudo-counts plus the evidence."""
    return prior.alpha + q_pos, prior.beta + q_neg


_FACT_LIMITS = {"quality": 1.0, "latency_ms": MAX_LATENCY_MS, "input_tokens": MAX_TOKENS,
                "output_tokens": MAX_TOKENS}
_EVIDENCE_LIMIT = 1e15  # no statistic of a real arm comes near; anything beyond is damage
NORMAL_FROM = 25.0  # Beta(a, b) with a, b >= this is drawn from its normal approximation
_TINY, _HUGE = 1e-6, 1e12


@dataclass(frozen=True, slots=True)
class BetaSampler:
    """Thompson draws of quality from Beta(alpha, beta), one per arm.

    Arms with plenty of evidence on both sides are drawn from the Beta's normal
    approximation (same mean and variance; with a, b >= 25 the two are indistinguishable
    for ranking, and the draw is several times cheaper); the others from the Beta itself.
    """

    alpha: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    exact: np.ndarray  # arms drawn from the Beta itself
    any_exact: bool
    all_exact: bool

    @classmethod
    def of(cls, alpha: np.ndarray, beta: np.ndarray) -> BetaSampler:
        # Last line of defence: a Beta needs a, b > 0 and finite, or numpy raises on every draw.
        # fmax/fmin: nan and -inf become _TINY, inf becomes _HUGE (a tenth of np.clip's cost)
        alpha = np.fmin(np.fmax(alpha, _TINY), _HUGE)
        beta = np.fmin(np.fmax(beta, _TINY), _HUGE)
        n = alpha + beta
        mean = alpha / n
        exact = (alpha < NORMAL_FROM) | (beta < NORMAL_FROM)
        return cls(alpha, beta, mean, np.sqrt(mean * (1.0 - mean) / (n + 1.0)), exact,
                   bool(exact.any()), bool(exact.all()))

    def draw(self, rng: np.random.Generator, arms: np.ndarray | None = None) -> np.ndarray:
        """Draws for `arms` (indices; None = every arm). A normal draw may stray a little
        outside [0, 1]; that changes no ranking, and explanations clip it."""
        if self.all_exact:  # a young bucket: every arm from its Beta
            return _betas(rng, self.alpha if arms is None else self.alpha[arms],
                          self.beta if arms is None else self.beta[arms])
        mean, sd, exact = (self.mean, self.sd, self.exact) if arms is None else \
            (self.mean[arms], self.sd[arms], self.exact[arms])
        normal = rng.standard_normal  # one at a time: see _betas
        q = np.array([normal() for _ in range(mean.size)])
        q *= sd
        q += mean
        if self.any_exact and (arms is None or exact.any()):
            which = np.flatnonzero(exact) if arms is None else arms[exact]
            q[exact] = _betas(rng, self.alpha[which], self.beta[which])
        return q


def _betas(rng: np.random.Generator, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """rng.beta(alpha, beta), drawn one arm at a time: the same numbers from the same
    stream, at half the cost for a bucket's few arms, and without releasing the GIL (numpy
    releases it around an array draw; on a busy server, getting it back from the storage
    thread cost more than the draw)."""
    draw = rng.beta
    return np.array([draw(a, b) for a, b in zip(alpha.tolist(), beta.tolist(), strict=True)])


def quality_interval(alpha, beta, level: float = 0.95):
    """Central credible interval of a Beta posterior."""
    tail = (1.0 - level) / 2.0
    return betaincinv(alpha, beta, tail), betaincinv(alpha, beta, 1.0 - tail)


def latency_params(n, total, total_sq, prior_latency_ms, prior: Prior):
    """Normal posterior of log-latency: (mean, spread variance, count incl. prior)."""
    mu0 = np.log(prior_latency_ms)
    n0 = prior.latency_strength
    count = n0 + n
    # Observed log-latencies lie in [0, log(a day)]; clipping keeps damaged statistics from
    # overflowing exp() and costs a sound posterior nothing.
    mean = clip((n0 * mu0 + total) / count, 0.0, _MAX_LOG_LATENCY)
    second = (n0 * (prior.latency_log_sd ** 2 + mu0 * mu0) + total_sq) / count
    var = clip(second - mean * mean, _MIN_LOG_VAR, _MAX_LOG_LATENCY ** 2)
    return mean, var, count


def typical_latency_ms(mean):
    """The geometric mean (median of the log-normal). Unlike the log-normal's mean, it
    cannot rise after a fast answer: one outlier widens the spread, not the median."""
    return np.exp(mean)


def sample_latency_ms(mean, var, count, z):
    """A Thompson draw of the typical latency, `z` standard-normal noise."""
    return np.exp(mean + np.sqrt(var / count) * z)


def expected_output_tokens(n, total, prior: Prior, prior_mean=None):
    """Posterior mean answer length; `prior_mean` defaults to the configured guess."""
    s0 = prior.output_tokens_strength
    mean = prior.output_tokens if prior_mean is None else prior_mean
    return (s0 * mean + total) / (s0 + n)
