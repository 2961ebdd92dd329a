"""Redraw the committed figures from the results they were made from, without re-running
anything: `python benchmarks/replot.py` (all of them) or `python benchmarks/replot.py
benchmarks/results/routerbench_subset experiments/results/drift.json ...`.

A replay folder (results.json, with benchmarks/peers/<dataset>.json when present) gets
frontier.png, traffic.png and regret.png; benchmarks/results/load and .../slowpeers get
latency.png; an experiment's saved JSON (drift, new_model, latency, equals, unused_model,
poisoning, judge) gets its PNG. budget.png needs a run: `python experiments/budget.py`.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from bandit_router.bench import load, plots, reaction, slowpeers

ROOT = Path(__file__).resolve().parent.parent
REPLAYS = ("benchmarks/results/routerbench_subset",)
REACTIONS = ("experiments/results/drift.json", "experiments/results/new_model.json",
             "experiments/results/latency.json")
SHARES = ("experiments/results/equals.json", "experiments/results/unused_model.json",
          "experiments/results/poisoning.json", "experiments/results/judge.json")


def _experiment(name: str):
    """An experiment script as a module (they import their `_common` from experiments/)."""
    sys.path.insert(0, str(ROOT / "experiments"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # a dataclass in it looks its module up
    spec.loader.exec_module(module)
    return module


def replot(target: Path) -> list[Path]:
    if target.is_dir() and target.name in ("load", "slowpeers"):
        module = load if target.name == "load" else slowpeers
        module.plot(json.loads((target / "results.json").read_text()), target / "latency.png")
        return [target / "latency.png"]
    if target.is_dir():
        figures = json.loads((target / "results.json").read_text())
        peer_file = ROOT / "benchmarks" / "peers" / f"{figures['dataset']['name']}.json"
        peer = json.loads(peer_file.read_text()) if peer_file.is_file() else None
        plots.frontier(figures, target / "frontier.png", peer)
        plots.traffic(figures, target / "traffic.png")
        plots.regret(figures, target / "regret.png")
        return [target / n for n in ("frontier.png", "traffic.png", "regret.png")]
    result = json.loads(target.read_text())
    out = target.with_suffix(".png")
    if target.stem == "equals":
        _experiment("equals").plot(result["equals"], result["closed_loop"], out)
    elif target.stem in ("unused_model", "poisoning"):
        _experiment(target.stem).plot(result, out)
    elif target.stem == "judge":
        _experiment("judge")._plot(result, out)
    else:
        reaction.plot(result, out)
    return [out]


def main(args: list[str]) -> None:
    targets = [Path(a) for a in args] or [ROOT / p for p in (*REPLAYS,
                                                            "benchmarks/results/load",
                                                            "benchmarks/results/slowpeers",
                                                            *REACTIONS, *SHARES)]
    for target in targets:
        for path in replot(target):
            print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
