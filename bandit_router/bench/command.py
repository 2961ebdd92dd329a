"""`bandit-router bench replay PATH`: run, summarise, write the results folder."""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from bandit_router.bench import markdown, plots
from bandit_router.bench.dataset import load
from bandit_router.bench.replay import (
    Settings,
    assemble,
    jobs_for,
    regret_curves,
    specs,
    traffic_over_time,
)
from bandit_router.bench.runner import Context, run_all
from bandit_router.bench.world import BASE_LATENCY_MS, LATENCY_SIGMA, PRICE_EXPONENT
from bandit_router.config import load as load_config

LATENCY_ASSUMPTION = (
    f"each model's median latency is modelled as {BASE_LATENCY_MS:g} ms × (its output price / "
    f"the cheapest output price)^{PRICE_EXPONENT:g}, with log-normal noise (sigma "
    f"{LATENCY_SIGMA:g}) per call.")
REGRET_POLICIES = ("router", "epsilon-greedy", "ucb1", "random", "hand-written-map")


def _progress(total: int):
    try:
        from tqdm import tqdm
    except ImportError:  # progress is a nicety; the run does not need it
        return lambda done, _: None
    bar = tqdm(total=total, desc="replay runs", unit="run", file=sys.stderr)
    return lambda done, _: bar.update(done - bar.n)


def replay(path: str, out: str | None = None, config_path: str | None = None,
           settings: Settings | None = None, rows: np.ndarray | None = None,
           peers: str | None = None, progress: bool = True) -> dict:
    settings = settings or Settings()
    started = time.monotonic()
    ds = load(path)
    if rows is not None:
        ds = ds.subset(rows)
    ctx = Context(ds, load_config(config_path))
    jobs = jobs_for(specs(ctx, settings), settings, len(ds))
    results = run_all(jobs, path, config_path, rows, settings.workers,
                      _progress(len(jobs)) if progress else None)
    figures = assemble(ctx, settings, results)
    figures["schema"] = 1
    figures["command"] = "bandit-router bench replay " + shlex.quote(str(path))
    figures["dataset"] = {"name": ds.name, "prompts": len(ds), "models": list(ds.names),
                          "strongest": ctx.strongest, "cheapest": ctx.cheapest}
    figures["settings"] = {**asdict(settings), "weights": list(settings.weights),
                           "default_policy": ctx.config.routing.default_policy,
                           "default_weights": asdict(
                               ctx.config.policies[ctx.config.routing.default_policy].weights)}
    figures["assumptions"] = {"latency": LATENCY_ASSUMPTION}
    router = {regime: next(t for j, t in sorted(results.items(), key=lambda kv: kv[0].seed)
                           if j.regime == regime and j.spec.name == "router")
              for regime in ("cold_start", "steady_state")}
    figures["traffic_over_time"] = {
        regime: traffic_over_time(ctx, t, max(50, len(t.items) // 60))
        for regime, t in router.items()}
    figures["regret"] = {
        regime: {"steps": len(router[regime].items),
                 "curves": regret_curves(ctx, results, regime, REGRET_POLICIES)}
        for regime in router}
    figures["seconds"] = round(time.monotonic() - started, 1)
    target = Path(out) if out else Path("benchmarks/results") / ds.name
    write(figures, target, _peer(peers, ds.name))
    return figures


def _peer(folder: str | None, dataset: str) -> dict | None:
    if not folder:
        return None
    path = Path(folder) / f"{dataset}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def write(figures: dict, folder: Path, peer: dict | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(figures, indent=1, allow_nan=True))
    (folder / "results.md").write_text(markdown.report(figures, peer))
    plots.frontier(figures, folder / "frontier.png", peer)
    plots.traffic(figures, folder / "traffic.png")
    plots.regret(figures, folder / "regret.png")
