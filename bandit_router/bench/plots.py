"""PNG plots of a replay: the cost-quality frontier, traffic over time, cumulative regret.

Each `draw_*` builds the figure from the saved results.json (so `replot` can redraw without
re-running the replay); the plain function draws and saves it. Style and colours come from
`bench.style` and `bandit_router.core.palette`: a model is the same colour in every figure.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bandit_router.bench import style

REGIMES = ("cold_start", "steady_state")
ROUTER = {"color": "black", "lw": 2.2}
BOUND = {"color": "#777777", "ls": "--", "lw": 1.6}
PEER = {"color": "#AA4499", "ls": ":", "lw": 2.0, "marker": "x", "ms": 7}
RULES = {"keyword-rule": "keyword rule", "hand-written-map": "hand-written map",
         "random": "random"}
POLICY_COLORS = {"router": "black", "epsilon-greedy": "#0072B2", "ucb1": "#009E73",
                 "random": "#999999", "hand-written-map": "#E69F00"}


def _title(figures: dict, regime: str) -> str:
    if regime == "cold_start":
        return f"cold start: one pass over {figures['dataset']['prompts']:,} prompts"
    return f"steady state: {figures['settings']['draws']:,} requests drawn from them"


def _models(figures: dict) -> list[str]:
    return list(figures["dataset"]["models"])


def _always(ax: Axes, data: dict, colors: dict[str, str]) -> tuple[list[float], list[float]]:
    """Each always-<model> rule as a dot in the model's colour, labelled; their costs and
    qualities."""
    costs, qualities = [], []
    for name, p in data["policies"].items():
        if not name.startswith("always:"):
            continue
        model = name.removeprefix("always:")
        x, y = p["cost_vs_strongest"], p["quality_vs_strongest"]
        costs.append(x)
        qualities.append(y)
        ax.scatter(x, y, s=46, color=colors[model], edgecolors="white", linewidths=0.6,
                   zorder=4)
        ax.annotate(style.short(model), (x, y), xytext=(4, -3), textcoords="offset points",
                    fontsize=8.5, color="#333333")
    return costs, qualities


def _rules(ax: Axes, data: dict) -> None:
    for name, label in RULES.items():
        p = data["policies"].get(name)
        if p:
            x, y = p["cost_vs_strongest"], p["quality_vs_strongest"]
            ax.scatter(x, y, s=60, marker="D", color="white", edgecolors="black", zorder=5)
            ax.annotate(label, (x, y), xytext=(5, 5), textcoords="offset points",
                        fontsize=9, style="italic")


def _frontier_panel(ax: Axes, figures: dict, regime: str, peer: dict | None,
                    colors: dict[str, str]) -> None:
    data = figures["regimes"][regime]
    fronts = data["frontiers"]
    xs, ys = zip(*fronts["router"]["points"], strict=True)
    ax.plot(xs, ys, "o-", ms=4, label="router (price-weight sweep)", **ROUTER)
    default = data["policies"]["router"]
    ax.scatter(default["cost_vs_strongest"], default["quality_vs_strongest"], s=190,
               facecolors="none", edgecolors="black", linewidths=2, zorder=6,
               label="router, default settings")
    bound = fronts.get("hindsight-map", {}).get("points", [])
    if bound:
        ax.plot(*zip(*bound, strict=True), label="per-bucket bound (best fixed map, "
                "chosen after seeing the answers)", **BOUND)
    if peer and peer.get(regime):
        ax.plot(*zip(*peer[regime], strict=True), label=peer.get("label", "peer"), **PEER)
    costs, qualities = _always(ax, data, colors)
    _rules(ax, data)
    oracle = data["policies"].get("oracle")
    if oracle:
        style.note(ax, f"not plotted: the oracle (the best model for each prompt,\n"
                       f"picked after seeing every answer) reaches quality "
                       f"{oracle['quality_vs_strongest']:.2f}\nat cost "
                       f"{oracle['cost_vs_strongest']:.3f}", "upper left")
    ax.set_xscale("log")
    lo = min([*costs, *xs])
    style.log_ticks(ax, [v for v in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0) if v >= lo * 0.8])
    ax.set_ylim(min([*qualities, *ys]) - 0.03, 1.03)
    ax.set_xlabel("cost per request, as a fraction of always-strongest's (log scale)")
    ax.set_title(_title(figures, regime))


def draw_frontier(figures: dict, peer: dict | None = None) -> Figure:
    fig, axes = style.figure(1, 2, width=15, height=6.2, sharey=True)
    colors = style.model_colors(_models(figures))
    for ax, regime in zip(axes, REGIMES, strict=True):
        _frontier_panel(ax, figures, regime, peer, colors)
    strongest = figures["dataset"]["strongest"]
    axes[0].set_ylabel(f"mean quality, as a fraction of\nalways-strongest's ({strongest})")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=4, bbox_to_anchor=(0.5, 1.0))
    fig.suptitle(f"{figures['dataset']['name']}: quality against cost; up and left is better "
                 "(dots: always one model; diamonds: static rules)", y=1.04)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def _top_models(figures: dict) -> list[str]:
    """The models with the most traffic over both runs (each run's mean share counts
    equally): the same models are named in both panels."""
    weight: dict[str, float] = {}
    for regime in REGIMES:
        shares = figures["traffic_over_time"][regime]["shares"]
        for model, curve in shares.items():
            weight[model] = weight.get(model, 0.0) + sum(curve) / max(1, len(curve))
    return sorted(weight, key=lambda m: (-weight[m], m))[:style.TOP]


def draw_traffic(figures: dict) -> Figure:
    fig, axes = style.figure(1, 2, width=15, height=5.0, sharey=True)
    colors = style.model_colors(_models(figures))
    top = _top_models(figures)
    for ax, regime in zip(axes, REGIMES, strict=True):
        data = figures["traffic_over_time"][regime]
        window, curves = data["window"], style.fold(data["shares"], top)
        steps = [window * (i + 1) / 1000 for i in range(len(next(iter(curves.values()))))]
        ax.stackplot(steps, list(curves.values()), labels=[style.short(m) for m in curves],
                     colors=[colors[m] for m in curves], alpha=0.95, lw=0)
        ax.set_xlabel("requests routed so far (thousands)")
        ax.set_ylim(0, 1)
        ax.set_xlim(0, steps[-1])
        ax.set_title(_title(figures, regime))
        ax.grid(False)
    axes[0].set_ylabel("share of the router's requests")
    handles, labels = axes[0].get_legend_handles_labels()  # the same models in both panels
    fig.legend(handles[::-1], labels[::-1], loc="center left", bbox_to_anchor=(1.0, 0.5),
               title="model (top to bottom)")
    fig.suptitle(f"Where the router sends traffic: the {len(top)} busiest models, the rest "
                 "as \"other\"")
    fig.tight_layout()
    return fig


def draw_regret(figures: dict) -> Figure:
    fig, axes = style.figure(1, 2, width=15, height=5.0)
    for ax, regime in zip(axes, REGIMES, strict=True):
        reg = figures["regret"][regime]
        for name, curve in reg["curves"].items():
            xs = [i * reg["steps"] / len(curve) / 1000 for i in range(len(curve))]
            ax.plot(xs, curve, label=name, color=POLICY_COLORS.get(name, "#555555"),
                    lw=2.2 if name == "router" else 1.5)
        ax.axhline(0, color="#999999", lw=0.8)
        ax.set_xlabel("requests routed so far (thousands)")
        ax.set_title(_title(figures, regime))
    axes[0].set_ylabel("regret: utility lost, summed\n(1 = one answer's whole quality)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), bbox_to_anchor=(0.5, 1.0))
    fig.text(0.5, -0.02, "Regret = the per-bucket bound's utility minus the policy's, added up "
             "over requests; utility = quality (0 to 1) minus the default price weight times "
             "the cost. Flat = no longer losing.", ha="center", fontsize=10, color="#444444")
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return fig


def frontier(figures: dict, path: Path, peer: dict | None = None) -> None:
    style.save(draw_frontier(figures, peer), path)


def traffic(figures: dict, path: Path) -> None:
    style.save(draw_traffic(figures), path)


def regret(figures: dict, path: Path) -> None:
    style.save(draw_regret(figures), path)


def draw_shares(panels: list[tuple[str, dict[str, list[float]]]], xlabel: str,
                window: int) -> Figure:
    """One panel per (title, model -> rolling share curve), in rows of two, one legend."""
    rows = (len(panels) + 1) // 2
    fig, axes = style.figure(rows, 2, width=14, height=4.0 * rows)
    colors = style.model_colors(m for _, curves in panels for m in curves)
    handles = {}
    for ax, (title, curves) in zip(axes, panels, strict=False):
        for model, curve in curves.items():
            if max(curve, default=0.0) > 0.02:  # models that never carry traffic: left out
                (line,) = ax.plot(curve, color=colors[model], lw=1.8)
                handles.setdefault(model, line)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"share of the last {window} requests\n(mean of seeds)")
        ax.set_ylim(0, 1)
    for ax in axes[len(panels):]:
        ax.axis("off")
    fig.legend(list(handles.values()), list(handles), loc="center left",
               bbox_to_anchor=(1.0, 0.5), title="model")
    fig.tight_layout()
    return fig


def save_shares(path: Path, panels: list[tuple[str, dict[str, list[float]]]], xlabel: str,
                window: int) -> None:
    style.save(draw_shares(panels, xlabel, window), path)
