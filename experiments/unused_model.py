"""An unused model: does adding a dearer, worse model change the choice between the others?

The closed loop of the equals experiment (easy requests 0.90-0.92, hard ones better with
price), run with the catalog as it is and with one model added that is 25x dearer than the
dearest and worse than every model at everything. The same seeds either way: only the
catalog differs. Target: the added model is (almost) never chosen and the easy requests'
spend and traffic shares stay where they were, within the seed-to-seed spread.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
from _common import arguments, config

from bandit_router.bench import objective as ob
from bandit_router.bench.plots import save_shares

MODES = ("value", "utility")


def experiment(cfg, seeds: int, steps: int) -> dict:
    world = ob.closed_loop_world(cfg)
    wider_cfg, wider = ob.with_unused(cfg, world)
    dearest = ob.by_price(cfg)[-1].name  # the strongest too: best at everything
    models = tuple(m.name for m in ob.by_price(cfg))
    tier = ob.tiers(cfg)
    out: dict = {"strongest": dearest, "unused": ob.UNUSED}
    for mode in MODES:
        plain = ob.seeds(seeds, lambda s, m=mode: ob.run(ob.in_mode(cfg, m), world, steps, s))
        added = ob.seeds(seeds, lambda s, m=mode: ob.run(ob.in_mode(wider_cfg, m), wider,
                                                         steps, s))
        easy = [r.chosen["easy"] for r in plain]
        easy_added = [r.chosen["easy"] for r in added]
        out[mode] = {
            "spend_without": [ob.cost_ratio(cfg, e, "easy", dearest) for e in easy],
            "spend_with": [ob.cost_ratio(wider_cfg, e, "easy", dearest) for e in easy_added],
            "unused_share": [ob.share(r.chosen["easy"] + r.chosen["hard"], {ob.UNUSED})
                             for r in added],
            # last 500 easy requests: how far the others' shares moved, against how far two
            # seeds of the same catalog differ
            "moved": [ob.distance(a[-500:], b[-500:], tier)
                      for a, b in zip(easy, easy_added, strict=True)],
            "seed_spread": [ob.distance(a[-500:], b[-500:], tier)
                            for a, b in itertools.pairwise(easy)],
            "curves_without": ob.curves(plain, "easy", models),
            "curves_with": ob.curves(added, "easy", (*models, ob.UNUSED))}
    return out


def target(m: dict) -> dict:
    """Met when the added model carries under 1% of the traffic in every seed and the easy
    shares moved no more than two seeds of one catalog differ (plus 0.05)."""
    limit = max(m["seed_spread"], default=0.0) + 0.05
    met = max(m["unused_share"]) < 0.01 and max(m["moved"]) <= limit
    return {"met": met, "moved_at_most": limit, "worst_moved": max(m["moved"]),
            "worst_share": max(m["unused_share"])}


def _range(xs: list[float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(min(xs))}–{fmt.format(max(xs))} (mean {fmt.format(np.mean(xs))})"


def markdown(r: dict, seeds: int, steps: int) -> str:
    lines = ["# An unused model", "",
             "Does adding a dearer, worse model change the choice between the others? The "
             "utility rows run the previous objective (utility mode, optimistic pooling) on "
             "today's posteriors.", "",
             f"{steps} requests, half easy; {seeds} seeds. Spend: all easy requests' cost as a "
             f"fraction of sending them to {r['strongest']} (always-strongest). Moved: the "
             "total-variation distance between the easy traffic shares by price tier (last "
             "500 easy requests; models within 1% of one price are one tier) with and without "
             "the added model, same seed; seed spread: the same distance between two seeds "
             "of one catalog.", "",
             "| policy | easy spend without | with the added model | its share | moved | "
             "seed spread |", "|---|---:|---:|---:|---:|---:|"]
    for mode in MODES:
        m = r[mode]
        label = "default (value)" if mode == "value" else "utility mode (the previous objective)"
        lines.append(f"| {label} | {_range(m['spend_without'])} | {_range(m['spend_with'])} | "
                     f"{_range(m['unused_share'], '{:.1%}')} | {_range(m['moved'])} | "
                     f"{_range(m['seed_spread'])} |")
    t = target(r["value"])
    lines += ["", "Target (default policy): the added model under 1% of the traffic in every "
              "seed, and the easy shares moved by no more than the seed spread plus 0.05 "
              f"({t['moved_at_most']:.2f}): **{'met' if t['met'] else 'missed'}** (worst "
              f"share {t['worst_share']:.1%}, worst move {t['worst_moved']:.2f}).", "",
              "![unused model](unused_model.png)", ""]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    """The share curves (from a run, or from unused_model.json: benchmarks/replot.py)."""
    save_shares(path, [
        (f"{mode} mode, {which} the unused model", result[mode][f"curves_{which}"])
        for mode in MODES for which in ("without", "with")], "easy requests (count)",
        ob.WINDOW)


def main() -> None:
    args = arguments(__doc__, steps=3000)
    result = experiment(config(args.config), args.seeds, args.steps)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot(result, out / "unused_model.png")
    (out / "unused_model.md").write_text(markdown(result, args.seeds, args.steps))
    result["target"] = target(result["value"])
    (out / "unused_model.json").write_text(json.dumps(result, indent=1))
    print((out / "unused_model.md").read_text())


if __name__ == "__main__":
    main()
