"""GET /dashboard in a real headless Chromium (Debian's `chromium`) against the real app on a
loopback port: the page loads with no console error, asks nothing of another origin, shows
the numbers /v1/stats and /v1/arms report, refreshes by itself, and works with API keys."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bandit_router.app import create_app
from bandit_router.config import BudgetConfig, Config
from tests.cdp import CHROMIUM, chromium
from tests.conftest import ROOT
from tests.test_auth import KEYS, auth, keyed, keyed_config  # noqa: F401  (fixtures)

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
    charts: Object.fromEntries([...document.querySelectorAll(".chart")].map(
      (c) => [c.dataset.bucket, c.querySelectorAll("rect[fill]:not([fill='#f2f4f7'])").length])),
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
                "input_tokens": 800 + 37 * i, "output_tokens": 200 + 11 * i})
            assert r.status == 200, await r.text()
    return decisions


async def _api(client, headers=None) -> tuple[dict, list[dict]]:
    stats = await (await client.get("/v1/stats", headers=headers)).json()
    arms = (await (await client.get("/v1/arms", headers=headers)).json())["arms"]
    return stats, arms


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
            # every arm's posterior mean and interval
            assert len(shown["arms"]) == len(arms) > 7
            for arm in arms:
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
                assert shown["charts"][g["bucket"]] == len(g["share"])
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


async def test_with_keys_the_page_asks_for_one_and_shows_that_tenant(keyed):  # noqa: F811
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
