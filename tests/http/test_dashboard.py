"""GET /dashboard in a real headless Chromium (Debian's `chromium`) against the real app on a
loopback port: the page loads with no console error, asks nothing of another origin, shows
the numbers /v1/stats and /v1/arms report, refreshes by itself, and works with API keys."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bandit_router.core import palette
from bandit_router.core.settings import BudgetConfig, Config
from bandit_router.http.app import create_app
from tests.calls import KEYS, auth
from tests.cdp import CHROMIUM, chromium
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                "(Debian: apt-get install chromium; .ci/run installs it)")
PROMPTS = ["Write a friendly haiku about the sea.",
           "Fix this bug:\n```python\ndef f(x):\n    return x +\n```",
           "Summarize this paragraph in one sentence: the quarterly report shows growth."]
READY = "Number(document.body.dataset.ready || 0)"
# what the page shows, read from the DOM
SHOWN = """(() => {
  const t = (id) => document.getElementById(id).textContent;
  const cells = (sel, attr) => Object.fromEntries([...document.querySelectorAll(sel)].map(
    (row) => [row.getAttribute(attr), Object.fromEntries([...row.querySelectorAll("td[class]")]
      .map((td) => [td.className.split(" ").filter((c) => c !== "num")[0], td.textContent])
      .filter(([k]) => k))]));
  return {
    decisions: t("t-decisions"), feedback_rate: t("t-feedback-rate"), spend: t("t-spend"),
    savings: t("t-savings"), savings_pct: t("t-savings-pct"), quality: t("t-quality"),
    status: t("status"), keyform_hidden: document.getElementById("keyform").hidden ||
      document.getElementById("keyform").classList.contains("hidden"),
    arms: cells("tr[data-arm]", "data-arm"), budgets: cells("tr[data-budget]", "data-budget"),
    groups: cells("tr[data-group]", "data-group"),
    models: cells("tr[data-model]", "data-model"),
    charts: Object.fromEntries([...document.querySelectorAll(".chart")].map(
      (c) => [c.dataset.bucket, Number(c.dataset.total)])),
    bars: Object.fromEntries([...document.querySelectorAll(".chart")].map(
      (c) => [c.dataset.bucket, [...c.querySelectorAll("rect[data-model]")].map(
        (r) => Number(/: ([0-9,]+) of/.exec(r.textContent)[1].replace(/,/g, "")))
        .reduce((a, b) => a + b, 0)])),
    ticks: [...new Set([...document.querySelectorAll(".chart text.axis")].map(
      (t) => t.textContent))],
    colors: Object.fromEntries([...document.querySelectorAll("#legend [data-model] rect")].map(
      (r) => [r.parentNode.parentNode.dataset.model, r.getAttribute("fill")])),
    busy: [...document.querySelectorAll(".armgroup")].map((g) => g.dataset.group),
    judge: t("t-judge"),
    hash: location.hash,
  };
})()"""


def _parsed(text: str) -> tuple[float, int]:
    """The first number as the page prints it ($1,234.5678, −$0.1, 65.6%, 0.812, 1,500) and
    its decimal places."""
    cleaned = text.replace(",", "").replace("$", "").replace("−", "-")
    match = re.search(r"-?\d+(?:\.(\d+))?", cleaned)
    assert match, text
    return float(match.group()), len(match.group(1) or "")


def number(text: str) -> float:
    return _parsed(text)[0]


def shows(text: str, value: float) -> bool:
    """`text` shows `value`, rounded to the decimal places it prints."""
    shown, digits = _parsed(text)
    return abs(shown - value) <= 0.5 * 10 ** -digits + 1e-12


async def _traffic(client, n: int, headers=None) -> list[dict]:
    decisions = []
    for i in range(n):
        r = await client.post("/v1/route", json={"prompt": PROMPTS[i % 3]}, headers=headers)
        assert r.status == 200, await r.text()
        d = await r.json()
        decisions.append(d)
        if i % 4 != 3:  # some decisions never get feedback
            r = await client.post("/v1/feedback", headers=headers, json={
                "route_id": d["route_id"], "quality": 0.4 + 0.05 * (i % 10),
                "input_tokens": 800 + 37 * i, "output_tokens": 200 + 11 * i,
                "cached_input_tokens": 500 * (i % 2)})  # every other call hits a cache
            assert r.status == 200, await r.text()
    return decisions


async def _api(client, headers=None, window: str = "day") -> tuple[dict, list[dict]]:
    stats = await (await client.get(f"/v1/stats?window={window}", headers=headers)).json()
    arms = (await (await client.get("/v1/arms", headers=headers)).json())["arms"]
    return stats, arms


def _busiest(stats: dict, n: int = 4) -> list[str]:
    groups = sorted(stats["groups"], key=lambda g: -g["decisions"])  # stable: ties keep order
    return [f"{g['policy']}/{g['bucket']}" for g in groups[:n]]


def _same_models(shown: dict, stats: dict) -> None:
    """The per-model summary shows the API's figures, and the legend the API's colours."""
    assert set(shown["models"]) == {m["model"] for m in stats["models"]}
    for m in stats["models"]:
        row = shown["models"][m["model"]]
        assert number(row["decisions"]) == m["decisions"]
        assert shows(row["share"], 100 * m["share"])
        assert shows(row["spend"], m["spend_usd"])
        if m["mean_quality"] is not None:
            assert shows(row["quality"], m["mean_quality"])
        assert shows(row["cpr"], m["cost_per_request_usd"])
    assert shown["colors"] and all(stats["colors"][m].lower() == c.lower()
                                   for m, c in shown["colors"].items())
    assert shown["colors"] == {m: palette.colors(stats["colors"])[m] for m in shown["colors"]}


@pytest.fixture
def budget_config(app_config: Config) -> Config:
    return replace(app_config, budgets=(BudgetConfig("team-daily", 1.0),))


async def test_the_page_shows_what_the_api_reports_and_refreshes(budget_config: Config,
                                                                 clock, tmp_path: Path):
    async with TestClient(TestServer(create_app(budget_config, clock=clock))) as client:
        await _traffic(client, 24)
        r = await client.get("/dashboard")
        assert r.status == 200 and r.content_type == "text/html"
        assert "default-src 'none'" in r.headers["Content-Security-Policy"]
        async with chromium() as page:
            await page.open(str(client.make_url("/dashboard")))
            await page.wait_for(f"{READY} >= 1")
            shown = await page.evaluate(SHOWN)
            stats, arms = await _api(client)
            t = stats["totals"]
            assert number(shown["decisions"]) == t["decisions"] == 24
            assert shows(shown["feedback_rate"], 100 * t["feedback_rate"])
            assert shows(shown["spend"], t["spend_usd"]) and t["spend_usd"] > 0
            assert shows(shown["savings"], t["savings_usd"])
            assert shows(shown["savings_pct"], t["savings_pct"])
            assert shows(shown["quality"], t["mean_quality"])
            # the busiest buckets' arms: posterior mean and interval of each
            busy = _busiest(stats)
            assert shown["busy"] == busy and len(busy) == len(stats["groups"]) == 3
            for arm in arms:
                if f"{arm['policy']}/{arm['bucket']}" not in busy:
                    continue
                row = shown["arms"][f"{arm['policy']}/{arm['bucket']}/{arm['model']}"]
                assert shows(row["mean"], arm["quality_mean"]), (row, arm)
                lo, hi = row["interval"].split("–")
                assert shows(lo, arm["quality_interval"][0])
                assert shows(hi, arm["quality_interval"][1])
                assert shows(row["evidence"], arm["evidence"])
            # spend against the budget
            (budget,) = stats["budgets"]
            row = shown["budgets"]["team-daily"]
            assert shows(row["spent"], budget["spent_usd"])
            assert shows(row["remaining"], budget["remaining_usd"])
            assert shows(row["limit"], budget["limit_usd"])
            # savings per bucket, and a traffic chart per bucket with a bar per model used
            assert set(shown["groups"]) == {f"{g['policy']}/{g['bucket']}"
                                            for g in stats["groups"]}
            for g in stats["groups"]:
                row = shown["groups"][f"{g['policy']}/{g['bucket']}"]
                assert number(row["decisions"]) == g["decisions"]
                assert shows(row["spend"], g["spend_usd"])
                assert shows(row["saved"], g["savings_usd"])
                assert shows(row["saved-pct"], g["savings_pct"])
                assert shows(row["cache"], 100 * g["cache_hit_rate"])
                assert shows(row["cache-saved"], g["cache_savings_usd"])
                assert shown["charts"][g["bucket"]] == shown["bars"][g["bucket"]] \
                    == g["decisions"]
            _same_models(shown, stats)
            # it refreshes by itself: new traffic shows up without a reload
            before = await page.evaluate(READY)
            await _traffic(client, 6)
            await page.wait_for(f"{READY} > {before}", timeout=15)
            shown = await page.evaluate(SHOWN)
            assert number(shown["decisions"]) == 30
            await page.screenshot(tmp_path / "dashboard.png")
            assert page.errors == []
            origin = str(client.make_url("/"))
            assert page.requests and all(u.startswith(origin) for u in page.requests), \
                page.requests
            assert {u.removeprefix(origin.rstrip("/")).split("?")[0]
                    for u in page.requests} == {"/dashboard", "/v1/stats", "/v1/arms"}
    png = (tmp_path / "dashboard.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000


async def test_an_empty_router_shows_an_empty_page_without_errors(client):
    async with chromium() as page:
        await page.open(str(client.make_url("/dashboard")))
        await page.wait_for(f"{READY} >= 1")
        shown = await page.evaluate(SHOWN)
        texts = await page.evaluate("document.querySelector('main').innerText")
    assert shown["decisions"] == "0" and shown["spend"] == "$0.0000"
    assert shown["arms"] == {} and shown["budgets"] == {}
    assert "No budgets configured" in texts and "No decisions in this window yet" in texts
    assert page.errors == []


async def test_with_keys_the_page_asks_for_one_and_shows_that_tenant(keyed):
    await _traffic(keyed, 5, auth("acme-app"))
    await _traffic(keyed, 3, auth("globex-app"))
    async with chromium() as page:
        url = str(keyed.make_url("/dashboard"))
        await page.open(url)
        await page.wait_for("document.getElementById('status').textContent.includes('key')")
        shown = await page.evaluate(SHOWN)
        assert not shown["keyform_hidden"] and "needs an API key" in shown["status"]
        assert not any("/v1/" in u for u in page.requests)  # no request without a key
        # a key in the URL fragment: used, and taken out of the address bar
        await page.send("Page.navigate", url=url + "#key=" + KEYS["acme-app"][2])
        await page.wait_for(f"{READY} >= 1")
        shown = await page.evaluate(SHOWN)
        assert page.errors == []
        stats, _ = await _api(keyed, auth("acme-app"))
        assert number(shown["decisions"]) == stats["totals"]["decisions"] == 5  # acme's only
        # the per-minute timeline and the model summary are acme's too
        assert sum(b["decisions"] for b in stats["timeline"]["buckets"]) == 5
        assert sum(shown["charts"].values()) == sum(shown["bars"].values()) == 5
        assert sum(number(m["decisions"]) for m in shown["models"].values()) == 5
        assert shown["keyform_hidden"] and shown["hash"] == ""
        # a wrong key: refused, forgotten, and not tried again
        await page.send("Page.navigate", url=url + "#key=not-a-key")
        await page.wait_for("document.getElementById('status').textContent.includes('refused')")
        asked = len(page.requests)
        # A probe timer due after a whole refresh interval: browsers run timers in the
        # order they fall due, so once it has fired, a refresh still scheduled would have
        # run (and asked) before it.
        await page.evaluate("setTimeout(() => { document.body.dataset.probe = '1'; }, "
                            "REFRESH_MS + 500), true")
        await page.wait_for("document.body.dataset.probe === '1'")
        await page.evaluate("1")  # events the page sent before this answer have arrived
        shown = await page.evaluate(SHOWN)
        assert not shown["keyform_hidden"] and "invalid API key" in shown["status"]
        assert await page.evaluate("sessionStorage.length") == 0
        assert len(page.requests) == asked
    # the browser reports the refused requests (401) itself; nothing else went wrong
    assert page.errors and all("401" in e for e in page.errors), page.errors


async def test_the_screenshot_script_makes_a_screenshot_without_errors(tmp_path: Path):
    """docs/screenshot.py (which made docs/dashboard.png) still works, on a short workload."""
    spec = importlib.util.spec_from_file_location("screenshot", ROOT / "docs" / "screenshot.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    await script.make(tmp_path / "shot.png", requests=120)  # asserts no console error itself
    assert (tmp_path / "shot.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert (ROOT / "docs" / "dashboard.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def _screenshot_script():
    spec = importlib.util.spec_from_file_location("screenshot", ROOT / "docs" / "screenshot.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


async def _history_page(app_config: Config, clock, requests: int, hours: float, window: str,
                        shot: Path) -> tuple[dict, dict, list[dict]]:
    """Seed `hours` of traffic into a real store on the fake clock, open the dashboard on
    `window`; what it shows, and the API's stats and arms, read at the same fake time."""
    script = _screenshot_script()
    config = replace(app_config, budgets=(BudgetConfig("team-daily", 5.0),))
    async with TestClient(TestServer(create_app(config, clock=clock))) as client:
        clock.t -= hours * 3600.0
        await script.seed(client, clock, requests, np.random.default_rng(7), hours)
        async with chromium() as page:
            # 1100 px wide: the README shows it at about 900 px, so its text stays legible
            await page.open(str(client.make_url("/dashboard")), width=1100)
            await page.wait_for(f"{READY} >= 1")
            await script.choose_window(page, window)
            shown = await page.evaluate(SHOWN)
            stats, arms = await _api(client, window=window)
            await page.screenshot(shot, width=1100)
            assert page.errors == []
            origin = str(client.make_url("/"))
            assert all(u.startswith(origin) for u in page.requests), page.requests
    return shown, stats, arms


