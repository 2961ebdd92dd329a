"""`bandit-router report`: the stats of GET /v1/stats, read from the database, as tables."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bandit_router.cli.savings_report import render
from bandit_router.core.settings import Config
from bandit_router.http.app import create_app
from tests.conftest import ROOT

BUDGET = '\n[[budgets]]\nname = "team-daily"\nwindow = "day"\nlimit_usd = 2.5\n'


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text((ROOT / "config.toml").read_text() + BUDGET)
    return path


async def _traffic(config: Config) -> dict:
    """Real decisions and feedback, on the real clock (the report reads the last day)."""
    async with TestClient(TestServer(create_app(config))) as c:
        for i, prompt in enumerate(("Say hi to the team.", "Fix this python bug: def f(x): "
                                    "return x +", "Summarize: the build failed twice.")):
            d = await (await c.post("/v1/route", json={"prompt": prompt})).json()
            await c.post("/v1/feedback", json={"route_id": d["route_id"], "quality": 0.7,
                                                "input_tokens": 1000 * (i + 1),
                                                "output_tokens": 300})
        return await (await c.get("/v1/stats")).json()


def _report(db: str, config_file: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bandit_router", "report", "--db", db,
                           "--config", str(config_file), *args],
                          capture_output=True, text=True, timeout=60)


async def test_report_json_matches_the_api(app_config: Config, config_file: Path):
    from bandit_router.config import load

    config = replace(load(config_file), storage=app_config.storage)
    api = await _traffic(config)
    proc = _report(app_config.storage.url, config_file, "--json")
    assert proc.returncode == 0, proc.stderr
    cli = json.loads(proc.stdout)
    cli_judge, api_judge = cli["totals"].pop("judge"), api["totals"].pop("judge")
    assert cli["totals"] == pytest.approx(api["totals"]) and cli_judge == api_judge
    assert cli["groups"] == api["groups"]
    (budget,) = cli["budgets"]
    assert budget["name"] == "team-daily"
    assert budget["spent_usd"] == pytest.approx(api["totals"]["spend_usd"])
    assert budget["cost_weight"] is None  # the pacing price lives in the running service


async def test_report_prints_tables(app_config: Config, config_file: Path):
    from bandit_router.config import load

    config = replace(load(config_file), storage=app_config.storage)
    api = await _traffic(config)
    proc = _report(app_config.storage.url, config_file, "--window", "week")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "window week" in out and "claude-sonnet-4-5" in out
    assert f"{api['totals']['spend_usd']:.4f}" in out
    assert f"{api['totals']['savings_usd']:.4f}" in out
    for group in api["groups"]:
        assert group["bucket"] in out
    assert "team-daily" in out and "budgets" in out


def test_render_without_traffic():
    stats = {"window": "day", "since": 0.0, "until": 3600.0, "reference_model": "m",
             "totals": {"decisions": 0, "feedback": 0, "feedback_rate": None, "spend_usd": 0.0,
                        "reference_usd": 0.0, "savings_usd": 0.0, "savings_pct": None,
                        "mean_quality": None},
             "groups": [], "series": [], "budgets": []}
    text = render(stats, "default")
    assert "tenant default" in text and text.count("\n") == 5


@pytest.mark.parametrize(("args", "message"), [
    (("--reference", "gpt-0"), "gpt-0"),
    (("--window", "year"), "invalid choice"),
])
def test_report_refuses_bad_arguments(tmp_path: Path, config_file: Path, args, message):
    db = tmp_path / "x.db"
    db.touch()
    proc = _report(str(db), config_file, *args)
    assert proc.returncode == 2 and message in proc.stderr


def test_report_on_a_missing_database_says_so(tmp_path: Path, config_file: Path):
    proc = _report(str(tmp_path / "absent.db"), config_file)
    assert proc.returncode == 2 and "no database" in proc.stderr
    assert not (tmp_path / "absent.db").exists()


def test_the_judge_has_its_own_spend_line():
    """Judge calls are their own spend line, with their share of the routed spend, and a
    judge that disagrees with clients is flagged."""
    judge = {"calls": 120, "failed": 3, "scores": 117, "spend_usd": 0.0421,
             "spend_share": 0.036, "mean_score": 0.8125, "implicit_facts": 9,
             "agreement": {"routes": 40, "mean_abs_diff": 0.31, "correlation": 0.42,
                           "flagged": True}}
    stats = {"window": "day", "since": 0.0, "until": 3600.0, "reference_model": "m",
             "totals": {"decisions": 1200, "feedback": 1100, "feedback_rate": 0.9,
                        "spend_usd": 1.17, "reference_usd": 4.0, "savings_usd": 2.83,
                        "savings_pct": 70.7, "mean_quality": 0.8, "judge": judge},
             "groups": [], "series": [], "budgets": []}
    (line,) = [x for x in render(stats, "default").splitlines() if x.startswith("judge:")]
    assert "120 calls (3 failed)" in line and "spend 0.0421 USD (3.6% of routed)" in line
    assert "implicit facts: 9" in line and "over 40 routes" in line and "FLAGGED" in line
    quiet = {**judge, "calls": 0, "implicit_facts": 0}
    assert "judge:" not in render({**stats, "totals": {**stats["totals"], "judge": quiet}},
                                  "default")


COMMITMENT = ('\n[[commitments]]\nname = "openai-prepaid"\nprovider = "openai"\n'
              'amount_usd = 100.0\ndiscount = 0.2\n')


async def test_report_shows_cache_savings_and_commitments_as_the_api(app_config: Config,
                                                                     tmp_path: Path):
    from bandit_router.config import load

    path = tmp_path / "config.toml"
    path.write_text((ROOT / "config.toml").read_text() + COMMITMENT)
    config = replace(load(path), storage=app_config.storage)
    async with TestClient(TestServer(create_app(config))) as c:
        for name in ("gpt-5-mini", "gemini-2.5-flash"):
            d = await (await c.post("/v1/route", json={
                "prompt": "Say hi.", "constraints": {"models": [name]}})).json()
            r = await c.post("/v1/feedback", json={
                "route_id": d["route_id"], "input_tokens": 20_000, "output_tokens": 100,
                "cached_input_tokens": 15_000})
            assert r.status == 200, await r.text()
        api = await (await c.get("/v1/stats")).json()
    proc = _report(app_config.storage.url, path, "--json")
    assert proc.returncode == 0, proc.stderr
    cli = json.loads(proc.stdout)
    assert cli["totals"]["cache_savings_usd"] == pytest.approx(api["totals"]["cache_savings_usd"])
    assert cli["totals"]["cache_hit_rate"] == pytest.approx(0.75)
    (mine,), (theirs,) = cli["commitments"], api["commitments"]
    assert mine["used_usd"] == pytest.approx(theirs["used_usd"]) and mine["used_usd"] > 0
    spent_openai = next(m["spend_usd"] for m in api["models"] if m["model"] == "gpt-5-mini")
    assert mine["used_usd"] == pytest.approx(spent_openai)
    text = _report(app_config.storage.url, path).stdout
    assert "prompt cache: 75.0% of input tokens" in text and "openai-prepaid" in text
    # inside the capacity: 20% off the covered model's spend, in both, and said so
    effective = api["totals"]["effective_spend_usd"]
    assert effective == pytest.approx(api["totals"]["spend_usd"] - 0.2 * spent_openai)
    assert cli["totals"]["effective_spend_usd"] == pytest.approx(effective)
    assert f"at effective prices (the commitments' discounts; budgets count these): spend " \
           f"{effective:.4f} USD" in text
