"""The Markdown report of a replay, written from the same figures as the JSON."""

from __future__ import annotations

HEADLINE = ("router", "utility-mode", "hindsight-map", "oracle", "always-strongest",
            "always-cheapest", "random", "length-rule", "keyword-rule", "hand-written-map",
            "epsilon-greedy", "ucb1")


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _ci(p: dict, key: str) -> str:
    ci = p.get(f"{key}_ci95")
    return f"{_pct(p[key])} ({_pct(ci[0])}–{_pct(ci[1])})" if ci else _pct(p[key])


def headline(figures: dict) -> list[str]:
    cold = figures["regimes"]["cold_start"]["policies"]
    steady = figures["regimes"]["steady_state"]["policies"]
    lines = ["| policy | cold start: quality | cold start: cost | steady: quality | "
             "steady: cost | AIQ (steady) | settles after |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name in HEADLINE:
        c, s = cold.get(name), steady.get(name)
        if not c or not s:
            continue
        label = f"**{name}**" if name == "router" else name
        lines.append(
            f"| {label} | {_ci(c, 'quality_vs_strongest')} | {_ci(c, 'cost_vs_strongest')} | "
            f"{_pct(s['quality_vs_strongest'])} | {_pct(s['cost_vs_strongest'])} | "
            f"{s['aiq']:.4f} | {s['settle_requests']:.0f} |")
    return lines


BOUNDS = ("hindsight-map", "oracle")


def _frontier_table(figures: dict) -> list[str]:
    lines = ["| policy (curve or point) | AIQ cold start | AIQ steady state | points |",
             "|---|---:|---:|---:|"]
    cold = figures["regimes"]["cold_start"]["frontiers"]
    steady = figures["regimes"]["steady_state"]["frontiers"]
    # "always" is a set of different policies, one point each, not a curve to compare
    groups = [g for g in steady if g != "always"]
    for group in sorted(groups, key=lambda g: -steady[g]["aiq"]):
        label = f"{group} (bound: sees the answers)" if group in BOUNDS else group
        lines.append(f"| {label} | {cold[group]['aiq']:.4f} | {steady[group]['aiq']:.4f} | "
                     f"{len(steady[group]['points'])} |")
    return lines


def _dominance(figures: dict) -> list[str]:
    lines = ["| static rule | regime | its cost | its quality | router's frontier at that cost "
             "| verdict |", "|---|---|---:|---:|---:|---|"]
    for regime in ("cold_start", "steady_state"):
        for name, d in figures["regimes"][regime]["dominance"].items():
            lines.append(f"| {name} | {regime} | {_pct(d['cost_vs_strongest'])} | "
                         f"{_pct(d['quality_vs_strongest'])} | "
                         f"{_pct(d['router_quality_at_cost'])} | {d['verdict']} |")
    return lines


def _peer(figures: dict, peer: dict | None) -> list[str]:
    if not peer:
        return []
    from bandit_router.bench.metrics import hull_value, upper_hull

    lines = ["## Against the published peer", "", f"Peer: {peer.get('label', 'peer')}.", "",
             "| regime | policy | its cost | its quality | peer's curve at that cost |",
             "|---|---|---:|---:|---:|"]
    for regime in ("cold_start", "steady_state"):
        if not peer.get(regime):
            continue
        hull = upper_hull([tuple(p) for p in peer[regime]])
        for name in ("router", "utility-mode"):
            r = figures["regimes"][regime]["policies"].get(name)
            if r is None:
                continue
            at = hull_value(hull, r["cost_vs_strongest"])
            lines.append(f"| {regime} | {name} | {_pct(r['cost_vs_strongest'])} | "
                         f"{_pct(r['quality_vs_strongest'])} | {_pct(at)} |")
    return [*lines, ""]


def _ablation(figures: dict) -> list[str]:
    cold = figures.get("ablation", {}).get("cold_start", {})
    steady = figures.get("ablation", {}).get("steady_state", {})
    lines = ["| router variant | cold start: quality | cold start: cost | steady: quality | "
             "steady: cost |", "|---|---:|---:|---:|---:|"]
    for name, p in cold.items():
        s = steady.get(name)
        tail = f"{_pct(s['quality_vs_strongest'])} | {_pct(s['cost_vs_strongest'])}" if s \
            else "– | –"
        lines.append(f"| {name.removeprefix('ablation:')} | {_ci(p, 'quality_vs_strongest')} | "
                     f"{_ci(p, 'cost_vs_strongest')} | {tail} |")
    return lines


def _pair(figures: dict) -> list[str]:
    lines = ["| regime | strong | weak | APGR | CPT(50%) |", "|---|---|---|---:|---:|"]
    for regime, p in figures["pair"].items():
        lines.append(f"| {regime} | {p['strong']} | {p['weak']} | {p['apgr']:.3f} | "
                     f"{_pct(p['cpt50'])} |")
    return lines


def _all_policies(figures: dict, regime: str) -> list[str]:
    rows = figures["regimes"][regime]["policies"]
    lines = [f"| policy ({regime}) | mean quality | mean cost (USD) | quality vs strongest | "
             "cost vs strongest | regret |", "|---|---:|---:|---:|---:|---:|"]
    for name, p in sorted(rows.items(), key=lambda kv: kv[1]["cost_vs_strongest"]):
        lines.append(f"| {name} | {p['mean_quality']:.4f} | {p['mean_cost_usd']:.3e} | "
                     f"{_pct(p['quality_vs_strongest'])} | {_pct(p['cost_vs_strongest'])} | "
                     f"{p['final_regret']:.1f} |")
    return lines


def report(figures: dict, peer: dict | None = None) -> str:
    d, s = figures["dataset"], figures["settings"]
    parts = [
        f"# Replay of `{d['name']}`: {d['prompts']} prompts × {len(d['models'])} models",
        "",
        f"Command: `{figures['command']}`. Strongest model (highest mean quality): "
        f"`{d['strongest']}`; cheapest: `{d['cheapest']}`. Percentages are fractions of "
        "always-strongest's mean quality and mean cost on the same prompts. Cold start: one "
        f"pass in random order, mean of {s['shuffles']} shuffles (95% interval); steady "
        f"state: {s['draws']} draws with replacement, measured over the last third (mean of "
        f"{s['steady_runs']} runs for learning policies).",
        "", "## Headline", "", *headline(figures), "",
        f"Latency is not in the data: {figures['assumptions']['latency']}", "",
        "## Frontiers (AIQ: area under the non-decreasing cost-quality hull)", "",
        *_frontier_table(figures), "",
        "## Static rules against the router's frontier", "", *_dominance(figures), "",
        *_peer(figures, peer),
        "## Objective, contention and priors (ablation)", "",
        "Every variant differs from the default in one respect; `router` is the default. "
        "Setting aside arms that cannot matter is checked at every decision: at 95% it "
        "sets aside good arms after lucky streaks of others often enough to show.", "",
        *_ablation(figures), "",
        "## Two models (RouteLLM's APGR and CPT(50%))", "", *_pair(figures), "",
        "## Every policy", "", *_all_policies(figures, "cold_start"), "",
        *_all_policies(figures, "steady_state"), "",
        "Plots: `frontier.png`, `traffic.png`, `regret.png`.", ""]
    return "\n".join(parts)
