"""Poisoning: what it costs one key to flip a well-observed bucket with bad quality scores.

A bucket's best model A has answered well (quality 0.9) and the runner-up B a little worse
(0.8), each observed n times over the past days, one answer a minute. An attacker then sends
quality 0 for A's decisions, while honest feedback (0.9) keeps arriving once a minute. The
bucket flips when A's posterior mean falls below B's. Measured with the policy's learning
(`ArmBook`, as the service learns), before (change detection forgets at once:
`change_min_hours = 0`, the old behaviour) and after (the default `change_min_hours`).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from _common import HERE, config

from bandit_router.core.learner import ArmBook
from bandit_router.core.posterior import Evidence
from bandit_router.core.settings import PolicyConfig
from bandit_router.core.types import ArmKey, FeedbackEvent, RouteTicket

T0 = 1_800_000_000.0
A, B = ArmKey("default", "code:low", "a"), ArmKey("default", "code:low", "b")
HONEST_EVERY_S = 60.0
HORIZON_S = 48 * 3600.0


def _event(key: ArmKey, quality: float, at: float, i: int) -> FeedbackEvent:
    ticket = RouteTicket(key.policy, key.bucket, key.model, at, 0, f"{i:x}")
    return FeedbackEvent(f"r{i}", ticket, (("quality", quality),), at)


def _mean(ev: Evidence, policy: PolicyConfig) -> float:
    prior = policy.prior
    return (prior.alpha + ev.q_pos) / (prior.alpha + prior.beta + ev.quality_n)


def _attacks(pattern: str):
    """Seconds after the attack starts at which the attacker sends its next zero."""
    t = 0.0
    if pattern == "twice":  # 20 at once, a quiet hour and a minute, then one a second
        for _ in range(20):
            yield t
            t += 1.0
        t += 3660.0
    step = {"burst": 1.0, "steady": 30.0, "twice": 1.0}[pattern]
    while True:
        yield t
        t += step


def flip(policy: PolicyConfig, honest: int, pattern: str, busy: bool) -> dict:
    """Attack messages and seconds until A's mean falls below B's (None: not within the
    horizon). `busy`: honest feedback on A goes on, once a minute, during the attack."""
    book, i = ArmBook({"default": policy}), 0
    start = T0 - honest * HONEST_EVERY_S
    for k in range(honest):
        at = start + k * HONEST_EVERY_S
        for key, q in ((A, 0.9), (B, 0.8)):
            book.apply(_event(key, q, at, i))
            i += 1
    next_honest = T0
    for sent, offset in enumerate(_attacks(pattern), start=1):
        t = T0 + offset
        if offset > HORIZON_S:
            break
        while busy and next_honest <= t:  # honest traffic goes on meanwhile
            book.apply(_event(A, 0.9, next_honest, i))
            next_honest += HONEST_EVERY_S
            i += 1
        book.apply(_event(A, 0.0, t, i))
        i += 1
        if _mean(book.get(A), policy) < _mean(book.get(B), policy):
            return {"messages": sent, "seconds": offset}
    return {"messages": None, "seconds": None}


PATTERNS = {"burst": "burst, 1/s", "steady": "steady, 2/min",
            "twice": "20 at once, a quiet hour, then 1/s"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", help="router config (default: the bundled one)")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    policy = config(args.config).policies["default"]
    before = replace(policy, change_min_hours=0.0)
    rows = []
    for honest in (100, 300, 1000, 3000):
        for pattern, label in PATTERNS.items():
            for busy in (True, False):
                rows.append({"honest": honest, "attack": label, "busy": busy,
                             "before": flip(before, honest, pattern, busy),
                             "after": flip(policy, honest, pattern, busy)})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "poisoning.json").write_text(json.dumps(rows, indent=1))
    (out / "poisoning.md").write_text(_table(rows, policy.change_min_hours))
    plot(rows, out / "poisoning.png")
    print(_table(rows, policy.change_min_hours))


def _cell(r: dict) -> str:
    if r["messages"] is None:
        return f"not within {HORIZON_S / 3600:.0f} h"
    return f"{r['messages']:,} msgs, {r['seconds'] / 60:,.1f} min"


def _table(rows: list[dict], hours: float) -> str:
    lines = ["# Poisoning: cost of flipping a well-observed bucket", "",
             "Quality-0 scores for the bucket's best model (0.9) against an honest runner-up "
             "(0.8), with honest feedback going on at one a minute (busy) or not at all "
             "(quiet). Before: change detection forgets at once; after: "
             f"`change_min_hours = {hours:g}`, straying answers all along it. "
             "`python experiments/poisoning.py`.", "",
             "| honest observations | attack | bucket | before | after |",
             "|---:|---|---|---|---|"]
    lines += [f"| {r['honest']:,} | {r['attack']} | {'busy' if r['busy'] else 'quiet'} | "
              f"{_cell(r['before'])} | {_cell(r['after'])} |" for r in rows]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    """From a run's rows, or from poisoning.json (benchmarks/replot.py)."""
    from bandit_router.bench import style

    fig, (ax,) = style.figure(width=8.0, height=4.8)
    for attack, dash in zip(PATTERNS.values(), ("-", "--", ":"), strict=True):
        for when, colour in (("before", "#D55E00"), ("after", "#0072B2")):
            points = [(r["honest"], r[when]["messages"]) for r in rows if r["busy"] and
                      r["attack"] == attack and r[when]["messages"] is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, dash, marker="o", color=colour, label=f"{when}, {attack}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    style.log_ticks(ax, [r["honest"] for r in rows], "x")
    style.plain_log(ax, "y")
    ax.set_xlabel("honest observations of the bucket's best model (count)")
    ax.set_ylabel("attack messages until the bucket flips\n(count, log scale)")
    ax.set_title("Cost of flipping a busy bucket with quality-0 scores")
    ax.legend(fontsize=9, loc="center left", bbox_to_anchor=(1.0, 0.5))
    style.save(fig, path)


if __name__ == "__main__":
    main()
