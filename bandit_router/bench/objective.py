"""Synthetic worlds that test the objective itself: do equals go to the cheapest, and does a
model that is never worth choosing leave the other choices alone?

Two request kinds, mixed 50/50: `easy` ones every model answers about equally well, and
`hard` ones where quality grows with price. The router sees only prompts and feedback, as
in the other experiments (bench/synthetic.py); spend is priced from the catalog.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from bandit_router.bench.synthetic import OUTPUT_TOKENS, Scenario, rolling_share, simulate
from bandit_router.core.settings import Config, Model, default_pooling

EASY = "What is the capital of France? Answer in one word."
HARD = ("Refactor this python function step by step, handle every edge case and optimize "
        "it; explain the trade-offs.\n```python\ndef parse(rows):\n    import csv\n"
        "    return [r for r in csv.reader(rows)]\n```")
PROMPTS = {"easy": EASY, "hard": HARD}
WINDOW = 100  # requests of a kind behind a share measurement
UNUSED = "unused-dear-model"  # the model the unused-model experiment adds


def by_price(config: Config) -> list[Model]:
    """The catalog's models, cheapest first (by the price of a typical answer)."""
    return sorted(config.models, key=lambda m: (request_cost(m, "easy"), m.name))


def request_cost(model: Model, kind: str) -> float:
    """USD of one request of `kind` on `model`, as the world answers it."""
    tokens_in = len(PROMPTS[kind]) // 4
    return (tokens_in * model.input_per_mtok + OUTPUT_TOKENS * model.output_per_mtok) * 1e-6


def rising(low: float, high: float, models: list[Model]) -> dict[str, float]:
    """Qualities from `low` (cheapest) to `high` (dearest), linear in log price."""
    logs = np.log([request_cost(m, "easy") for m in models])
    span = logs.max() - logs.min() or 1.0
    return {m.name: float(low + (high - low) * (x - logs.min()) / span)
            for m, x in zip(models, logs, strict=True)}


@dataclass(frozen=True)
class World:
    """Mean quality per kind and model; the scenario built from it."""

    name: str
    quality: dict[str, dict[str, float]]  # kind -> model -> mean quality

    def scenario(self) -> Scenario:
        models = tuple(self.quality["easy"])
        return Scenario(name=self.name, prompts=PROMPTS,
                        quality=lambda kind, model, seen: self.quality[kind][model],
                        latency_ms=dict.fromkeys(models, 2000.0), models=models)


def equals_world(config: Config) -> World:
    """Equally good on easy requests (0.9 each) at distinct prices. A model priced within
    1% of a cheaper one is left out: between two models of one price, either is right."""
    models, kept = by_price(config), []
    for m in models:
        if not kept or request_cost(m, "easy") > 1.01 * request_cost(kept[-1], "easy"):
            kept.append(m)
    return World("equals", {"easy": dict.fromkeys((m.name for m in kept), 0.9),
                            "hard": rising(0.45, 0.9, kept)})


def closed_loop_world(config: Config) -> World:
    """Every model answers easy requests about equally well (0.90 to 0.92, dearer a bit
    better), hard ones better the dearer it is (0.45 to 0.90)."""
    models = by_price(config)
    return World("closed_loop", {"easy": rising(0.90, 0.92, models),
                                 "hard": rising(0.45, 0.90, models)})


def with_unused(config: Config, world: World) -> tuple[Config, World]:
    """The catalog plus a model 25x dearer than its dearest and worse than every model at
    everything: a rational router never chooses it."""
    dearest = by_price(config)[-1]
    extra = replace(dearest, name=UNUSED, provider="synthetic",
                    input_per_mtok=25 * dearest.input_per_mtok,
                    output_per_mtok=25 * dearest.output_per_mtok, upstream=None)
    quality = {kind: {**q, UNUSED: min(q.values()) - 0.05} for kind, q in world.quality.items()}
    return replace(config, models=(*config.models, extra)), World(world.name, quality)


@dataclass(frozen=True)
class Run:
    chosen: dict[str, list[str]]  # kind -> model of each request of that kind


def run(config: Config, world: World, steps: int, seed: int) -> Run:
    return Run(simulate(world.scenario(), config, steps, seed))


def share(models: list[str], names: set[str] | frozenset[str], last: int | None = None,
          upto: int | None = None) -> float:
    """Share of `names` among requests (up to the `upto`-th, the `last` of them)."""
    picked = models[:upto] if upto is not None else models
    if last is not None:
        picked = picked[-last:]
    return sum(m in names for m in picked) / max(1, len(picked))


def cost_ratio(config: Config, models: list[str], kind: str, against: str) -> float:
    """What the requests of `kind` cost, as a fraction of sending them all to `against`."""
    price = {m.name: request_cost(m, kind) for m in config.models}
    return sum(price[m] for m in models) / (len(models) * price[against])


def curves(runs: list[Run], kind: str, models: tuple[str, ...]) -> dict[str, list[float]]:
    """Mean (over seeds) rolling share of each model among requests of `kind`."""
    length = min(len(r.chosen[kind]) for r in runs)
    return {m: np.mean([rolling_share(r.chosen[kind][:length], m, WINDOW) for r in runs],
                       axis=0).tolist() for m in models}


def seeds(n: int, body: Callable[[int], Run]) -> list[Run]:
    return [body(s) for s in range(n)]


def in_mode(config: Config, mode: str) -> Config:
    """`config` with its default policy in another mode and that mode's default pooling
    (the previous default: utility mode, optimistic pooling)."""
    name = config.routing.default_policy
    policies = dict(config.policies)
    policies[name] = replace(policies[name], mode=mode,  # type: ignore[arg-type]
                             pooling=default_pooling(mode))
    return replace(config, policies=type(config.policies)(policies))


def lasting_above(share: np.ndarray, level: float) -> int | None:
    """Requests until a rolling share is at or above `level` for good (None: never)."""
    below = np.flatnonzero(share < level)
    if below.size == 0:
        return 1
    return int(below[-1]) + 2 if below[-1] + 1 < share.size else None


def tiers(config: Config) -> dict[str, int]:
    """Each model's price tier: models priced within 1% of the next cheaper share its tier
    (between two of one price, either choice is right, and runs may differ on it)."""
    out, tier, last = {}, -1, None
    for m in by_price(config):
        price = request_cost(m, "easy")
        if last is None or price > 1.01 * last:
            tier += 1
        out[m.name], last = tier, price
    return out


def distance(a: list[str], b: list[str], tier: dict[str, int]) -> float:
    """Total-variation distance between two runs' traffic shares over price tiers (a model
    outside `tier` counts as a tier of its own)."""
    top = max(tier.values()) + 1

    def shares(xs: list[str]) -> np.ndarray:
        counts = np.bincount([tier.get(x, top) for x in xs], minlength=top + 1).astype(float)
        return counts / max(1.0, counts.sum())
    return float(0.5 * np.abs(shares(a) - shares(b)).sum())
