"""Multi-turn sessions with prompt caching: cache-blind vs cache-aware routing vs always one
model, over sessions of 5-30 turns whose context grows 1-5k tokens a turn, between two
models of similar quality at the bundled catalog's list prices, with and without their
cached-input discounts. Target: cache-aware spends >= 30% less than cache-blind at equal
quality, and switches only when it pays."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from _common import arguments, config

from bandit_router.bench import sessions as ws
from bandit_router.core.palette import colors

PAIR = ("gpt-5-mini", "gemini-2.5-flash")
QUALITY = {"gpt-5-mini": 0.86, "gemini-2.5-flash": 0.85}


def measure(cfg, seeds: int, n_sessions: int) -> dict:
    out = {}
    for cache in (True, False):
        c = ws.catalog(cfg, PAIR, cache)
        rows = {}
        for strategy in ("blind", "aware", *PAIR):
            runs = [ws.run_sessions(c, QUALITY, ws.session_lengths(
                np.random.default_rng(s), n_sessions), s, strategy) for s in range(seeds)]
            rows[strategy] = {
                "spend": [r.spend for r in runs],
                "quality": [float(np.mean(r.quality)) for r in runs],
                "hit_rate": [r.cached_tokens / r.input_tokens for r in runs],
                "switch_rate": [r.switches / max(1, r.turns - n_sessions) for r in runs],
                "late_switch_rate": [r.late_switches / max(1, r.late_turns) for r in runs],
                "turns": runs[0].turns}
        out["with_discounts" if cache else "without_discounts"] = rows
    return out


def markdown(res: dict, seeds: int, n_sessions: int) -> str:
    lines = ["# Sessions and prompt caching", "",
             f"{n_sessions} sessions of 5–30 turns, context +1–5k tokens a turn, 300 output "
             f"tokens; {PAIR[0]} (quality {QUALITY[PAIR[0]]}) and {PAIR[1]} "
             f"({QUALITY[PAIR[1]]}) at the bundled list prices; {seeds} seeds (mean).", ""]
    for key, rows in res.items():
        blind = float(np.mean(rows["blind"]["spend"]))
        lines += [f"## {key.replace('_', ' ')}", "",
                  "| routing | spend (USD) | vs cache-blind | quality | cache hit rate | "
                  "turns that switch model | ... in the second half |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, r in rows.items():
            label = {"blind": "cache-blind", "aware": "cache-aware"}.get(name, f"always {name}")
            spend = float(np.mean(r["spend"]))
            lines.append(f"| {label} | {spend:.2f} | {spend / blind - 1:+.0%} | "
                         f"{np.mean(r['quality']):.3f} | {np.mean(r['hit_rate']):.0%} | "
                         f"{np.mean(r['switch_rate']):.0%} | "
                         f"{np.mean(r['late_switch_rate']):.0%} |")
        lines.append("")
    w = res["with_discounts"]
    saved = 1 - np.mean(w["aware"]["spend"]) / np.mean(w["blind"]["spend"])
    lines.append(f"Cache-aware vs cache-blind with discounts: {saved:.0%} less spend "
                 f"(target ≥ 30%: **{'met' if saved >= 0.3 else 'missed'}**).")
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> None:
    palette = colors(PAIR)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, (key, rows) in zip(axes, res.items(), strict=True):
        names = list(rows)
        spend = [np.mean(rows[n]["spend"]) for n in names]
        fill = [palette.get(n, {"blind": "#999999", "aware": "#333333"}.get(n)) for n in names]
        labels = [{"blind": "cache-blind", "aware": "cache-aware"}.get(n, f"always\n{n}")
                  for n in names]
        ax.bar(labels, spend, color=fill)
        ax.set_title(key.replace("_", " "))
        ax.set_ylabel("spend (USD)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    args = arguments(__doc__, steps=120)
    cfg = config(args.config)
    res = measure(cfg, args.seeds, args.steps)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sessions.json").write_text(json.dumps(res, indent=1))
    (out / "sessions.md").write_text(markdown(res, args.seeds, args.steps))
    plot(res, out / "sessions.png")
    print(markdown(res, args.seeds, args.steps))


if __name__ == "__main__":
    main()
