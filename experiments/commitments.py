"""A provider commitment under uneven daily traffic: a month's prepaid amount at a discount
on one provider, a similar model elsewhere cheaper at list price. Plain routing (list
prices) leaves the commitment unused; the paced shadow price should use it to within 5% of
its amount by the window's end without overshooting."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from _common import arguments, config

from bandit_router.bench import sessions as ws
from bandit_router.core.settings import CommitmentConfig
from bandit_router.core.spend import Prices

PAIR = ("claude-haiku-4-5", "gpt-5-mini")  # anthropic (committed) and openai
QUALITY = {"claude-haiku-4-5": 0.86, "gpt-5-mini": 0.86}
DISCOUNT = 0.3
SHARE = 0.5  # the capacity: this share of what the month would cost all on the provider
STRATEGIES = ("plain", "paced", "unpaced")


def measure(cfg, seeds: int, per_day: int) -> dict:
    c = ws.catalog(cfg, PAIR)
    haiku = Prices.of(c.model(PAIR[0])).cost(6000, ws.OUTPUT_TOKENS)
    out: dict = {s: {"used_pct": [], "effective": [], "quality": [], "daily": []}
                 for s in STRATEGIES}
    for seed in range(seeds):
        traffic = ws.daily_traffic(np.random.default_rng(seed), per_day)
        capacity = SHARE * sum(traffic) * haiku
        amount = capacity * (1 - DISCOUNT)
        for s in STRATEGIES:
            commitment = None if s == "plain" else CommitmentConfig(
                "prepaid", provider="anthropic", amount_usd=amount, discount=DISCOUNT,
                pacing=s == "paced")
            r = ws.run_commitment(c, commitment, capacity, QUALITY, traffic, seed)
            out[s]["used_pct"].append(r.used / capacity)
            out[s]["effective"].append(ws.effective_cost(r, DISCOUNT))
            out[s]["quality"].append(r.quality)
            out[s]["daily"].append([u / capacity for u in r.daily_used])
    return out


LABEL = {"plain": "plain (list prices)", "paced": "commitment, paced (default)",
         "unpaced": "commitment, prepaid at 0 until used (pacing = false)"}


def markdown(res: dict, seeds: int, per_day: int) -> str:
    lines = ["# A commitment under uneven traffic", "",
             f"A month (31 days) of single-turn requests, about {per_day} a weekday, weekends "
             "at 35%, a launch week at 2x, ±30% daily noise. A prepaid Anthropic commitment at "
             f"{DISCOUNT:.0%} off whose capacity is {SHARE:.0%} of what the month would cost "
             f"all on {PAIR[0]}; {PAIR[1]} is as good and cheaper at list price. Effective "
             f"cost: the amount (paid in any case) + list price past the capacity + the other "
             f"provider's spend. {seeds} seeds.", "",
             "| routing | commitment used at month end | effective cost (USD) | quality |",
             "|---|---:|---:|---:|"]
    for s in STRATEGIES:
        r = res[s]
        lines.append(f"| {LABEL[s]} | {min(r['used_pct']):.1%}–{max(r['used_pct']):.1%} | "
                     f"{np.mean(r['effective']):.2f} | {np.mean(r['quality']):.3f} |")
    paced = res["paced"]["used_pct"]
    met = all(abs(u - 1) <= 0.05 for u in paced)
    lines += ["", f"Paced: used within 5% of the amount in every seed: "
                  f"**{'met' if met else 'missed'}**."]
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    shade = {"plain": "#999999", "paced": "#1f77b4", "unpaced": "#d62728"}
    for s in STRATEGIES:
        ax.plot(np.arange(1, 32), np.mean(res[s]["daily"], axis=0), label=LABEL[s],
                color=shade[s])
    ax.axhline(1.0, color="black", lw=0.8, ls="--")
    ax.set_xlabel("day of the month")
    ax.set_ylabel("commitment used (share of capacity)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    args = arguments(__doc__, steps=200)
    cfg = config(args.config)
    res = measure(cfg, args.seeds, args.steps)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "commitments.json").write_text(json.dumps(res))
    (out / "commitments.md").write_text(markdown(res, args.seeds, args.steps))
    plot(res, out / "commitments.png")
    print(markdown(res, args.seeds, args.steps))


if __name__ == "__main__":
    main()
