"""Quality without labels: the router learning only from a sampled judge, on real data.

Replays a dataset (default ../shared/data/routerbench_subset) in the steady-state regime,
through the router's own engine and learning, with every call's latency and tokens fed back
(as the gateway does) and quality coming only from a simulated judge that grades a sample
of the answers: right with probability p (else it says the opposite), or biased toward long
answers. The judge's rate is the service's (`judge.sample_rate`, `young_rate`,
`young_evidence`, `explore_rate`, via `bandit_router.engine.judge.sample_rate`), or a fixed
one; its scores are read with the service's `judge.accuracy` (0.85 unless --accuracy says
otherwise). Each judge call is priced as the dataset's middle-priced model (a capable
mid-tier judge) reading the prompt and the answer and writing a 40-token verdict, and
reported as a share of the routed spend.
The reference run gets the true quality of every call.
"""

from __future__ import annotations

import argparse
import gzip
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from _common import HERE, config

from bandit_router.bench.dataset import load
from bandit_router.bench.runner import Context, items_for
from bandit_router.core.types import FeedbackEvent, RouteTicket
from bandit_router.engine.judge import sample_rate
from bandit_router.engine.simulate import Clock, Outcome, RouterChooser, run

DATA = HERE.parent.parent / "shared" / "data" / "routerbench_subset"
VERDICT_TOKENS = 40
TEMPLATE_TOKENS = 150  # the judge prompt's own words


@dataclass(frozen=True)
class JudgeModel:
    name: str  # for the table
    accuracy: float | None  # None: the true quality, every call (the reference)
    rate: float | None = None  # None: the service's adaptive rate
    biased: bool = False  # calls long answers good half the time, whatever they are
    read_as: float | None = None  # judge.accuracy to read its scores with (None: config's)
    explore_rate: float | None = None  # judge.explore_rate (None: config's)


class JudgedChooser(RouterChooser):
    """The router, with quality only from a simulated judge of a sample of its calls."""

    def __init__(self, ctx: Context, judge: JudgeModel, answer_chars: np.ndarray,
                 clock: Clock, seed: int) -> None:
        super().__init__(ctx.config, clock, seed)
        self.ctx, self.judge, self.answer_chars = ctx, judge, answer_chars
        self.rng = np.random.default_rng(10_007 * seed + 3)
        self.item = 0
        self.judge_spend = 0.0
        judge_model = ctx.ds.models[ctx.names.index(ctx.middle)]
        self.judge_prices = (judge_model.input_per_mtok * 1e-6,
                             judge_model.output_per_mtok * 1e-6)
        self.long = np.median(answer_chars, axis=1)  # per prompt: the median answer length

    def choose(self, item, request, now):
        self.item = item
        return super().choose(item, request, now)

    def _judged(self, quality: float, j: int) -> float:
        if self.judge.biased and self.answer_chars[self.item, j] > self.long[self.item] and \
                self.rng.random() < 0.5:
            return 1.0
        right = self.rng.random() < (self.judge.accuracy or 1.0)
        return quality if right else 1.0 - quality

    def learn(self, outcome: Outcome, now: float) -> None:
        d = self._last
        ticket = RouteTicket(d.policy, d.bucket, d.model, d.created_at, d.input_tokens, "")
        facts = [("latency_ms", outcome.latency_ms),
                 ("input_tokens", float(outcome.input_tokens)),
                 ("output_tokens", float(outcome.output_tokens))]
        if self.judge.accuracy is None:
            facts.append(("quality", outcome.quality))
        else:
            evidence = self.engine.evidence(d.tenant, d.policy, d.bucket, d.model)
            explored = d.favourite is not None and d.model != d.favourite
            rate = self.judge.rate if self.judge.rate is not None else \
                sample_rate(self.ctx.config.judge, d.bucket, evidence, explored)
            if self.rng.random() < rate:
                j = self.ctx.names.index(d.model)
                facts.append(("judge_quality", self._judged(outcome.quality, j)))
                read = outcome.input_tokens + self.answer_chars[self.item, j] / 4 + \
                    TEMPLATE_TOKENS
                self.judge_spend += read * self.judge_prices[0] + \
                    VERDICT_TOKENS * self.judge_prices[1]
        self.engine.absorb(self.book.apply(FeedbackEvent(d.route_id, ticket, tuple(facts),
                                                         now)))


def answer_lengths(folder: Path, names: tuple[str, ...]) -> np.ndarray:
    files = sorted(folder.glob("*.jsonl.gz"))
    with gzip.open(files[0], "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return np.array([[len(str(r["outcomes"][n].get("answer") or "")) for n in names]
                     for r in rows], float)


