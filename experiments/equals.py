"""Equals go to the cheapest: several models equally good on a bucket, at distinct prices.

Easy requests: every model answers at 0.9 (graded scores, a judge's noise). Hard requests:
quality grows with price. Target: the cheapest carries at least 80% of the easy bucket's
requests 401-500, in every seed. The same script runs the closed loop of issue 13 (easy
requests 0.90-0.92, dearer a bit better) for the three cheapest models' share of easy
traffic and what easy requests cost against sending them all to the dearest model. Each is
run with the default policy and with the previous default (utility mode).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from _common import arguments, config

from bandit_router.bench import objective as ob
from bandit_router.bench.plots import save_shares

MODES = ("value", "utility")


def equals(cfg, seeds: int, steps: int) -> dict:
    world = ob.equals_world(cfg)
    models = tuple(world.quality["easy"])
    cheapest = models[0]
    out = {"models": models, "cheapest": cheapest}
    for mode in MODES:
        runs = ob.seeds(seeds, lambda s, m=mode: ob.run(ob.in_mode(cfg, m), world, steps, s))
        shares = [ob.share(r.chosen["easy"], {cheapest}, last=100, upto=500) for r in runs]
        lasting = [ob.lasting_above(np.array(ob.curves([r], "easy", (cheapest,))[cheapest]),
                                    0.8) for r in runs]
        out[mode] = {"share_401_500": shares, "lasting_80": lasting,
                     "curves": ob.curves(runs, "easy", models)}
    return out


def closed_loop(cfg, seeds: int, steps: int) -> dict:
    world = ob.closed_loop_world(cfg)
    by_price = ob.by_price(cfg)
    three, dearest = {m.name for m in by_price[:3]}, by_price[-1].name
    out = {"three_cheapest": sorted(three), "dearest": dearest}
    for mode in MODES:
        c = ob.in_mode(cfg, mode)
        runs = ob.seeds(seeds, lambda s, c=c: ob.run(c, world, steps, s))
        out[mode] = {
            "three_cheapest_share": [ob.share(r.chosen["easy"], three, last=500) for r in runs],
            "easy_cost_vs_dearest": [ob.cost_ratio(cfg, r.chosen["easy"], "easy", dearest)
                                     for r in runs],
            "curves": ob.curves(runs, "easy", tuple(m.name for m in by_price))}
    return out


def _range(xs: list[float], pct: bool = True) -> str:
    f = (lambda x: f"{x:.0%}") if pct else (lambda x: f"{x:.2f}")
    return f"{f(min(xs))}–{f(max(xs))} (mean {f(float(np.mean(xs)))})"


def markdown(eq: dict, loop: dict, seeds: int, steps: tuple[int, int]) -> str:
    lines = ["# Equals go to the cheapest", "",
             "Several models are equally good on a bucket, at distinct prices: does the "
             "cheapest carry it? The utility rows run the previous objective (utility mode, "
             "optimistic pooling) on today's posteriors.", "",
             f"Equally good models (0.9 on easy requests): {', '.join(eq['models'])}; a model "
             "priced within 1% of a cheaper one is left out (between two of one price either "
             f"is right). {steps[0]} requests, half easy; {seeds} seeds.", "",
             "| policy | cheapest's share of easy requests 401–500 | easy requests until it "
             "holds 80% (rolling 100) for good | target (≥ 80% in every seed) |",
             "|---|---:|---:|---|"]
    for mode in MODES:
        r = eq[mode]
        reached = [x for x in r["lasting_80"] if x is not None]
        worst = f"worst {max(reached)}" if len(reached) == len(r["lasting_80"]) else \
            f"{len(reached)}/{seeds} seeds"
        met = min(r["share_401_500"]) >= 0.8
        label = "default (value)" if mode == "value" else "utility mode (the previous objective)"
        lines.append(f"| {label} | {_range(r['share_401_500'])} | {worst} | "
                     f"**{'met' if met else 'missed'}** |")
    lines += ["", "## The closed loop", "",
              "Easy requests 0.90 (cheapest) to 0.92 (dearest), hard ones 0.45 to 0.90, "
              f"linear in log price; all {len(loop['value']['curves'])} catalog models; "
              f"{steps[1]} requests, half easy; {seeds} seeds. Share of the three cheapest "
              f"({', '.join(loop['three_cheapest'])}) among the last 500 easy requests, and "
              f"what all easy requests cost against sending them to {loop['dearest']}.", "",
              "| policy | three cheapest's share of easy traffic | easy requests' cost vs "
              "the dearest |", "|---|---:|---:|"]
    for mode in MODES:
        r = loop[mode]
        label = "default (value)" if mode == "value" else "utility mode (the previous objective)"
        lines.append(f"| {label} | {_range(r['three_cheapest_share'])} | "
                     f"{_range(r['easy_cost_vs_dearest'], pct=False)} |")
    lines += ["", "![equals](equals.png)", ""]
    return "\n".join(lines)


def plot(eq: dict, loop: dict, path: Path) -> None:
    """The share curves (from a run, or from equals.json: benchmarks/replot.py)."""
    save_shares(path, [
        (f"equally good: {mode} mode", eq[mode]["curves"]) for mode in MODES] + [
        (f"closed loop: {mode} mode", loop[mode]["curves"]) for mode in MODES],
        "easy requests (count)", ob.WINDOW)


def main() -> None:
    args = arguments(__doc__, steps=1200)
    cfg = config(args.config)
    eq = equals(cfg, args.seeds, args.steps)
    loop = closed_loop(cfg, args.seeds, 3000)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot(eq, loop, out / "equals.png")
    (out / "equals.md").write_text(markdown(eq, loop, args.seeds, (args.steps, 3000)))
    met = min(eq["value"]["share_401_500"]) >= 0.8
    target = {"level": 0.8, "within": 500, "met": met,
              "worst": min(eq["value"]["share_401_500"])}
    (out / "equals.json").write_text(json.dumps({"equals": eq, "closed_loop": loop,
                                                 "target": target}, indent=1))
    print((out / "equals.md").read_text())


if __name__ == "__main__":
    main()
