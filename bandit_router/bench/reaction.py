"""How fast the router reacts to a change: runs a scenario over seeds, writes the results."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bandit_router.bench.synthetic import (
    Scenario,
    first_crossing,
    lasting_crossing,
    rolling_share,
    simulate,
)
from bandit_router.core.settings import Config

WINDOW = 50  # requests behind each share measurement


@dataclass(frozen=True)
class Watch:
    """The arm to watch: `model` in requests of `kind`, from the `change`-th such request."""

    kind: str
    model: str
    change: int
    thresholds: tuple[float, ...]
    below: bool  # True: wait for its share to fall below each threshold


def react(scenario: Scenario, config: Config, watch: Watch, steps: int, seeds: int,
          policy: str | None = None) -> dict:
    crossings: dict[str, list[int | None]] = {f"{t:g}": [] for t in watch.thresholds}
    lasting: dict[str, list[int | None]] = {f"{t:g}": [] for t in watch.thresholds}
    curves: dict[str, list[np.ndarray]] = {m: [] for m in scenario.models}
    for seed in range(seeds):
        chosen = simulate(scenario, config, steps, seed, policy)[watch.kind]
        share = rolling_share(chosen, watch.model, WINDOW)
        for t in watch.thresholds:
            crossings[f"{t:g}"].append(first_crossing(share, watch.change, t, watch.below))
            lasting[f"{t:g}"].append(lasting_crossing(share, watch.change, t, watch.below))
        for m in scenario.models:
            curves[m].append(rolling_share(chosen, m, WINDOW))
    length = min(len(c) for c in curves[watch.model])
    return {
        "scenario": scenario.name, "kind": watch.kind, "model": watch.model,
        "change_at": watch.change, "window": WINDOW, "seeds": seeds, "steps": steps,
        "direction": "below" if watch.below else "above", "crossings": crossings,
        "lasting": lasting,
        "mean_share": {m: np.mean([c[:length] for c in cs], axis=0).tolist()
                       for m, cs in curves.items()},
    }


def _stats(values: list[int | None]) -> dict:
    reached = [v for v in values if v is not None]
    return {"median": float(np.median(reached)) if reached else None,
            "max": max(reached) if reached else None, "reached": f"{len(reached)}/{len(values)}"}


def summary(result: dict) -> dict[str, dict]:
    return {t: {"first": _stats(values), "for_good": _stats(result["lasting"][t])}
            for t, values in result["crossings"].items()}


def write(result: dict, folder: Path, title: str, description: str,
          target: tuple[str, int] | None = None, extra: list[str] | None = None,
          for_good: bool = False) -> None:
    """`target`: (threshold, requests) the crossing must happen within, in every seed (the
    first crossing, or the lasting one with `for_good`)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = result["scenario"]
    stats = summary(result)
    verb = "falls below" if result["direction"] == "below" else "rises above"
    lines = [f"# {title}", "", description, "",
             f"Requests of kind `{result['kind']}` after the change until the share of "
             f"`{result['model']}` (over the last {result['window']} such requests) {verb} "
             f"each level (first time, and for good); {result['seeds']} seeds.", "",
             "| level | first: median | first: worst | for good: median | for good: worst "
             "| seeds that got there |", "|---:|---:|---:|---:|---:|---:|"]
    for t, s in stats.items():
        f, g = s["first"], s["for_good"]
        lines.append(f"| {float(t):.0%} | {f['median']} | {f['max']} | {g['median']} | "
                     f"{g['max']} | {f['reached']} |")
    if target:
        level, limit = target
        which = stats[level]["for_good" if for_good else "first"]
        worst = which["max"]
        met = worst is not None and which["reached"].split("/")[0] == str(result["seeds"]) \
            and worst <= limit
        how = " for good" if for_good else ""
        lines += ["", f"Target: {verb} {float(level):.0%}{how} within {limit} requests of its "
                      f"kind in every seed: **{'met' if met else 'missed'}** (worst {worst})."]
        result["target"] = {"level": level, "within": limit, "met": met, "worst": worst,
                            "for_good": for_good}
    lines += ["", *(extra or []), "", f"![{name}]({name}.png)", ""]
    (folder / f"{name}.md").write_text("\n".join(lines))
    (folder / f"{name}.json").write_text(json.dumps({**result, "title": title, "summary": stats},
                                                       indent=1))
    plot({**result, "title": title}, folder / f"{name}.png")


def plot(result: dict, path: Path) -> None:
    """The share curves of a reaction run, from its saved JSON (the title from the JSON, or
    from the first line of the Markdown next to it)."""
    from bandit_router.bench import style

    title = result.get("title")
    md = path.with_suffix(".md")
    if not title and md.is_file():
        title = md.read_text().splitlines()[0].removeprefix("# ")
    fig, (ax,) = style.figure(width=10, height=4.4)
    colors = style.model_colors(result["mean_share"])
    for model, curve in result["mean_share"].items():
        ax.plot(curve, label=model, color=colors[model], lw=1.8)
    ax.axvline(result["change_at"], color="black", linestyle="--", lw=1, label="the change")
    ax.set_xlabel(f"requests of kind '{result['kind']}' (count)")
    ax.set_ylabel(f"share of the last {result['window']}\nsuch requests (mean of seeds)")
    ax.set_ylim(0, 1)
    ax.set_title(title or result["scenario"])
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), title="model")
    style.save(fig, path)