def _same_as_api(shown: dict, stats: dict, arms: list[dict]) -> None:
    t = stats["totals"]
    assert number(shown["decisions"]) == t["decisions"]
    assert shows(shown["spend"], t["spend_usd"]) and shows(shown["savings"], t["savings_usd"])
    assert shows(shown["quality"], t["mean_quality"])
    assert shown["judge"] == "off"  # no judge configured: said, not left blank
    _same_models(shown, stats)
    # one chart per timeline row, busiest first, each bar's count from the API's
    tl = stats["timeline"]
    assert list(shown["charts"]) == [b["key"] for b in tl["buckets"]]
    for b in tl["buckets"]:
        assert shown["charts"][b["key"]] == shown["bars"][b["key"]] == b["decisions"]
    assert sum(b["decisions"] for b in tl["buckets"]) == t["decisions"]
    busy = _busiest(stats)
    assert shown["busy"] == busy
    for arm in arms:
        if f"{arm['policy']}/{arm['bucket']}" in busy:
            row = shown["arms"][f"{arm['policy']}/{arm['bucket']}/{arm['model']}"]
            assert shows(row["mean"], arm["quality_mean"]) and shows(row["share"],
                                                                     100 * arm["share"])
    assert all(k.split("/")[0] + "/" + k.split("/")[1] in busy for k in shown["arms"])


