"""What learned buckets cost per decision, timed in process against rules only.

Rows: the sketch alone (8,000-character prompt); feature extraction with learning off and
on; the whole routing step (features + decision, 8 models, evidence learned) with rules only
and with a rule bucket split into 16 learned buckets. Timed by bandit_router.bench.micro's
loop (perf_counter_ns per call after a warm-up, median run of three); ratios are against
rules only, measured in the same run. Also the memory one learned bucket holds.

    python benchmarks/micro_learned.py [--calls 20000] [--out benchmarks/results/micro_learned]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import matplotlib
import numpy as np

from bandit_router.bench.micro import _timed, catalog, engine_with_evidence, long_prompt
from bandit_router.config import load
from bandit_router.core.learned import Child, Split
from bandit_router.core.refine import describe
from bandit_router.core.settings import Config
from bandit_router.core.sketch import DIM, sketch
from bandit_router.core.types import Message, RouteRequest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use(): the backend must be chosen first

ROOT = Path(__file__).resolve().parent.parent
SHORT = "Quick question: the capital of Australia?"
CHILDREN = 16


def learning(config: Config, on: bool) -> Config:
    rules = replace(config.buckets, learned=replace(config.buckets.learned, enabled=on))
    return replace(config, buckets=rules)


def split_engine(config: Config, request: RouteRequest):
    """An engine with evidence learned and the request's rule bucket split in 16."""
    engine = engine_with_evidence(config, request)
    rng = np.random.default_rng(0)
    children = []
    for i in range(CHILDREN):
        v = rng.normal(size=DIM).astype(np.float32)
        children.append(Child(i + 1, v / np.linalg.norm(v), 20, "label", "example"))
    rule = engine.decide(request).bucket.partition("/")[0]
    policy = config.routing.default_policy
    engine.learned.install([Split(request.tenant, policy, rule, tuple(children), 1,
                                  CHILDREN + 1)])
    return engine


def run(config: Config, calls: int) -> dict:
    short = RouteRequest((Message("user", SHORT),))
    long = RouteRequest((Message("user", long_prompt()),))
    text = long_prompt()
    off, on = catalog(learning(config, False), 8), catalog(learning(config, True), 8)
    rules, learned = engine_with_evidence(off, short), split_engine(on, short)
    return {
        "sketch_8000_chars": _timed(lambda: sketch(text), calls),
        "features_8000_chars_rules_only": _timed(lambda: rules.features(long), calls // 2),
        "features_8000_chars_learned": _timed(lambda: learned.features(long), calls // 2),
        "route_short_rules_only": _timed(lambda: rules.decide(short), calls),
        "route_short_learned_16": _timed(lambda: learned.decide(short), calls),
        "route_8000_chars_rules_only": _timed(lambda: rules.decide(long), calls // 2),
        "route_8000_chars_learned_16": _timed(lambda: learned.decide(long), calls // 2),
    }


def bucket_bytes() -> int:
    """One learned bucket's own memory: its centroid and its row of the centroid matrix
    (float32), label and example, and its arms are those of any bucket (see /v1/arms)."""
    v = sketch(SHORT)
    label, example = describe([], v)
    return 2 * v.nbytes + 200 + len(label) + len(example)


def markdown(r: dict, calls: int) -> str:
    def row(name: str, base: str | None, target: str) -> str:
        x = r[name]
        ratio = f"{x['p50_us'] / r[base]['p50_us']:.2f}×" if base else "—"
        return f"| {name} | {x['p50_us']:.1f} | {x['p99_us']:.1f} | {ratio} | {target} |"

    return "\n".join([
        "# Learned buckets: the cost per decision", "",
        f"In process, 8 models, {calls} calls per row (median run of three); ratios against "
        "rules only in the same run. A shared 2-core machine: absolute numbers move with "
        "the load.", "",
        "| row | p50 µs | p99 µs | p50 vs rules only | target |", "|---|---:|---:|---:|---|",
        row("sketch_8000_chars", None, "p50 ≤ 60, p99 ≤ 200"),
        row("features_8000_chars_rules_only", None, ""),
        row("features_8000_chars_learned", "features_8000_chars_rules_only", ""),
        row("route_short_rules_only", None, ""),
        row("route_short_learned_16", "route_short_rules_only", "p50 ≤ 100"),
        row("route_8000_chars_rules_only", None, ""),
        row("route_8000_chars_learned_16", "route_8000_chars_rules_only", "p50 ≤ 100"), "",
        f"Memory per learned bucket (centroid, its matrix row, label, example): about "
        f"{bucket_bytes()} bytes, plus its arms (as for any bucket).", "",
        "![p50 and p99](micro_learned.png)", ""])


def plot(r: dict, path: Path) -> None:
    names = list(r)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    y = np.arange(len(names))
    ax.barh(y - 0.2, [r[n]["p50_us"] for n in names], 0.4, label="p50")
    ax.barh(y + 0.2, [r[n]["p99_us"] for n in names], 0.4, label="p99")
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlabel("µs per call")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--config", default=str(ROOT / "config.toml"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/micro_learned"))
    args = parser.parse_args()
    results = run(load(args.config), args.calls)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "micro_learned.json").write_text(json.dumps(results, indent=1))
    (out / "micro_learned.md").write_text(markdown(results, args.calls))
    plot(results, out / "micro_learned.png")
    print((out / "micro_learned.md").read_text())


if __name__ == "__main__":
    main()
