"""`bandit-router bench replay PATH`: every policy, both regimes, one results folder."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from bandit_router.bench import baselines
from bandit_router.bench.metrics import (
    Trace,
    aiq,
    apgr,
    cumulative_regret,
    hull_value,
    interval95,
    settle_step,
    traffic_share,
    upper_hull,
    utility,
)
from bandit_router.bench.runner import Context, Job, Spec

WEIGHTS = (0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)
# the router's frontier: points per price doubling of the value objective (the default 2)
POINTS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.0, 10.0, 20.0)
# the router as it was: utility mode, optimistic pooling
UTILITY = (("policy", (("mode", "utility"), ("pooling", "optimistic"))),)
# groups whose sweep value is a cost weight of the utility (the baselines' objective)
COST_WEIGHT_GROUPS = ("utility-mode", "hindsight-map", "epsilon-greedy", "ucb1")
DETERMINISTIC = ("fixed", "length", "keyword", "hand_map", "hindsight", "oracle")
SETTLE_WINDOW = 200


@dataclass(frozen=True)
class Settings:
    shuffles: int = 10
    draws: int = 30_000
    steady_runs: int = 3
    weights: tuple[float, ...] = WEIGHTS
    points: tuple[float, ...] = POINTS
    ablation: bool = True
    workers: int | None = None


def specs(ctx: Context, settings: Settings) -> list[Spec]:
    out = [Spec("router", "router", "router")]
    out += [Spec(f"router@points={p:g}", "router", "router", p) for p in settings.points]
    out += [Spec("utility-mode", "router", "utility-mode", None, UTILITY)]
    out += [Spec(f"utility-mode@cost={w:g}", "router", "utility-mode", w, UTILITY)
            for w in settings.weights]
    out += [Spec(f"always:{m}", "fixed", "always", options=(("model", m),)) for m in ctx.names]
    out += [Spec("always-cheapest", "fixed", "always-cheapest", options=(("model", ctx.cheapest),)),
            Spec("always-strongest", "fixed", "always-strongest",
                 options=(("model", ctx.strongest),)),
            Spec("random", "random", "random"),
            Spec("keyword-rule", "keyword", "keyword-rule"),
            Spec("hand-written-map", "hand_map", "hand-written-map"),
            Spec("oracle", "oracle", "oracle"),
            Spec("hindsight-map", "hindsight", "hindsight-map"),
            Spec("epsilon-greedy", "epsilon_greedy", "epsilon-greedy"),
            Spec("ucb1", "ucb1", "ucb1")]
    for w in settings.weights:
        out += [Spec(f"hindsight-map@cost={w:g}", "hindsight", "hindsight-map", w),
                Spec(f"epsilon-greedy@cost={w:g}", "epsilon_greedy", "epsilon-greedy", w),
                Spec(f"ucb1@cost={w:g}", "ucb1", "ucb1", w)]
    tokens = np.ceil(ctx.ds.prompt_chars / 4)
    for q in (10, 25, 50, 75, 90):
        threshold = int(np.percentile(tokens, q))
        name = "length-rule" if q == 50 else f"length-rule@p{q}"
        out.append(Spec(name, "length", "length-rule", float(threshold)))
    pair = (("models", (ctx.strongest, ctx.cheapest)),)
    out += [Spec(f"pair@points={p:g}", "router", "pair", p, pair) for p in settings.points[::2]]
    if settings.ablation:
        out += ablation_specs()
    return out


NO_POOLING = ("policy", (("pooling", "off"),))
ABLATION = {
    "the default: value objective, set aside at 3 sigma, full pooling, rule buckets": (),
    "learned buckets on (experimental)": (("learned", (("enabled", True),)),),
    "value objective, nothing set aside": (("policy", (("contention_level", 0.0),)),),
    "value objective, set aside at 95%": (("policy", (("contention_level", 0.95),)),),
    "utility objective, optimistic pooling (the previous default)": (
        ("policy", (("mode", "utility"), ("pooling", "optimistic"))),),
    "optimistic pooling (the previous default)": (("policy", (("pooling", "optimistic"),)),),
    "no pooling": (NO_POOLING,),
    "Beta(5,5) prior (LiteLLM's), no pooling": (
        ("prior", (("quality_mean", 0.5), ("quality_strength", 10.0))), NO_POOLING),
}


def ablation_specs() -> list[Spec]:
    return [Spec(f"ablation:{name}", "router", "ablation", None, opts)
            for name, opts in ABLATION.items()]


def jobs_for(spec_list: list[Spec], settings: Settings, n_items: int) -> list[Job]:
    jobs = []
    for spec in spec_list:
        fixed = spec.kind in DETERMINISTIC
        jobs += [Job(spec, "cold_start", s, n_items)
                 for s in range(1 if fixed else settings.shuffles)]
        jobs += [Job(spec, "steady_state", s, settings.draws)
                 for s in range(1 if fixed else settings.steady_runs)]
    return jobs


# --- summarising -----------------------------------------------------------------------------

def _pass_figures(ctx: Context, t: Trace, strongest: int) -> dict[str, float]:
    q_ref = ctx.ds.quality[t.items, strongest].mean()
    c_ref = ctx.ds.cost[t.items, strongest].mean()
    return {"mean_quality": float(t.quality.mean()), "mean_cost_usd": float(t.cost.mean()),
            "total_cost_usd": float(t.cost.sum()),
            "quality_vs_strongest": float(t.quality.mean() / q_ref),
            "cost_vs_strongest": float(t.cost.mean() / c_ref)}


def summarise(ctx: Context, spec: Spec, regime: str, traces: list[Trace],
              best_utility: np.ndarray, weight: float) -> dict:
    strongest = ctx.names.index(ctx.strongest)
    measured = traces if regime == "cold_start" else [t.tail(1 / 3) for t in traces]
    per_run = [_pass_figures(ctx, t, strongest) for t in measured]
    out: dict = {"group": spec.group, "param": spec.param, "runs": len(per_run)}
    for key in per_run[0]:
        values = np.array([r[key] for r in per_run])
        out[key] = float(values.mean())
        if len(values) > 1:
            out[f"{key}_ci95"] = list(interval95(values))
    n_models = len(ctx.names)
    out["settle_requests"] = float(np.mean([settle_step(t.models, n_models, SETTLE_WINDOW)
                                            for t in traces]))
    regret = [cumulative_regret(t, best_utility, ctx.cost_ref, weight) for t in traces]
    out["final_regret"] = float(np.mean([r[-1] for r in regret]))
    shares = np.bincount(np.concatenate([t.models for t in measured]), minlength=n_models)
    out["traffic"] = {ctx.names[j]: float(shares[j] / shares.sum())
                      for j in np.flatnonzero(shares)}
    return out


def _best_utility(ctx: Context, weight: float) -> np.ndarray:
    mapping = baselines.hindsight_map(ctx.buckets, ctx.ds.quality, ctx.ds.cost, ctx.names,
                                      weight)
    picks = np.array([ctx.names.index(mapping[b]) for b in ctx.buckets])
    rows = np.arange(len(ctx.ds))
    return utility(ctx.ds.quality[rows, picks], ctx.ds.cost[rows, picks], ctx.cost_ref, weight)


def _frontiers(policies: dict, lo: float, hi: float) -> dict:
    groups: dict[str, list] = defaultdict(list)
    for name, p in policies.items():
        groups[p["group"]].append((p["cost_vs_strongest"], p["quality_vs_strongest"], name))
    out = {}
    for group, pts in groups.items():
        out[group] = {"points": sorted([c, q] for c, q, _ in pts),
                      "aiq": aiq([(c, q) for c, q, _ in pts], lo, hi)}
    return out


STATIC_GROUPS = ("always", "always-cheapest", "always-strongest", "random", "length-rule",
                 "keyword-rule", "hand-written-map")
BOUNDS = ("hindsight-map", "oracle")  # they see the answers: limits, not competitors


def dominance(policies: dict, frontier: list) -> dict[str, dict]:
    """For each static rule: the quality the router's hull reaches at the rule's cost."""
    hull = upper_hull([tuple(p) for p in frontier])
    out = {}
    for name, p in policies.items():
        if p["group"] not in STATIC_GROUPS:
            continue
        cost, quality = p["cost_vs_strongest"], p["quality_vs_strongest"]
        reach = hull_value(hull, cost)
        verdict = ("outside the router's cost range" if cost < hull[0][0]
                   else "dominated" if reach >= quality - 1e-9 else "not dominated")
        out[name] = {"cost_vs_strongest": cost, "quality_vs_strongest": quality,
                     "router_quality_at_cost": reach, "verdict": verdict}
    return out


def _pair_figures(ctx: Context, policies: dict, regime_traces: dict) -> dict:
    strong, weak = ctx.names.index(ctx.strongest), ctx.names.index(ctx.cheapest)
    points = []
    for name, traces in regime_traces.items():
        if policies[name]["group"] != "pair":
            continue
        share = float(np.mean([(t.models == strong).mean() for t in traces]))
        points.append((share, policies[name]["mean_quality"]))
    items = np.concatenate([t.items for ts in regime_traces.values() for t in ts])
    q_strong = float(ctx.ds.quality[items, strong].mean())
    q_weak = float(ctx.ds.quality[items, weak].mean())
    area, cpt = apgr(points, q_weak, q_strong)
    return {"strong": ctx.strongest, "weak": ctx.cheapest, "apgr": area, "cpt50": cpt,
            "points": sorted([s, q] for s, q in points)}


def assemble(ctx: Context, settings: Settings, results: dict[Job, Trace]) -> dict:
    """Every figure of the run, in the documented JSON schema (see benchmarks/README.md)."""
    by_regime: dict[str, dict[str, list[Trace]]] = defaultdict(lambda: defaultdict(list))
    spec_of: dict[str, Spec] = {}
    for job in sorted(results, key=lambda j: j.seed):
        by_regime[job.regime][job.spec.name].append(results[job])
        spec_of[job.spec.name] = job.spec
    default_weight = ctx.default_weight
    best = {w: _best_utility(ctx, w) for w in {default_weight, *settings.weights}}
    out: dict = {"regimes": {}, "pair": {}, "ablation": {}}
    for regime, traces_by_name in by_regime.items():
        policies = {}
        for name, traces in traces_by_name.items():
            spec = spec_of[name]
            weight = spec.param if spec.param is not None and spec.group in \
                COST_WEIGHT_GROUPS else default_weight
            policies[name] = summarise(ctx, spec, regime, traces, best[weight], weight)
        always = [p for p in policies.values() if p["group"] == "always"]
        lo = min(p["cost_vs_strongest"] for p in always)
        hi = max(p["cost_vs_strongest"] for p in always)
        frontiers = _frontiers({n: p for n, p in policies.items()
                                if p["group"] not in ("pair", "ablation")}, lo, hi)
        for p in policies.values():
            if p["group"] in frontiers:
                own = [[p["cost_vs_strongest"], p["quality_vs_strongest"]]]
                p["aiq"] = frontiers[p["group"]]["aiq"] if p["group"] in LEARNER_GROUPS \
                    else aiq([tuple(own[0])], lo, hi)
        out["pair"][regime] = _pair_figures(ctx, policies, traces_by_name)
        ablation = {n: p for n, p in policies.items() if p["group"] == "ablation"}
        if ablation:
            out["ablation"][regime] = ablation
        out["regimes"][regime] = {
            "policies": {n: p for n, p in policies.items()
                         if p["group"] not in ("pair", "ablation")},
            "frontiers": frontiers, "cost_range": [lo, hi],
            "dominance": dominance(policies, frontiers["router"]["points"])}
    return out


LEARNER_GROUPS = ("router", "utility-mode", "epsilon-greedy", "ucb1", "hindsight-map",
                  "length-rule")


def traffic_over_time(ctx: Context, trace: Trace, window: int) -> dict:
    shares = traffic_share(trace.models, len(ctx.names), window)
    return {"window": window,
            "shares": {ctx.names[j]: shares[:, j].tolist() for j in range(len(ctx.names))
                       if shares[:, j].any()}}


def regret_curves(ctx: Context, results: dict[Job, Trace], regime: str,
                  names: tuple[str, ...]) -> dict[str, list[float]]:
    weight = ctx.default_weight
    best = _best_utility(ctx, weight)
    curves = {}
    for name in names:
        traces = [t for j, t in results.items() if j.regime == regime and j.spec.name == name]
        if traces:
            stacked = np.mean([cumulative_regret(t, best, ctx.cost_ref, weight)
                               for t in traces], axis=0)
            step = max(1, len(stacked) // 500)
            curves[name] = stacked[::step].tolist()
    return curves
