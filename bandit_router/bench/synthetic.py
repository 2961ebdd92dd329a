"""Synthetic worlds with a known truth, for the experiments (drift, new models, latency).

A `Scenario` says, for each kind of request, what each model delivers (mean quality, which
may change with the number of requests of that kind so far), how slow each model is, and
which models may be chosen at each step. Outcomes are noisy: quality is a Beta draw around
the mean, latency log-normal around the median.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from bandit_router.core.settings import Config
from bandit_router.core.types import Constraints, Message, RouteRequest
from bandit_router.engine.simulate import Clock, Outcome, RouterChooser, run

QUALITY_NOISE = 20.0  # concentration of the Beta around the mean quality
LATENCY_SIGMA = 0.25
OUTPUT_TOKENS = 300


@dataclass(frozen=True)
class Scenario:
    name: str
    prompts: Mapping[str, str]  # kind -> a prompt of that kind
    quality: Callable[[str, str, int], float]  # (kind, model, requests of kind so far) -> mean
    latency_ms: Mapping[str, float]  # model -> median latency
    models: tuple[str, ...]
    available: Callable[[int], frozenset[str]] = field(default=lambda step: frozenset())
    mix: Mapping[str, float] = field(default_factory=dict)  # kind -> share of traffic


class SyntheticWorld:
    def __init__(self, scenario: Scenario) -> None:
        self.s = scenario
        self.kinds = list(scenario.prompts)
        self.seen = dict.fromkeys(self.kinds, 0)
        self.step = 0

    def request(self, item: int) -> RouteRequest:
        kind = self.kinds[item]
        allowed = self.s.available(self.step) or frozenset(self.s.models)
        text = self.s.prompts[kind]
        return RouteRequest((Message("user", text),), input_tokens=len(text) // 4,
                            constraints=Constraints(models=allowed))

    def outcome(self, item: int, model: str, rng: np.random.Generator) -> Outcome:
        kind = self.kinds[item]
        mean = self.s.quality(kind, model, self.seen[kind])
        self.seen[kind] += 1
        self.step += 1
        quality = float(rng.beta(mean * QUALITY_NOISE, (1 - mean) * QUALITY_NOISE))
        latency = self.s.latency_ms[model] * float(rng.lognormal(0.0, LATENCY_SIGMA))
        return Outcome(quality=quality, cost_usd=0.0, latency_ms=latency,
                       input_tokens=len(self.s.prompts[kind]) // 4, output_tokens=OUTPUT_TOKENS)


def simulate(scenario: Scenario, config: Config, steps: int, seed: int,
             policy: str | None = None) -> dict[str, list[str]]:
    """Run the router on the scenario; returns, per kind, the model chosen for each request."""
    world = SyntheticWorld(scenario)
    rng = np.random.default_rng(seed)
    kinds = world.kinds
    weights = np.array([scenario.mix.get(k, 1.0) for k in kinds], float)
    items = rng.choice(len(kinds), size=steps, p=weights / weights.sum())
    clock = Clock()
    chooser = RouterChooser(config, clock, seed, policy=policy)
    chosen: dict[str, list[str]] = {k: [] for k in kinds}
    for step in run(chooser, world, items, clock, rng):
        chosen[kinds[step.item]].append(step.model)
    return chosen


def rolling_share(models: list[str], model: str, window: int) -> np.ndarray:
    """Share of `model` among the last `window` requests, after each request."""
    hits = np.array([m == model for m in models], float)
    csum = np.concatenate([[0.0], np.cumsum(hits)])
    idx = np.arange(1, len(hits) + 1)
    lo = np.maximum(0, idx - window)
    return (csum[idx] - csum[lo]) / (idx - lo)


def first_crossing(share: np.ndarray, start: int, threshold: float, below: bool) -> int | None:
    """Requests after `start` until the rolling share first goes below (or above) a level."""
    after = share[start:]
    hit = np.flatnonzero(after < threshold if below else after > threshold)
    return int(hit[0]) + 1 if hit.size else None


def lasting_crossing(share: np.ndarray, start: int, threshold: float,
                     below: bool) -> int | None:
    """Requests after `start` until the rolling share crosses a level for good."""
    after = share[start:]
    wrong = np.flatnonzero(after >= threshold if below else after <= threshold)
    if wrong.size == 0:
        return 1
    return int(wrong[-1]) + 2 if wrong[-1] + 1 < len(after) else None
