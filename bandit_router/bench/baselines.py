"""The policies the router is compared with, each a `Chooser` run by the same loop.

Static rules (always-X, random, a length threshold, a keyword rule, a hand-written bucket
map), classic bandits over the router's own buckets (epsilon-greedy, UCB1), and two
bounds that see the answers: the best static bucket map in hindsight and the per-prompt
oracle. None of them reads a dataset's task labels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from bandit_router.core.types import RouteRequest
from bandit_router.engine.simulate import Outcome

CODE_MATH_REASONING = ("code", "function", "python", "javascript", "sql", "bug", "debug",
                       "math", "calculate", "equation", "solve", "prove", "reason", "explain",
                       "why", "step by step", "analyze", "analyse")


class Fixed:
    def __init__(self, name: str, model: str) -> None:
        self.name, self.model = name, model

    def choose(self, item: int, request: RouteRequest, now: float) -> str:
        return self.model

    def learn(self, outcome: Outcome, now: float) -> None:
        pass


class Uniform:
    def __init__(self, models: Sequence[str], seed: int, name: str = "random") -> None:
        self.name, self.models = name, list(models)
        self._rng = np.random.default_rng(seed)

    def choose(self, item: int, request: RouteRequest, now: float) -> str:
        return self.models[int(self._rng.integers(len(self.models)))]

    def learn(self, outcome: Outcome, now: float) -> None:
        pass


def _text(request: RouteRequest) -> str:
    return "\n".join(m.content for m in request.messages)


class LengthRule(Fixed):
    """Prompts of `threshold` tokens or more go to the strong model, the rest to the cheap."""

    def __init__(self, name: str, threshold: int, cheap: str, strong: str) -> None:
        super().__init__(name, cheap)
        self.threshold, self.cheap, self.strong = threshold, cheap, strong

    def choose(self, item: int, request: RouteRequest, now: float) -> str:
        tokens = request.input_tokens if request.input_tokens is not None else \
            len(_text(request)) // 4
        return self.strong if tokens >= self.threshold else self.cheap


class KeywordRule(Fixed):
    """Code, maths or reasoning words send a prompt to the strong model."""

    def __init__(self, name: str, cheap: str, strong: str,
                 words: Sequence[str] = CODE_MATH_REASONING) -> None:
        super().__init__(name, cheap)
        self.cheap, self.strong, self.words = cheap, strong, tuple(words)

    def choose(self, item: int, request: RouteRequest, now: float) -> str:
        text = _text(request).lower()
        return self.strong if any(w in text for w in self.words) else self.cheap


class BucketMap(Fixed):
    """A fixed bucket -> model map (items' buckets computed once by the router's bucketer)."""

    def __init__(self, name: str, buckets: Sequence[str], mapping: Mapping[str, str],
                 default: str) -> None:
        super().__init__(name, default)
        self.buckets, self.mapping = buckets, dict(mapping)

    def choose(self, item: int, request: RouteRequest, now: float) -> str:
        return self.mapping.get(self.buckets[item], self.model)


class Oracle(Fixed):
    """Per prompt, the cheapest model reaching the best quality: a bound no router reaches."""

    def __init__(self, quality: np.ndarray, cost: np.ndarray, names: Sequence[str]) -> None:
        super().__init__("oracle", names[0])
        best = quality.max(axis=1, keepdims=True)
        masked_cost = np.where(quality >= best, cost, np.inf)
        self.picks = [names[j] for j in masked_cost.argmin(axis=1)]

    def choose(self, item: int, request: RouteRequest, now: float) -> str:
        return self.picks[item]


class _BucketBandit:
    """Shared by the classic bandits: per-bucket running means of a [0, 1] reward."""

    def __init__(self, name: str, buckets: Sequence[str], models: Sequence[str],
                 weight: float, cost_ref: np.ndarray) -> None:
        self.name, self.buckets, self.models = name, buckets, list(models)
        self.weight, self.cost_ref = weight, cost_ref
        self._n: dict[str, np.ndarray] = {}
        self._sum: dict[str, np.ndarray] = {}
        self._last: tuple[str, int, int] | None = None

    def _stats(self, bucket: str) -> tuple[np.ndarray, np.ndarray]:
        if bucket not in self._n:
            self._n[bucket] = np.zeros(len(self.models))
            self._sum[bucket] = np.zeros(len(self.models))
        return self._n[bucket], self._sum[bucket]

    def reward(self, outcome: Outcome, item: int) -> float:
        """The router's utility without latency, rescaled from [-w, 1] to [0, 1]."""
        u = outcome.quality - self.weight * outcome.cost_usd / self.cost_ref[item]
        return (u + self.weight) / (1.0 + self.weight)

    def learn(self, outcome: Outcome, now: float) -> None:
        assert self._last is not None
        bucket, item, j = self._last
        n, total = self._stats(bucket)
        n[j] += 1
        total[j] += self.reward(outcome, item)


class EpsilonGreedy(_BucketBandit):
    def __init__(self, name: str, buckets, models, weight: float, cost_ref, epsilon: float,
                 seed: int) -> None:
        super().__init__(name, buckets, models, weight, cost_ref)
        self.epsilon = epsilon
        self._rng = np.random.default_rng(seed)

    def choose(self, item: int, request: RouteRequest, now: float) -> str:
        bucket = self.buckets[item]
        n, total = self._stats(bucket)
        untried = np.flatnonzero(n == 0)
        if untried.size:
            j = int(untried[0])
        elif self._rng.random() < self.epsilon:
            j = int(self._rng.integers(len(self.models)))
        else:
            j = int(np.argmax(total / n))
        self._last = (bucket, item, j)
        return self.models[j]


class UCB1(_BucketBandit):
    def choose(self, item: int, request: RouteRequest, now: float) -> str:
        bucket = self.buckets[item]
        n, total = self._stats(bucket)
        untried = np.flatnonzero(n == 0)
        if untried.size:
            j = int(untried[0])
        else:
            bonus = np.sqrt(2.0 * math.log(n.sum()) / n)
            j = int(np.argmax(total / n + bonus))
        self._last = (bucket, item, j)
        return self.models[j]


def hindsight_map(buckets: Sequence[str], quality: np.ndarray, cost: np.ndarray,
                  names: Sequence[str], weight: float) -> dict[str, str]:
    """The best static bucket -> model map, knowing every answer, for the utility
    quality - weight * cost / (the prompt's priciest cost)."""
    cost_ref = cost.max(axis=1, keepdims=True)
    utility = quality - weight * cost / np.where(cost_ref > 0, cost_ref, 1.0)
    labels = np.asarray(buckets)
    return {b: names[int(utility[labels == b].mean(axis=0).argmax())]
            for b in sorted(set(buckets))}
