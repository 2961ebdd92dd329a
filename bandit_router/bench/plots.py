"""PNG plots of a replay: the cost-quality frontier, traffic over time, cumulative regret."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use(): the backend must be chosen first

CURVES = {"router": ("tab:red", "o-"), "utility-mode": ("tab:orange", "o:"),
          "hindsight-map": ("tab:gray", "s--"),
          "epsilon-greedy": ("tab:blue", "^-"), "ucb1": ("tab:green", "v-"),
          "length-rule": ("tab:purple", "d:")}
POINTS = {"always-cheapest": "P", "always-strongest": "X", "random": "*", "keyword-rule": "D",
          "hand-written-map": "h", "oracle": "p"}
REGIMES = ("cold_start", "steady_state")
TITLES = {"cold_start": "cold start (one pass)", "steady_state": "steady state (last third)"}
RUNS = {"cold_start": "cold start (one pass)", "steady_state": "steady state (every draw)"}


def frontier(figures: dict, path: Path, peer: dict | None = None) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(15, 5.4), sharey=True)
    for ax, regime in zip(axes, REGIMES, strict=True):
        data = figures["regimes"][regime]
        for group, (color, style) in CURVES.items():
            pts = data["frontiers"].get(group, {}).get("points", [])
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, style, color=color, label=group, ms=4)
        always = data["frontiers"].get("always", {}).get("points", [])
        if always:
            ax.scatter(*zip(*always, strict=True), marker=".", color="black", s=40,
                       label="always-<model>")
        for name, marker in POINTS.items():
            p = data["policies"].get(name)
            if p:
                ax.scatter(p["cost_vs_strongest"], p["quality_vs_strongest"], marker=marker,
                           s=70, label=name, zorder=5)
        router = data["policies"]["router"]
        ax.scatter(router["cost_vs_strongest"], router["quality_vs_strongest"], s=200,
                   facecolors="none", edgecolors="tab:red", linewidths=2,
                   label="router (default policy)", zorder=6)
        if peer and peer.get(regime):
            xs, ys = zip(*peer[regime], strict=True)
            ax.plot(xs, ys, "x--", color="tab:orange", label=peer.get("label", "peer"))
        ax.set_xscale("log")
        ax.set_xlabel("cost, fraction of always-strongest (log scale)")
        ax.set_title(TITLES[regime])
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("quality, fraction of always-strongest")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle(f"{figures['dataset']['name']}: cost-quality frontier")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def traffic(figures: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
    for ax, regime in zip(axes, REGIMES, strict=True):
        data = figures["traffic_over_time"][regime]
        window, shares = data["window"], data["shares"]
        names = sorted(shares, key=lambda n: -sum(shares[n]))
        steps = [window * (i + 1) for i in range(len(shares[names[0]]))]
        colors = plt.get_cmap("tab20").colors
        ax.stackplot(steps, [shares[n] for n in names], labels=names, alpha=0.9,
                     colors=[colors[i % len(colors)] for i in range(len(names))])
        ax.set_xlabel("requests")
        ax.set_ylim(0, 1)
        ax.set_title(f"router traffic share, {RUNS[regime]} (windows of {window})")
    axes[0].set_ylabel("share of requests")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def regret(figures: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
    for ax, regime in zip(axes, REGIMES, strict=True):
        for name, curve in figures["regret"][regime]["curves"].items():
            total = figures["regret"][regime]["steps"]
            xs = [i * total / len(curve) for i in range(len(curve))]
            ax.plot(xs, curve, label=name)
        ax.set_xlabel("requests")
        ax.set_title(f"cumulative regret vs hindsight map, {RUNS[regime]}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("regret (utility)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_shares(path: Path, panels: list[tuple[str, dict[str, list[float]]]], xlabel: str,
                window: int) -> None:
    """One panel per (title, model -> rolling share curve), side by side in rows of two."""
    rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(13, 3.8 * rows), squeeze=False)
    for ax, (title, curves) in zip(axes.flat, panels, strict=False):
        for model, curve in curves.items():
            if max(curve, default=0.0) > 0.02:  # models that never carry traffic: left out
                ax.plot(curve, label=model, lw=1.4)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"share (last {window}), mean of seeds")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
