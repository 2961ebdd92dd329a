"""Drift: the cheap model's quality on easy requests drops from 0.9 to 0.5 midway.

How many easy requests until the router stops sending them to it? Target: its share falls
below 10% within 500 easy requests after the drop, in every seed.
"""

from __future__ import annotations

from pathlib import Path

from _common import CHEAP, EASY, HARD, MID, STRONG, arguments, config

from bandit_router.bench.reaction import Watch, react, write
from bandit_router.bench.synthetic import Scenario

CHANGE = 1000  # easy requests before the drop


def quality(kind: str, model: str, seen: int) -> float:
    if kind == "hard":
        return {CHEAP: 0.2, MID: 0.55, STRONG: 0.9}[model]
    if model == CHEAP:
        return 0.9 if seen < CHANGE else 0.5
    return {MID: 0.85, STRONG: 0.95}[model]


def main() -> None:
    args = arguments(__doc__, steps=4000)
    scenario = Scenario(
        name="drift", prompts={"easy": EASY, "hard": HARD}, quality=quality,
        latency_ms={CHEAP: 1500, MID: 2500, STRONG: 8000}, models=(CHEAP, MID, STRONG))
    result = react(scenario, config(args.config),
                   Watch("easy", CHEAP, CHANGE, (0.5, 0.1), below=True), args.steps, args.seeds)
    write(result, Path(args.out), "Drift: the cheap model degrades on easy requests",
          __doc__.strip().splitlines()[0] + " Easy and hard requests are mixed 50/50; the "
          "mid model (0.85) is the next best choice for easy requests.", target=("0.1", 500))


if __name__ == "__main__":
    main()
