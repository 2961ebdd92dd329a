"""Ordinary traffic: cue-free prompts of nine kinds, rules-only buckets against learned ones.

The prompts (experiments/data/ordinary_prompts.json, written for this experiment) are code
in Python and Rust, SQL, maths, logic puzzles, translation, rewriting, short facts and
chit-chat. In the simulated world every model answers the four easy kinds well (0.92); on
the five hard kinds quality rises with price (0.30 for the cheapest to 0.93), and only the
two strongest are adequate (>= 0.90). Scores are 0/1 draws. Requests come in a random order
of kinds and prompts, one per simulated second.

Reported, per kind and per window of 500 requests: the share of easy-kind traffic on the
two cheap models and the share of hard-kind traffic on the adequate ones, rules-only vs
learned. Target: both >= 70% within 4,000 requests (requests 3,001-4,000).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import matplotlib
import numpy as np
from _common import HERE, arguments, config

from bandit_router.core.settings import Config
from bandit_router.core.types import Message, RouteRequest
from bandit_router.engine.simulate import Clock, Outcome, RouterChooser, run

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use(): the backend must be chosen first

PROMPTS = HERE / "data" / "ordinary_prompts.json"
CHEAP = ("gpt-5-nano", "gemini-2.5-flash-lite")
HARD_QUALITY = {"gpt-5-nano": 0.30, "gemini-2.5-flash-lite": 0.35, "gpt-5-mini": 0.55,
                "gemini-2.5-flash": 0.60, "claude-haiku-4-5": 0.75, "gpt-5": 0.92,
                "claude-sonnet-4-5": 0.93}
ADEQUATE = tuple(m for m, q in HARD_QUALITY.items() if q >= 0.9)
EASY_QUALITY = 0.92
WINDOW = 500
OUTPUT_TOKENS = 300
ARMS = ("rules only", "learned")


def prompts() -> tuple[list[str], list[str], dict[str, bool]]:
    data = json.loads(PROMPTS.read_text())["kinds"]
    texts, kinds = [], []
    for kind, spec in data.items():
        for template in spec["templates"]:
            for subject in spec["subjects"]:
                texts.append(template.format(s=subject))
                kinds.append(kind)
    return texts, kinds, {k: bool(spec["easy"]) for k, spec in data.items()}


class OrdinaryWorld:
    def __init__(self, cfg: Config, texts: list[str], kinds: list[str],
                 easy: dict[str, bool]) -> None:
        self.texts, self.kinds, self.easy = texts, kinds, easy
        self.models = {m.name: m for m in cfg.models}

    def request(self, item: int) -> RouteRequest:
        return RouteRequest((Message("user", self.texts[item]),))

    def outcome(self, item: int, model: str, rng: np.random.Generator) -> Outcome:
        q = EASY_QUALITY if self.easy[self.kinds[item]] else HARD_QUALITY[model]
        m = self.models[model]
        tokens = len(self.texts[item]) // 4 + 4
        cost = (tokens * m.input_per_mtok + OUTPUT_TOKENS * m.output_per_mtok) * 1e-6
        return Outcome(float(rng.random() < q), cost, m.latency_ms, tokens, OUTPUT_TOKENS)


def learning(cfg: Config, on: bool) -> Config:
    rules = replace(cfg.buckets, learned=replace(cfg.buckets.learned, enabled=on))
    return replace(cfg, buckets=rules)


def one_run(cfg: Config, world: OrdinaryWorld, steps: int, seed: int, on: bool) -> dict:
    rng = np.random.default_rng(seed)
    items = rng.integers(0, len(world.texts), size=steps)
    clock = Clock()
    chooser = RouterChooser(learning(cfg, on), clock, seed=seed)
    good = []
    for step in run(chooser, world, items, clock, rng):
        kind = world.kinds[step.item]
        target = CHEAP if world.easy[kind] else ADEQUATE
        good.append((kind, step.model in target))
    return {"good": good, "learned": chooser.engine.learned, "engine": chooser.engine}


def windows(good: list[tuple[str, bool]], easy: bool | None, kinds: dict[str, bool],
            kind: str | None = None) -> list[float]:
    out = []
    for start in range(0, len(good), WINDOW):
        part = [ok for k, ok in good[start:start + WINDOW]
                if (kind is None and kinds[k] == easy) or k == kind]
        out.append(float(np.mean(part)) if part else float("nan"))
    return out


def picture(path: Path, world: OrdinaryWorld, learned, steps: int) -> None:
    """The learned buckets: every prompt's sketch, projected on its first two principal
    components, coloured by kind, and the learned bucket it goes to written over it."""
    from bandit_router.core.buckets import bucket_of
    from bandit_router.core.features import extract
    cfg = learned_cfg = world.cfg
    x, names = [], []
    for text in world.texts:
        req = RouteRequest((Message("user", text),))
        f = extract(req, learned_cfg.buckets)
        rule = bucket_of(f, cfg.buckets)
        names.append(learned.assign("default", cfg.routing.default_policy, rule, f.sketch))
        x.append(f.sketch)
    x = np.array(x)
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    fig, axes = plt.subplots(1, 2, figsize=(15, 6.5))
    kinds = sorted(set(world.kinds))
    colours = plt.get_cmap("tab10")
    for i, kind in enumerate(kinds):
        rows = [j for j, k in enumerate(world.kinds) if k == kind]
        style = "o" if world.easy[kind] else "^"
        axes[0].scatter(xy[rows, 0], xy[rows, 1], s=14, marker=style, color=colours(i),
                        label=f"{kind} ({'easy' if world.easy[kind] else 'hard'})")
    axes[0].legend(fontsize=8)
    axes[0].set_title("prompts by kind (sketch, 2 principal components)")
    buckets = sorted(set(names))
    for i, b in enumerate(buckets):
        rows = [j for j, n in enumerate(names) if n == b]
        axes[1].scatter(xy[rows, 0], xy[rows, 1], s=14, color=plt.get_cmap("tab20")(i % 20),
                        label=f"{b}: {_label(learned, b)}")
    axes[1].legend(fontsize=7)
    axes[1].set_title(f"learned buckets after {steps} requests (seed 0)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _label(learned, bucket: str) -> str:
    rule, _, k = bucket.partition("/")
    for (_, _, b), split in learned.splits.items():
        if b == rule and k:
            child = split.child(int(k))
            if child is not None:
                return child.label
    return "(rule bucket)"


def curves(path: Path, results: dict, kinds: dict[str, bool], steps: int) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    xs = [min(steps, (i + 1) * WINDOW) for i in range(-(-steps // WINDOW))]
    for ax, easy, title in ((axes[0], True, "easy kinds: share on a cheap model"),
                            (axes[1], False, "hard kinds: share on an adequate model")):
        for arm, style in zip(ARMS, ("s--", "o-"), strict=True):
            ys = np.nanmean([windows(r["good"], easy, kinds) for r in results[arm]], axis=0)
            ax.plot(xs, ys, style, label=arm)
        ax.axhline(0.7, color="gray", lw=0.8, ls=":")
        ax.set_title(title)
        ax.set_xlabel(f"requests (windows of {WINDOW})")
        ax.set_ylim(0, 1.02)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary(results: dict, kinds: dict[str, bool]) -> dict:
    out = {}
    for arm in ARMS:
        last = {"easy": [windows(r["good"], True, kinds)[-2:] for r in results[arm]],
                "hard": [windows(r["good"], False, kinds)[-2:] for r in results[arm]]}
        per_kind = {k: float(np.mean([np.nanmean(windows(r["good"], None, kinds, k)[-2:])
                                      for r in results[arm]])) for k in kinds}
        out[arm] = {
            "easy_on_cheap": [float(np.nanmean(w)) for w in last["easy"]],
            "hard_on_adequate": [float(np.nanmean(w)) for w in last["hard"]],
            "per_kind": per_kind,
            "curves_easy": np.nanmean([windows(r["good"], True, kinds)
                                       for r in results[arm]], axis=0).tolist(),
            "curves_hard": np.nanmean([windows(r["good"], False, kinds)
                                       for r in results[arm]], axis=0).tolist(),
            "learned_buckets": [sum(len(s.children) for s in r["learned"].splits.values())
                                for r in results[arm]],
            "memory_bytes": [r["learned"].memory_bytes() for r in results[arm]],
        }
    return out


def markdown(s: dict, kinds: dict[str, bool], seeds: int, steps: int, n: int) -> str:
    def rng(xs: list[float]) -> str:
        return f"{min(xs):.0%}–{max(xs):.0%} (mean {np.mean(xs):.0%})"

    lines = ["# Ordinary traffic: rules-only buckets vs learned buckets", "",
             f"{n} cue-free prompts of {len(kinds)} kinds "
             "(experiments/data/ordinary_prompts.json); easy kinds: "
             f"{', '.join(k for k, e in kinds.items() if e)} (every model 0.92); hard kinds: "
             f"{', '.join(k for k, e in kinds.items() if not e)} (0.30 for the cheapest up to "
             f"0.93; adequate: {', '.join(ADEQUATE)}). Cheap models: {', '.join(CHEAP)}. "
             f"{steps} requests, {seeds} seeds; shares over requests "
             f"{steps - 2 * WINDOW + 1}–{steps}.", "",
             "| buckets | easy-kind traffic on a cheap model | hard-kind traffic on an "
             "adequate model | learned buckets | target (both ≥ 70%) |", "|---|---:|---:|---:|---|"]
    for arm in ARMS:
        r = s[arm]
        met = min(r["easy_on_cheap"]) >= 0.7 and min(r["hard_on_adequate"]) >= 0.7
        lines.append(f"| {arm} | {rng(r['easy_on_cheap'])} | {rng(r['hard_on_adequate'])} | "
                     f"{min(r['learned_buckets'])}–{max(r['learned_buckets'])} | "
                     f"**{'met' if met else 'missed'}** |")
    lines += ["", "Per kind (share reaching its target models: cheap for easy kinds, adequate "
              "for hard ones; mean over seeds, same requests):", "",
              "| kind | easy? | rules only | learned |", "|---|---|---:|---:|"]
    for k, e in kinds.items():
        lines.append(f"| {k} | {'easy' if e else 'hard'} | {s['rules only']['per_kind'][k]:.0%} "
                     f"| {s['learned']['per_kind'][k]:.0%} |")
    lines += ["", "Over time (windows of 500 requests, mean over seeds):", "",
              "| requests | easy on cheap, rules | easy on cheap, learned | hard on adequate, "
              "rules | hard on adequate, learned |", "|---|---:|---:|---:|---:|"]
    for i, _ in enumerate(s["learned"]["curves_easy"]):
        lines.append(f"| {i * WINDOW + 1}–{min(steps, (i + 1) * WINDOW)} | "
                     f"{s['rules only']['curves_easy'][i]:.0%} | "
                     f"{s['learned']['curves_easy'][i]:.0%} | "
                     f"{s['rules only']['curves_hard'][i]:.0%} | "
                     f"{s['learned']['curves_hard'][i]:.0%} |")
    mem = s["learned"]["memory_bytes"]
    lines += ["", f"Memory of the learned buckets' state at the end (centroids, kept answers, "
              f"sketches waiting for feedback): {min(mem) / 1e6:.2f}–{max(mem) / 1e6:.2f} MB.",
              "", "![shares over time](ordinary.png)", "",
              "![learned buckets](ordinary_buckets.png)", ""]
    return "\n".join(lines)


def main() -> None:
    args = arguments(__doc__, steps=4000)
    cfg = config(args.config)
    texts, kinds_of, easy = prompts()
    world = OrdinaryWorld(cfg, texts, kinds_of, easy)
    world.cfg = cfg
    results = {arm: [one_run(cfg, world, args.steps, seed, arm == "learned")
                     for seed in range(args.seeds)] for arm in ARMS}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    s = summary(results, easy)
    curves(out / "ordinary.png", results, easy, args.steps)
    picture(out / "ordinary_buckets.png", world, results["learned"][0]["learned"], args.steps)
    (out / "ordinary.md").write_text(markdown(s, easy, args.seeds, args.steps, len(texts)))
    met = all(min(s["learned"][k]) >= 0.7 for k in ("easy_on_cheap", "hard_on_adequate"))
    (out / "ordinary.json").write_text(json.dumps({"summary": s, "target": {
        "level": 0.7, "within": args.steps, "met": met}}, indent=1))
    print((out / "ordinary.md").read_text())


if __name__ == "__main__":
    main()
