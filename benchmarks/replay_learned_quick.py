"""A quick partial replay: the router's cold start (one pass over a dataset, in a shuffled
order) with rules-only buckets (the default) and with learned buckets on, a few shuffles.

What `bandit-router bench replay` reports in full (every baseline, 10 shuffles, the steady
state); this is the short measure for when the full replay (~45 min) cannot run.

    python benchmarks/replay_learned_quick.py /work/shared/data/routerbench_subset [--shuffles 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bandit_router.bench.dataset import load
from bandit_router.bench.replay import ablation_specs
from bandit_router.bench.runner import Context, Job, trace
from bandit_router.config import load as load_config

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path")
    parser.add_argument("--shuffles", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/replay_learned_quick"))
    args = parser.parse_args()
    ctx = Context(load(args.path), load_config(str(ROOT / "config.toml")))
    strongest = ctx.names.index(ctx.strongest)
    specs = {s.name.removeprefix("ablation:"): s for s in ablation_specs()[:2]}
    lines = ["# Quick replay: learned vs rules-only buckets (cold start)", "",
             f"{args.path}, one pass per shuffle, {args.shuffles} shuffles (seeds 0..); "
             "quality and cost against always sending to the strongest model "
             f"({ctx.strongest}). Mean ± sd over shuffles.", "",
             "| buckets | quality vs strongest | cost vs strongest |", "|---|---:|---:|"]
    for name, spec in specs.items():
        q, c = [], []
        for seed in range(args.shuffles):
            t = trace(ctx, Job(spec, "cold_start", seed, len(ctx.ds)))
            q.append(t.quality.mean() / ctx.ds.quality[t.items, strongest].mean())
            c.append(t.cost.mean() / ctx.ds.cost[t.items, strongest].mean())
        lines.append(f"| {name} | {np.mean(q):.3f} ± {np.std(q):.3f} | "
                     f"{np.mean(c):.3f} ± {np.std(c):.3f} |")
        print(lines[-1], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "replay_learned_quick.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