def replay(ctx: Context, judge: JudgeModel, answers: np.ndarray, seed: int,
           draws: int) -> dict:
    from bandit_router.bench.runner import Job, Spec
    clock = Clock()
    chooser = JudgedChooser(ctx, judge, answers, clock, seed)
    items = items_for(Job(Spec("router", "router", "router"), "steady_state", seed, draws),
                      len(ctx.ds))
    quality, cost = np.empty(len(items)), np.empty(len(items))
    spend_before = 0.0
    for step in run(chooser, ctx.world, items, clock, np.random.default_rng(seed)):
        quality[step.step], cost[step.step] = step.outcome.quality, step.outcome.cost_usd
        if step.step == len(items) - len(items) // 3 - 1:
            spend_before = chooser.judge_spend
    tail = slice(len(items) - len(items) // 3, None)  # steady state: the last third
    strongest = ctx.names.index(ctx.strongest)
    chosen = items[tail]
    return {"quality": float(quality[tail].mean() / ctx.ds.quality[chosen, strongest].mean()),
            "cost": float(cost[tail].sum() / ctx.ds.cost[chosen, strongest].sum()),
            "judge_share": float((chooser.judge_spend - spend_before) / cost[tail].sum()),
            "judge_share_all": float(chooser.judge_spend / cost.sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", nargs="?", default=str(DATA), help="a dataset folder")
    parser.add_argument("--config", help="router config (default: the bundled one)")
    parser.add_argument("--seeds", type=int, default=8,
                        help="replays per row (a row's seed spread is about a point at 2)")
    parser.add_argument("--draws", type=int, default=30_000)
    parser.add_argument("--accuracy", type=float, help="judge.accuracy to read scores with")
    parser.add_argument("--sample-rate", type=float, help="judge.sample_rate (the default "
                        "rate once arms are known; default: the service's)")
    parser.add_argument("--only", help="only the rows whose name contains this (and the "
                        "reference); a quick look, not the committed table")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    ds = load(args.path)
    routing = config(args.config)
    if args.accuracy is not None:
        routing = replace(routing, judge=replace(routing.judge, accuracy=args.accuracy))
    if args.sample_rate is not None:
        routing = replace(routing, judge=replace(routing.judge, sample_rate=args.sample_rate))
    ctx = Context(ds, routing)
    answers = answer_lengths(Path(args.path), ds.names)
    judges = [JudgeModel("true quality, every call", None)]
    judges += [JudgeModel(f"judge p={p:g}, default rate", p) for p in (0.7, 0.8, 0.85, 0.9)]
    judges += [JudgeModel("perfect judge (p=1, read as such), default rate", 1.0, read_as=1.0)]
    judges += [JudgeModel("judge p=0.85, default rate but explore_rate 0 (before)", 0.85,
                          explore_rate=0.0)]
    judges += [JudgeModel(f"judge p=0.85, rate {r:g}", 0.85, r) for r in (0.02, 0.1, 0.25, 1)]
    judges += [JudgeModel("length-biased judge, default rate", 0.85, None, True)]
    if args.only:
        judges = [judges[0], *(j for j in judges[1:] if args.only in j.name)]
    rows = []
    for judge in judges:
        read = ctx if judge.read_as is None and judge.explore_rate is None else Context(
            ds, replace(routing, judge=replace(
                routing.judge,
                accuracy=routing.judge.accuracy if judge.read_as is None else judge.read_as,
                explore_rate=routing.judge.explore_rate if judge.explore_rate is None
                else judge.explore_rate)))
        runs = [replay(read, judge, answers, s, args.draws) for s in range(args.seeds)]
        rows.append({"judge": judge.name, **{k: float(np.mean([r[k] for r in runs]))
                                            for k in runs[0]}})
        print(rows[-1], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "judge.json").write_text(json.dumps(rows, indent=1))
    text = _table(rows, ds.name, ctx.config.judge, args.seeds, args.draws, ctx.middle)
    (out / "judge.md").write_text(text)
    _plot(rows, out / "judge.png")
    print(text)


def _table(rows: list[dict], name: str, judge, seeds: int, draws: int,
           judge_model: str) -> str:
    ref = rows[0]["quality"]
    lines = [f"# Quality without labels: a sampled judge on `{name}`", "",
             f"Steady state (last third of {draws:,} draws), {seeds} seeds; judge model "
             f"priced as `{judge_model}`; default rate: "
             f"`sample_rate = {judge.sample_rate:g}`, `young_rate = {judge.young_rate:g}` "
             f"falling to it over `young_evidence = {judge.young_evidence:g}` observations, "
             f"and `explore_rate = {judge.explore_rate:g}` for an answer from a model the "
             "router did not believe best (an exploration); "
             f"scores read with `judge.accuracy = {judge.accuracy:g}`. Judge spend: the "
             "middle-priced model reading prompt and answer, as a share of the routed "
             "spend. `python experiments/judge.py`.", "",
             "| quality from | quality vs always-strongest | vs true quality (points) | "
             "cost vs always-strongest | judge spend / routed (steady) | (whole run) |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['judge']} | {r['quality']:.3f} | {100 * (r['quality'] - ref):+.1f} | "
                     f"{r['cost']:.3f} | {100 * r['judge_share']:.1f}% | "
                     f"{100 * r['judge_share_all']:.1f}% |")
    return "\n".join(lines) + "\n"


def _plot(rows: list[dict], path: Path) -> None:
    from bandit_router.bench import style

    fig, (ax,) = style.figure(width=8.0, height=4.8)
    for r in rows:
        first = r is rows[0]
        ax.scatter(r["cost"], r["quality"], marker="*" if first else "o", s=110 if first else 45,
                   color="black" if first else "#0072B2", zorder=3)
        ax.annotate(r["judge"], (r["cost"], r["quality"]), fontsize=9,
                    xytext=(4, 2), textcoords="offset points")
    ax.set_xlabel("cost per request, as a fraction of always-strongest's")
    ax.set_ylabel("mean quality, as a fraction\nof always-strongest's")
    ax.set_title("Learning quality from a sampled judge (steady state)")
    style.save(fig, path)


if __name__ == "__main__":
    main()
