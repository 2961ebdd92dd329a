"""One colour per model: derived from its name, distinct within a set, and the same in every
figure (the dashboard's side is checked in tests/http/test_dashboard.py against /v1/stats)."""

from __future__ import annotations

import json

import pytest
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.colors import to_hex

from bandit_router.bench import plots, style
from bandit_router.config import load
from bandit_router.core import palette
from tests.conftest import ROOT

REPLAY = ROOT / "benchmarks" / "results" / "routerbench_subset" / "results.json"


def test_the_bundled_catalog_gets_distinct_first_choice_colours():
    names = [m.name for m in load(ROOT / "config.toml").models]
    assert len({palette.first_choice(n) for n in names}) == len(names)
    every = palette.colors(names)
    # first choices: no model's colour depends on which others a picture shows
    assert every == {n: palette.PALETTE[palette.first_choice(n)] for n in names}
    for n in names:
        assert palette.colors([n, "some-other-model"])[n] == every[n]
    assert palette.OTHER not in every.values()


def test_collisions_are_resolved_in_name_order_and_stay_deterministic():
    names = [f"model-{i}" for i in range(len(palette.PALETTE))]
    colors = palette.colors(names)
    assert len(set(colors.values())) == len(names)  # a full palette: all distinct
    assert palette.colors(reversed(names)) == colors  # order given does not matter
    bigger = palette.colors([*names, "one-more"])
    assert set(bigger.values()) <= set(palette.PALETTE)


def _frontier_colors(fig, figures: dict) -> dict[str, str]:
    """Each always-<model> dot's colour, found by its coordinates."""
    out = {}
    points = {(round(p["cost_vs_strongest"], 9), round(p["quality_vs_strongest"], 9)):
              name.removeprefix("always:")
              for name, p in figures["regimes"]["cold_start"]["policies"].items()
              if name.startswith("always:")}
    for c in fig.axes[0].collections:
        if isinstance(c, PathCollection) and len(c.get_offsets()) == 1:
            x, y = c.get_offsets()[0]
            model = points.get((round(float(x), 9), round(float(y), 9)))
            if model:
                out[model] = to_hex(c.get_facecolor()[0])
    return out


def _traffic_colors(fig, figures: dict) -> dict[str, str]:
    by_short = {style.short(m): m for m in figures["dataset"]["models"]}
    return {by_short[c.get_label()]: to_hex(c.get_facecolor()[0])
            for c in fig.axes[0].collections
            if isinstance(c, PolyCollection) and c.get_label() in by_short}


@pytest.mark.skipif(not REPLAY.is_file(), reason="no committed replay results")
def test_a_model_has_the_same_colour_in_the_frontier_and_the_traffic_figure():
    figures = json.loads(REPLAY.read_text())
    frontier = _frontier_colors(plots.draw_frontier(figures), figures)
    traffic = _traffic_colors(plots.draw_traffic(figures), figures)
    both = set(frontier) & set(traffic)
    assert len(both) >= 5, (frontier, traffic)
    assert {m: frontier[m] for m in both} == {m: traffic[m] for m in both}
    expected = palette.colors(figures["dataset"]["models"])
    assert all(frontier[m] == expected[m].lower() for m in frontier)
    assert len(set(frontier.values())) == len(frontier) == len(figures["dataset"]["models"])


def test_top_and_other_folds_the_rest_and_keeps_the_busiest():
    curves = {"a": [0.5, 0.6], "b": [0.3, 0.2], "c": [0.1, 0.1], "d": [0.1, 0.1]}
    folded = style.top_and_other(curves, n=2)
    assert list(folded) == ["a", "b", style.OTHER]
    assert folded[style.OTHER] == pytest.approx([0.2, 0.2])
    assert style.model_colors(folded)[style.OTHER] == palette.OTHER


def test_replot_redraws_the_figures_from_saved_results(tmp_path):
    """benchmarks/replot.py: the replay's three figures and an experiment's, from JSON only."""
    import importlib.util
    import shutil

    spec = importlib.util.spec_from_file_location("replot", ROOT / "benchmarks" / "replot.py")
    replot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(replot)
    folder = tmp_path / "routerbench_subset"
    folder.mkdir()
    shutil.copy(REPLAY, folder / "results.json")
    shutil.copy(ROOT / "experiments" / "results" / "drift.json", tmp_path / "drift.json")
    written = replot.replot(folder) + replot.replot(tmp_path / "drift.json")
    assert [p.name for p in written] == ["frontier.png", "traffic.png", "regret.png",
                                         "drift.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") for p in written)
