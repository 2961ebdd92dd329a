"""Budget pacing on a simulated day: the router's own engine, a known world, simulated time.

Requests arrive over one UTC day (evenly, or with a daytime peak); each gets a decision
from `Engine.decide`, and its outcome (quality, tokens priced from the catalog) comes back
as feedback at once, through the same `ArmBook` the service uses, with its spend counted
against the budgets as the service's storage writer does. The same seeded requests and
outcomes are run without a budget, with a paced budget and with a hard cap only, so the
runs differ only by the budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from bandit_router.config import BudgetConfig, Config
from bandit_router.errors import BudgetExhausted
from bandit_router.simulate import Clock, Outcome, RouterChooser
from bandit_router.spend import Prices
from bandit_router.types import Message, RouteRequest

DAY_S = 86_400.0
START = 1_800_057_600.0  # a UTC midnight (2027-01-15)
QUALITY_NOISE = 20.0

# A workload a support-and-engineering team might send: (prompt, share of traffic, output
# tokens, mean quality per model tier). Tiers follow the catalog's price order.
KINDS = {
    "chat": ("Hi! Could you suggest a friendly subject line for our team newsletter?", 0.40,
             60, (0.86, 0.87, 0.89, 0.89, 0.90, 0.91, 0.92)),
    "summarize": ("Summarize the key points of the following support thread for the on-call "
                  "engineer. The customer reports slow dashboards after the release. " * 6,
                  0.25, 250, (0.70, 0.72, 0.80, 0.81, 0.84, 0.87, 0.88)),
    "code": ("Refactor this python function step by step, handle every edge case and "
             "optimize it; explain the trade-offs.\n```python\ndef parse(rows):\n    import "
             "csv\n    return [r for r in csv.reader(rows)]\n```", 0.20, 900,
             (0.45, 0.50, 0.68, 0.70, 0.78, 0.88, 0.90)),
    "math": ("Prove that the sum of the first n odd numbers is n^2, then solve for x and "
             "show the steps: 3x^2 - 12x + 9 = 0. Derive and verify each step.", 0.15, 700,
             (0.40, 0.45, 0.70, 0.72, 0.74, 0.90, 0.89)),
}


@dataclass
class DayRun:
    """One simulated day: what was spent, what quality it bought, how traffic moved."""

    label: str
    spend_usd: float = 0.0
    quality_sum: float = 0.0
    requests: int = 0
    refused: int = 0
    times: list[float] = field(default_factory=list)  # seconds since midnight, per request
    spend_so_far: list[float] = field(default_factory=list)
    cost_weight: list[float] = field(default_factory=list)
    models: list[str] = field(default_factory=list)

    @property
    def mean_quality(self) -> float:
        return self.quality_sum / max(1, self.requests - self.refused)


def arrivals(n: int, shape: str, rng: np.random.Generator) -> np.ndarray:
    """Request times over the day, sorted: even, or peaking at 14:00 UTC."""
    if shape == "even":
        return START + (np.arange(n) + 0.5) * DAY_S / n
    hours = np.linspace(0, 24, 1441)
    rate = 0.25 + np.exp(-0.5 * ((hours - 14.0) / 3.5) ** 2)
    cdf = np.cumsum(rate) / rate.sum()
    return START + np.sort(np.interp(rng.random(n), cdf, hours)) * 3600.0


class World:
    def __init__(self, config: Config) -> None:
        order = sorted(config.models, key=lambda m: m.input_per_mtok + m.output_per_mtok)
        self.tier = {m.name: i for i, m in enumerate(order)}
        self.prices = {m.name: Prices.of(m) for m in config.models}
        self.kinds = list(KINDS)
        self.mix = np.array([KINDS[k][1] for k in self.kinds])

    def request(self, kind: str) -> RouteRequest:
        text = KINDS[kind][0]
        return RouteRequest((Message("user", text),), input_tokens=len(text) // 4)

    def outcome(self, kind: str, model: str, rng: np.random.Generator) -> Outcome:
        text, _, out_tokens, quality = KINDS[kind]
        tiers = len(quality)
        mean = quality[min(self.tier[model], tiers - 1)]
        q = float(rng.beta(mean * QUALITY_NOISE, (1 - mean) * QUALITY_NOISE))
        out = max(1, int(rng.normal(out_tokens, out_tokens * 0.2)))
        cost = self.prices[model].cost(len(text) // 4, out)
        return Outcome(quality=q, cost_usd=cost, latency_ms=1000.0, input_tokens=len(text) // 4,
                       output_tokens=out)


def run_day(config: Config, label: str, requests: int, seed: int, shape: str = "even",
            budget: BudgetConfig | None = None,
            progress: Callable[[int], None] | None = None) -> DayRun:
    config = replace(config, budgets=(budget,) if budget else ())
    world = World(config)
    rng = np.random.default_rng(seed)  # the workload: the same in every run with this seed
    kinds = rng.choice(len(world.kinds), size=requests, p=world.mix / world.mix.sum())
    times = arrivals(requests, shape, rng)
    outcome_rng = np.random.default_rng(seed + 1)
    clock = Clock(START)
    chooser = RouterChooser(config, clock, seed)
    policy = config.routing.default_policy
    base = config.policies[policy].weights.cost
    run = DayRun(label)
    for i, (kind_index, t) in enumerate(zip(kinds, times, strict=True)):
        clock.t = float(t)
        kind = world.kinds[kind_index]
        run.requests += 1
        try:
            model = chooser.choose(int(kind_index), world.request(kind), clock.t)
        except BudgetExhausted:  # a refusing budget: counted, not served
            run.refused += 1
            continue
        outcome = world.outcome(kind, model, outcome_rng)
        chooser.learn(outcome, clock.t)
        chooser.engine.spent("default", policy, outcome.cost_usd, clock.t)
        run.spend_usd += outcome.cost_usd
        run.quality_sum += outcome.quality
        run.times.append(clock.t - START)
        run.spend_so_far.append(run.spend_usd)
        effect = chooser.last.budget if chooser.last else None
        run.cost_weight.append(effect.cost_weight if effect else base)
        run.models.append(model)
        if progress and (i + 1) % 1000 == 0:
            progress(i + 1)
    return run
