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

from bandit_router.core.errors import BudgetExhausted
from bandit_router.core.objective import pacing_base
from bandit_router.core.settings import BudgetConfig, Config
from bandit_router.core.spend import Prices
from bandit_router.core.types import Message, RouteRequest
from bandit_router.engine.simulate import Clock, Outcome, RouterChooser

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
    value = config.policies[policy].mode == "value"
    # the trade-off each decision used: points per price doubling (value mode), else the
    # cost weight
    base = config.policies[policy].weights.points_per_price_doubling if value else \
        pacing_base(config.policies[policy])
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
        used = (effect.points_per_price_doubling if value else effect.cost_weight) \
            if effect else base
        run.cost_weight.append(used)
        run.models.append(model)
        if progress and (i + 1) % 1000 == 0:
            progress(i + 1)
    return run


# --- the experiment: several seeds and traffic shapes -----------------------------------------

SHAPES = ("even", "peak")
SHARE_OF_UNCONSTRAINED = 0.5


def _summary(run: DayRun, limit: float) -> dict:
    half = int(np.searchsorted(run.times, DAY_S / 2))
    return {"spend_usd": run.spend_usd, "spend_vs_budget": run.spend_usd / limit,
            "spent_by_noon": run.spend_so_far[min(half, len(run.spend_so_far) - 1)] / limit,
            "mean_quality": run.mean_quality, "refused": run.refused,
            "max_cost_weight": max(run.cost_weight)}


def experiment(config: Config, seeds: int, requests: int,
               progress: Callable[[str], None] = print) -> dict:
    """Per shape and seed: the unconstrained day, then a budget at half its spend, paced
    and as a hard cap only. Keeps the first seed's runs for the plots."""
    out: dict = {"requests": requests, "seeds": seeds, "share": SHARE_OF_UNCONSTRAINED,
                 "shapes": {}}
    for shape in SHAPES:
        rows, shown = [], None
        for seed in range(seeds):
            free = run_day(config, "no budget", requests, seed, shape)
            limit = free.spend_usd * SHARE_OF_UNCONSTRAINED
            paced = run_day(config, "paced budget", requests, seed, shape,
                            BudgetConfig("daily", limit))
            capped = run_day(config, "hard cap only", requests, seed, shape,
                             BudgetConfig("daily", limit, pacing=False))
            rows.append({"seed": seed, "limit_usd": limit,
                         **{name: _summary(r, limit) for name, r in
                            (("free", free), ("paced", paced), ("capped", capped))}})
            if shown is None:
                shown = {"limit": limit, "runs": [free, paced, capped]}
            progress(f"{shape} traffic, seed {seed + 1}/{seeds}: paced spend "
                     f"{rows[-1]['paced']['spend_vs_budget']:.3f}x the budget")
        out["shapes"][shape] = {"rows": rows, "shown": shown}
    return out


def _worst(rows: list[dict], run: str) -> float:
    return max(abs(r[run]["spend_vs_budget"] - 1.0) for r in rows)


def markdown(result: dict) -> str:
    lines = ["# Budgets that pace: half the unconstrained spend, on a simulated day", "",
             f"{result['requests']:,} requests over one UTC day (a mixed workload: chat, "
             "summaries, code, maths), run by the router's own engine; outcomes from a known "
             "world, tokens priced from the bundled catalog. For each seed the day is run "
             f"without a budget, then with a daily budget of {result['share']:.0%} of that "
             "spend, paced (the default) and as a hard cap only (`pacing = false`: the "
             f"cheapest model once spent). {result['seeds']} seeds per traffic shape: "
             "`even` arrivals, and `peak` (a daytime peak at 14:00 UTC, five times the "
             "night's rate).", "",
             "| traffic | run | spend / budget: mean | worst distance from budget | "
             "spent by noon | mean quality | quality loss vs no budget |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for shape, data in result["shapes"].items():
        rows = data["rows"]
        free_q = float(np.mean([r["free"]["mean_quality"] for r in rows]))
        for run, label in (("free", "no budget"), ("paced", "paced budget"),
                           ("capped", "hard cap only")):
            spend = float(np.mean([r[run]["spend_vs_budget"] for r in rows]))
            noon = float(np.mean([r[run]["spent_by_noon"] for r in rows]))
            quality = float(np.mean([r[run]["mean_quality"] for r in rows]))
            lines.append(f"| {shape} | {label} | {spend:.3f}x | {_worst(rows, run):.1%} | "
                         f"{noon:.0%} | {quality:.3f} | {free_q - quality:+.3f} |")
    paced = max(_worst(d["rows"], "paced") for d in result["shapes"].values())
    met = "met" if paced <= 0.05 else "missed"
    lines += ["", f"Target: a paced budget ends within ±5% of its limit in every run: "
              f"**{met}** (worst {paced:.1%}).", "", "![pacing](budget.png)", ""]
    return "\n".join(lines)


def plot(result: dict, path) -> None:
    from bandit_router.bench import style

    shape = "peak" if "peak" in result["shapes"] else next(iter(result["shapes"]))
    shown = result["shapes"][shape]["shown"]
    limit = shown["limit"]
    free, paced, capped = shown["runs"]
    fig, axes = style.figure(1, 3, width=17, height=4.8)
    ax = axes[0]
    for run, color in ((free, "#999999"), (paced, "#0072B2"), (capped, "#D55E00")):
        ax.plot(np.array(run.times) / 3600, np.array(run.spend_so_far) / limit, color=color,
                label=run.label, lw=1.8)
    ax.plot([0, 24], [0, 1], "k--", lw=1, label="even pace")
    ax.axhline(1.0, color="k", lw=0.6)
    ax.set(xlabel="hour of the day (UTC)",
           ylabel="spend so far, as a fraction\nof the daily budget",
           title=f"Spend through the day ({shape} traffic)", xlim=(0, 24))
    ax.legend(fontsize=9)
    ax = axes[1]
    ax.plot(np.array(paced.times) / 3600, paced.cost_weight, color="#0072B2", lw=1.8)
    ax.set(xlabel="hour of the day (UTC)",
           ylabel="points per price doubling\n(cost weight in utility mode)",
           title="The paced price weight", xlim=(0, 24))
    ax = axes[2]
    models = sorted(set(paced.models), key=lambda m: (free.models + paced.models).count(m))
    colors = style.model_colors(models)
    hours = (np.array(paced.times) // 3600).astype(int)
    bottom = np.zeros(24)
    for model in reversed(models):
        counts = np.array([sum(1 for h, m in zip(hours, paced.models, strict=True)
                               if h == hour and m == model) for hour in range(24)], float)
        totals = np.bincount(hours, minlength=24).astype(float)
        share = np.divide(counts, totals, out=np.zeros(24), where=totals > 0)
        ax.bar(range(24), share, bottom=bottom, label=model, width=1.0, align="edge",
               color=colors[model])
        bottom += share
    ax.set(xlabel="hour of the day (UTC)", ylabel="share of the hour's requests",
           title="Paced run: where traffic goes", xlim=(0, 24), ylim=(0, 1))
    ax.grid(False)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), title="model")
    style.save(fig, path)
