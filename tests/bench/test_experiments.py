"""The experiment scripts run, write their outputs, and show the router reacting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bandit_router.bench.synthetic import first_crossing, lasting_crossing, rolling_share

ROOT = Path(__file__).resolve().parents[2]


def test_rolling_share_and_crossings():
    models = ["a"] * 10 + ["b"] * 10
    share = rolling_share(models, "a", window=5)
    assert share[:10].tolist() == [1.0] * 10
    assert share[14] == 0.0 and share[11] == pytest.approx(3 / 5)
    assert first_crossing(share, 10, 0.5, below=True) == 3  # requests 11..13: 4/5, 3/5, 2/5
    assert first_crossing(share, 10, 0.9, below=False) is None
    assert np.all((share >= 0) & (share <= 1))


def test_lasting_crossing_waits_until_the_share_stays_across():
    share = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    assert first_crossing(share, 0, 0.5, below=True) == 2
    assert lasting_crossing(share, 0, 0.5, below=True) == 5  # after the rebound at index 3
    assert lasting_crossing(np.array([0.0, 0.0]), 0, 0.5, below=True) == 1
    assert lasting_crossing(np.array([0.0, 1.0]), 0, 0.5, below=True) is None


@pytest.mark.parametrize(("script", "level"), [("drift", "0.1"), ("new_model", "0.5"),
                                               ("latency", "0.1")])
def test_experiment_runs_and_meets_its_target(script: str, level: str, tmp_path: Path):
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / f"{script}.py"),
                           "--seeds", "2", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / f"{script}.json").read_text())
    assert (tmp_path / f"{script}.png").read_bytes()[:4] == b"\x89PNG"
    assert "| level |" in (tmp_path / f"{script}.md").read_text()
    assert result["target"]["level"] == level
    assert result["target"]["met"], result["summary"]


def test_poisoning_costs_more_after_than_before(tmp_path: Path):
    """The change-detection span makes flipping a well-observed bucket cost an attacker
    more (messages) than forgetting at once did, and a burst's cost grow with the evidence."""
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "poisoning.py"),
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "poisoning.json").read_text())
    assert (tmp_path / "poisoning.png").read_bytes()[:4] == b"\x89PNG"
    for row in rows:
        before, after = row["before"]["messages"], row["after"]["messages"]
        assert before is not None and (after is None or after >= before), row
    bursts = {r["honest"]: r for r in rows if r["attack"].startswith("burst")}
    assert bursts[3000]["after"]["messages"] >= 10 * bursts[3000]["before"]["messages"]
    assert bursts[3000]["after"]["messages"] > bursts[300]["after"]["messages"]


@pytest.mark.parametrize("script", ["equals", "unused_model"])
def test_objective_experiment_runs_and_meets_its_target(script: str, tmp_path: Path):
    """Seeded: equals go to the cheapest (at least 80% of its bucket's requests 401-500),
    and a dearer, worse model added to the catalog moves nothing."""
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / f"{script}.py"),
                           "--seeds", "2", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / f"{script}.json").read_text())
    assert (tmp_path / f"{script}.png").read_bytes()[:4] == b"\x89PNG"
    assert "**met**" in (tmp_path / f"{script}.md").read_text()
    assert result["target"]["met"], result["target"]


def test_cache_aware_sessions_spend_less_than_cache_blind_at_equal_quality():
    """A small seeded run of experiments/sessions.py's world: the direction of its result."""
    from bandit_router.bench import sessions as ws
    from bandit_router.config import load

    cfg = ws.catalog(load(ROOT / "config.toml"), ("gpt-5-mini", "gemini-2.5-flash"))
    quality = {"gpt-5-mini": 0.86, "gemini-2.5-flash": 0.85}
    sessions = ws.session_lengths(np.random.default_rng(3), 30)
    blind = ws.run_sessions(cfg, quality, sessions, 3, "blind")
    aware = ws.run_sessions(cfg, quality, sessions, 3, "aware")
    assert aware.spend <= 0.8 * blind.spend, (aware.spend, blind.spend)
    assert aware.switches < blind.switches
    assert abs(np.mean(aware.quality) - np.mean(blind.quality)) < 0.05


def test_a_paced_commitment_is_used_more_than_plain_routing_and_not_overshot():
    from bandit_router.bench import sessions as ws
    from bandit_router.config import load
    from bandit_router.core.settings import CommitmentConfig
    from bandit_router.core.spend import Prices

    cfg = ws.catalog(load(ROOT / "config.toml"), ("claude-haiku-4-5", "gpt-5-mini"))
    quality = {"claude-haiku-4-5": 0.86, "gpt-5-mini": 0.86}
    traffic = ws.daily_traffic(np.random.default_rng(1), 25)
    capacity = 0.5 * sum(traffic) * Prices.of(cfg.model("claude-haiku-4-5")).cost(6000, 300)
    paced = CommitmentConfig("p", provider="anthropic", amount_usd=capacity * 0.7,
                             discount=0.3)
    plain = ws.run_commitment(cfg, None, capacity, quality, traffic, 1)
    used = ws.run_commitment(cfg, paced, capacity, quality, traffic, 1)
    assert plain.used < 0.7 * capacity < used.used <= 1.05 * capacity
