"""A new model: a cheaper, adequate model becomes available midway.

How many requests until it carries most of its bucket? Target: over 50% of the bucket's
requests within 500 requests after it appears, in every seed.
"""

from __future__ import annotations

from pathlib import Path

from _common import CHEAP, EASY, MID, STRONG, arguments, config

from bandit_router.bench.reaction import Watch, react, write
from bandit_router.bench.synthetic import Scenario

CHANGE = 1000  # requests before the new model appears


def quality(kind: str, model: str, seen: int) -> float:
    return {CHEAP: 0.9, MID: 0.88, STRONG: 0.95}[model]


def available(step: int) -> frozenset[str]:
    return frozenset({MID, STRONG} | ({CHEAP} if step >= CHANGE else set()))


def main() -> None:
    args = arguments(__doc__, steps=2500)
    scenario = Scenario(
        name="new_model", prompts={"easy": EASY}, quality=quality,
        latency_ms={CHEAP: 1500, MID: 2500, STRONG: 8000}, models=(CHEAP, MID, STRONG),
        available=available)
    result = react(scenario, config(args.config),
                   Watch("easy", CHEAP, CHANGE, (0.1, 0.5), below=False), args.steps,
                   args.seeds)
    write(result, Path(args.out), "A new, cheaper, adequate model arrives",
          __doc__.strip().splitlines()[0] + f" Before it, the mid model ({MID}, 0.88) "
          f"carried the traffic; the newcomer ({CHEAP}) delivers 0.9 for less.",
          target=("0.5", 500))


if __name__ == "__main__":
    main()
