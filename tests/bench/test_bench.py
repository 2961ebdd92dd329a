"""The benchmark harness, on a small dataset built here (no ../shared needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bandit_router.bench import dataset as ds_module
from bandit_router.bench.command import replay
from bandit_router.bench.metrics import aiq, apgr, settle_step, upper_hull
from bandit_router.bench.replay import Settings

ROOT = Path(__file__).resolve().parents[2]
MODELS = [  # names and prices of no real dataset: nothing may depend on them
    {"name": "tiny", "provider": "a", "input_per_mtok": 0.1, "output_per_mtok": 0.2},
    {"name": "medium", "provider": "b", "input_per_mtok": 1.0, "output_per_mtok": 2.0},
    {"name": "large", "provider": "a", "input_per_mtok": 10.0, "output_per_mtok": 30.0},
]
PROMPTS = {
    "chat": "Say hello to my colleague Ann in a friendly way.",
    "code": "Write a python function that parses a CSV file; def parse(rows): import csv",
}
MEAN_QUALITY = {"chat": {"tiny": 0.85, "medium": 0.9, "large": 0.95},
                "code": {"tiny": 0.1, "medium": 0.5, "large": 0.9}}


def _rows(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        task = "chat" if i % 2 else "code"
        prompt = f"{PROMPTS[task]} (item {i})"
        outcomes = {}
        for m in MODELS:
            out_tokens = int(rng.integers(5, 200))
            tokens_in = len(prompt) // 4
            cost = (tokens_in * m["input_per_mtok"] + out_tokens * m["output_per_mtok"]) / 1e6
            q = float(rng.random() < MEAN_QUALITY[task][m["name"]])
            outcomes[m["name"]] = {"quality": q, "cost_usd": cost, "latency_s": None}
        rows.append({"id": f"p{i}", "task": task, "prompt": prompt,
                     "prompt_chars": len(prompt), "outcomes": outcomes})
    return rows


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return ds_module.write(tmp_path_factory.mktemp("data") / "small", _rows(80, 1), MODELS)


SETTINGS = Settings(shuffles=2, draws=400, steady_runs=1, weights=(0.0, 0.1, 1.0),
                    points=(0.0, 2.0, 10.0), ablation=False, workers=1)


@pytest.fixture(scope="module")
def results(small: Path, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("results")
    figures = replay(str(small), str(out), str(ROOT / "config.toml"), SETTINGS, progress=False)
    return figures, out


def test_writes_table_json_and_plots(results):
    _, out = results
    for name in ("results.md", "results.json", "frontier.png", "traffic.png", "regret.png"):
        assert (out / name).stat().st_size > 0, name
    for png in ("frontier.png", "traffic.png", "regret.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "results.json").read_text())["regimes"].keys() == \
        {"cold_start", "steady_state"}
    md = (out / "results.md").read_text()
    assert "| **router** |" in md and "## Headline" in md


REQUIRED = ("mean_quality", "mean_cost_usd", "quality_vs_strongest", "cost_vs_strongest", "aiq")
POLICIES = ("router", "always-strongest", "always-cheapest", "random", "length-rule",
            "keyword-rule", "hand-written-map", "epsilon-greedy", "ucb1", "hindsight-map",
            "oracle")


def test_every_policy_has_the_documented_figures(results):
    figures, _ = results
    for regime in ("cold_start", "steady_state"):
        policies = figures["regimes"][regime]["policies"]
        for name in POLICIES:
            assert all(isinstance(policies[name][k], float) for k in REQUIRED), (regime, name)
        assert "router@points=2" in policies and "utility-mode@cost=0.1" in policies
        assert policies["router@points=2"]["group"] == "router"
        assert policies["utility-mode"]["group"] == "utility-mode"


def test_static_figures_match_an_independent_computation(results, small):
    figures, _ = results
    data = ds_module.load(small)
    q, c = data.quality, data.cost
    strong, cheap = int(q.mean(0).argmax()), int(c.mean(0).argmin())
    cold = figures["regimes"]["cold_start"]["policies"]
    assert figures["dataset"]["strongest"] == data.names[strong] == "large"
    assert cold["always-strongest"]["mean_quality"] == pytest.approx(q[:, strong].mean())
    assert cold["always-strongest"]["mean_cost_usd"] == pytest.approx(c[:, strong].mean())
    assert cold["always-strongest"]["quality_vs_strongest"] == pytest.approx(1.0)
    assert cold["always-cheapest"]["mean_cost_usd"] == pytest.approx(c[:, cheap].mean())
    assert cold["always-cheapest"]["cost_vs_strongest"] == pytest.approx(
        c[:, cheap].mean() / c[:, strong].mean())
    # oracle: per prompt the cheapest model among those with the best quality
    best = q.max(axis=1, keepdims=True)
    oracle_cost = np.where(q >= best, c, np.inf).min(axis=1)
    assert cold["oracle"]["mean_quality"] == pytest.approx(best.mean())
    assert cold["oracle"]["mean_cost_usd"] == pytest.approx(oracle_cost.mean())
    steady = figures["regimes"]["steady_state"]["policies"]
    assert steady["always-strongest"]["cost_vs_strongest"] == pytest.approx(1.0)
    for regime in (cold, steady):
        assert all(p["mean_quality"] <= regime["oracle"]["mean_quality"] + 1e-12
                   for p in regime.values())


def test_the_router_never_sees_task_labels(small, tmp_path):
    relabelled = [dict(r, task="same-for-all") for r in _rows(80, 1)]
    other = ds_module.write(tmp_path / "relabelled", relabelled, MODELS)
    settings = Settings(shuffles=1, draws=200, steady_runs=1, weights=(0.1,), points=(2.0,),
                        ablation=False, workers=1)
    a = replay(str(small), str(tmp_path / "a"), str(ROOT / "config.toml"), settings,
               progress=False)
    b = replay(str(other), str(tmp_path / "b"), str(ROOT / "config.toml"), settings,
               progress=False)
    for regime in ("cold_start", "steady_state"):
        assert a["regimes"][regime]["policies"]["router"]["traffic"] == \
            b["regimes"][regime]["policies"]["router"]["traffic"]


def test_a_dataset_without_prices_is_refused(tmp_path):
    folder = ds_module.write(tmp_path / "bad", _rows(4, 0), MODELS[:2])
    with pytest.raises(ds_module.DatasetError, match="lacks prices"):
        ds_module.load(folder)


@pytest.mark.parametrize(("models", "problem"), [
    ([{"name": "tiny"}, *MODELS[1:]], r"models\[0\] \(tiny\): lacks prices"),
    ([{**MODELS[0], "output_per_mtok": "cheap"}, *MODELS[1:]],
     r"models\[0\]\.output_per_mtok: must be a price"),
    ([{**MODELS[0], "input_per_mtok": -1.0}, *MODELS[1:]],
     r"models\[0\]\.input_per_mtok: must be a price"),
    ([{"provider": "a"}, *MODELS[1:]], r"models\[0\]\.name"),
    ("not a list", "models: must be a list"),
])
def test_a_bad_models_file_is_an_error_naming_file_and_field(tmp_path, models, problem):
    folder = ds_module.write(tmp_path / "bad", _rows(4, 0), MODELS)
    (folder / "models.json").write_text(json.dumps({"models": models}))
    with pytest.raises(ds_module.DatasetError, match=problem) as err:
        ds_module.load(folder)
    assert str(folder / "models.json") in str(err.value)


def test_bad_rows_are_errors_naming_file_line_and_field(tmp_path):
    rows = _rows(4, 0)
    rows[2]["outcomes"]["medium"] = {"quality": "good", "cost_usd": 0.1}
    folder = ds_module.write(tmp_path / "bad", rows, MODELS)
    with pytest.raises(ds_module.DatasetError, match=r"line 3: outcomes\.medium\.quality"):
        ds_module.load(folder)
    del rows[2]["outcomes"]["medium"]
    ds_module.write(folder, rows, MODELS)
    with pytest.raises(ds_module.DatasetError, match=r"line 3: outcomes\.medium: missing"):
        ds_module.load(folder)


def test_prices_may_be_one_price_per_model_or_keyed_by_name(tmp_path):
    listed = ds_module.load(ds_module.write(tmp_path / "listed", _rows(4, 0), MODELS))
    folder = ds_module.write(tmp_path / "other", _rows(4, 0), MODELS)
    by_name = {m["name"]: {k: v for k, v in m.items() if k != "name"} for m in MODELS}
    by_name["tiny"] = {"provider": "a", "price_per_mtok": 0.15}
    (folder / "models.json").write_text(json.dumps({"models": by_name}))
    other = ds_module.load(folder)
    assert other.names == listed.names and other.models[1:] == listed.models[1:]
    assert (other.models[0].input_per_mtok, other.models[0].output_per_mtok) == (0.15, 0.15)


def test_the_command_reports_a_bad_dataset_in_one_line(tmp_path, capsys):
    from bandit_router.cli.main import main

    folder = ds_module.write(tmp_path / "bad", _rows(4, 0), [{"name": "tiny"}, *MODELS[1:]])
    assert main(["bench", "replay", str(folder), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bandit-router: error: ")
    assert "models.json: models[0] (tiny): lacks prices" in err[0]


# --- the metrics themselves -------------------------------------------------------------------

def test_upper_hull_drops_dominated_and_concave_points():
    hull = upper_hull([(0.0, 0.5), (0.5, 0.6), (0.5, 0.9), (1.0, 1.0), (0.8, 0.7)])
    assert hull == [(0.0, 0.5), (0.5, 0.9), (1.0, 1.0)]


def test_aiq_is_the_area_under_the_hull():
    assert aiq([(0.0, 0.5), (1.0, 1.0)], 0.0, 1.0) == pytest.approx(0.75, abs=1e-3)
    # a single point at the right edge reaches nothing before it
    assert aiq([(1.0, 1.0)], 0.0, 1.0) == pytest.approx(0.0, abs=1e-3)
    # adding a dominated point changes nothing
    assert aiq([(0.0, 0.5), (1.0, 1.0), (0.6, 0.6)], 0.0, 1.0) == pytest.approx(0.75, abs=1e-3)


def test_apgr_and_cpt():
    # random mixing of the two models: PGR equals the share of strong calls
    area, cpt = apgr([(0.5, 0.75)], q_weak=0.5, q_strong=1.0)
    assert area == pytest.approx(0.5, abs=1e-3) and cpt == pytest.approx(0.5, abs=1e-3)
    # a router that gets 80% of the gap with 20% strong calls
    area, cpt = apgr([(0.2, 0.9)], q_weak=0.5, q_strong=1.0)
    assert area > 0.75 and cpt == pytest.approx(0.125, abs=1e-3)


def test_settle_step():
    models = np.array([0, 1] * 100 + [1] * 600)
    assert settle_step(models, 2, window=100, tolerance=0.1) == 200
    assert settle_step(np.ones(500, dtype=int), 2, window=100) == 0
