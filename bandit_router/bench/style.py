"""The look every benchmark and experiment figure shares: fonts and sizes that read at the
width the README shows them, one colour per model (bandit_router.core.palette), the top models
with the rest folded into "other", axes that say their unit, and log axes ticked at the
data's own values rather than at powers of two."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use(): the backend is chosen first
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from bandit_router.core import palette

OTHER = "other"
TOP = 6  # models drawn by name in a share plot; the rest are "other"
RC = {"font.size": 12, "axes.titlesize": 13, "axes.labelsize": 12, "legend.fontsize": 10,
      "xtick.labelsize": 11, "ytick.labelsize": 11, "axes.spines.top": False,
      "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.25,
      "legend.frameon": False, "figure.dpi": 110, "savefig.dpi": 110,
      "savefig.bbox": "tight"}


def figure(rows: int = 1, cols: int = 1, width: float = 12.0, height: float = 4.6,
           **kwargs) -> tuple[Figure, Sequence[Axes]]:
    """A figure in the shared style; its axes as a flat list."""
    with plt.rc_context(RC):
        fig, axes = plt.subplots(rows, cols, figsize=(width, height), squeeze=False, **kwargs)
    for ax in axes.flat:
        ax.tick_params(length=3)
    return fig, list(axes.flat)


def save(fig: Figure, path: Path) -> None:
    with plt.rc_context(RC):
        fig.savefig(path)
    plt.close(fig)


def model_colors(models: Iterable[str]) -> dict[str, str]:
    """Colours for these models, "other" included (always grey)."""
    return {**palette.colors(m for m in models if m != OTHER), OTHER: palette.OTHER}


def top_and_other(curves: dict[str, list[float]], n: int = TOP) -> dict[str, list[float]]:
    """The `n` curves with the largest sums, largest first, and the rest summed into
    "other" (left out when nothing is in it)."""
    return fold(curves, sorted(curves, key=lambda m: (-sum(curves[m]), m))[:n])


def fold(curves: dict[str, list[float]], keep: list[str]) -> dict[str, list[float]]:
    """The curves named in `keep` (in that order; zeros for one not here) and the others
    summed into "other" (left out when nothing is in it)."""
    length = len(next(iter(curves.values()), []))
    out = {m: list(curves.get(m, [0.0] * length)) for m in keep}
    rest = [curves[m] for m in curves if m not in keep]
    if rest and any(any(c) for c in rest):
        out[OTHER] = [sum(col) for col in zip(*rest, strict=True)]
    return out


def short(model: str) -> str:
    """A model's name without its vendor prefix ("meta/llama-2-70b-chat" -> "llama-2-70b-chat")."""
    return model.rsplit("/", 1)[-1]


def plain(value: float) -> str:
    """A tick label: 1, 8, 0.05, 0.3, 128 (no exponents)."""
    return f"{value:g}" if value >= 1e-3 else f"{value:.0e}"


def log_ticks(ax: Axes, values: Iterable[float], axis: str = "x") -> None:
    """A log axis ticked at these values only, printed as plain numbers."""
    ticks = sorted({float(v) for v in values if v > 0})
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(FixedLocator(ticks))
    target.set_minor_locator(NullLocator())
    target.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: plain(v)))


def plain_log(ax: Axes, axis: str = "y") -> None:
    """A log axis labelled 0.1, 1, 10, 100 rather than 10⁻¹ … 10²."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: plain(v)))


def note(ax: Axes, text: str, where: str = "lower right") -> None:
    """A sentence in a corner of the panel (what is not plotted, and why)."""
    x, ha = (0.98, "right") if "right" in where else (0.02, "left")
    y, va = (0.03, "bottom") if "lower" in where else (0.97, "top")
    ax.text(x, y, text, transform=ax.transAxes, ha=ha, va=va, fontsize=10, color="#444444",
            bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "#cccccc"})


def write_run(results: dict, folder: Path, markdown: Callable[[dict], str],
              plot: Callable[[dict, Path], None], figure_name: str = "latency.png") -> None:
    """A run's three files: its numbers (results.json), its table (results.md), its plot."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=1))
    (folder / "results.md").write_text(markdown(results))
    plot(results, folder / figure_name)