async def test_a_few_minutes_of_history_read_in_minutes(app_config: Config, clock, tmp_path):
    shot = tmp_path / "dashboard-short.png"  # docs/screenshot.py renews the committed one
    shown, stats, arms = await _history_page(app_config, clock, 240, 8 / 60, "day", shot)
    _same_as_api(shown, stats, arms)
    tl = stats["timeline"]
    assert tl["unit"] == "minute" and 8 <= tl["slots"] <= 10  # not one sliver of an hour
    assert all(re.fullmatch(r"\d\d:\d\d", tick) for tick in shown["ticks"] if ":" in tick)
    assert len([tick for tick in shown["ticks"] if ":" in tick]) >= 3
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


async def test_weeks_of_history_read_in_days_with_quiet_buckets_folded(app_config: Config,
                                                                        clock, tmp_path):
    shot = tmp_path / "dashboard-month.png"  # docs/screenshot.py renews the committed one
    shown, stats, arms = await _history_page(app_config, clock, 1400, 24 * 27, "month", shot)
    _same_as_api(shown, stats, arms)
    tl = stats["timeline"]
    assert tl["unit"] == "day" and 27 <= tl["slots"] <= 29
    assert any(re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}", tick) for tick in shown["ticks"])
    *named, other = tl["buckets"]
    assert len(named) == 6 and other["key"] == "other" and len(other["folded"]) >= 2
    # busiest first, and every folded bucket had no more traffic than the quietest shown
    totals = [b["decisions"] for b in named]
    assert totals == sorted(totals, reverse=True)
    quiet = {g["bucket"]: g["decisions"] for g in stats["groups"]}
    assert max(quiet[k] for k in other["folded"]) <= totals[-1]
    assert other["decisions"] == sum(quiet[k] for k in other["folded"])
