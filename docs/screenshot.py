"""Make docs/dashboard.png: the real service, fed simulated traffic through its HTTP API,
photographed by headless Chromium.

    python docs/screenshot.py [--requests 2400] [--hours 12] [--window day]
                              [--out docs/dashboard.png]

The workload: four busy buckets, each model with a true mean quality per bucket (cheap
models are good enough for chat and summaries, not for hard code or maths), token counts
per bucket, feedback for every call, and a few quiet buckets the dashboard folds into
"other". The service runs on a clock that walks through the last `--hours`, one request at
a time, then catches up with real time, so the traffic chart shows the router moving
traffic to the cheapest adequate models. tests/http/test_dashboard.py seeds its short and long
histories (docs/dashboard-short.png, docs/dashboard-month.png) with the same `seed`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from aiohttp.test_utils import TestClient, TestServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.cdp: the Chromium driver the dashboard tests use

from bandit_router.config import load  # noqa: E402
from bandit_router.core.settings import BudgetConfig  # noqa: E402
from bandit_router.http.app import create_app  # noqa: E402
from tests.cdp import chromium  # noqa: E402

HOURS = 12.0
# bucket: (share of traffic, (input tokens, output tokens) means, true quality by model)
WORKLOAD = {
    "chat:low": (0.40, (600, 250), {"gpt-5-nano": 0.86, "gemini-2.5-flash-lite": 0.84,
                                    "gpt-5-mini": 0.88, "gemini-2.5-flash": 0.88,
                                    "claude-haiku-4-5": 0.89, "gpt-5": 0.90,
                                    "claude-sonnet-4-5": 0.91}),
    "summarize:low": (0.25, (3000, 300), {"gpt-5-nano": 0.70, "gemini-2.5-flash-lite": 0.80,
                                          "gpt-5-mini": 0.84, "gemini-2.5-flash": 0.85,
                                          "claude-haiku-4-5": 0.86, "gpt-5": 0.88,
                                          "claude-sonnet-4-5": 0.88}),
    "code:high": (0.20, (1500, 900), {"gpt-5-nano": 0.35, "gemini-2.5-flash-lite": 0.40,
                                      "gpt-5-mini": 0.66, "gemini-2.5-flash": 0.62,
                                      "claude-haiku-4-5": 0.72, "gpt-5": 0.86,
                                      "claude-sonnet-4-5": 0.88}),
    "math:high": (0.15, (400, 1200), {"gpt-5-nano": 0.30, "gemini-2.5-flash-lite": 0.35,
                                      "gpt-5-mini": 0.70, "gemini-2.5-flash": 0.65,
                                      "claude-haiku-4-5": 0.60, "gpt-5": 0.90,
                                      "claude-sonnet-4-5": 0.84}),
}
GENERIC = {"gpt-5-nano": 0.6, "gemini-2.5-flash-lite": 0.62, "gpt-5-mini": 0.78,
           "gemini-2.5-flash": 0.76, "claude-haiku-4-5": 0.8, "gpt-5": 0.88,
           "claude-sonnet-4-5": 0.87}
# quiet buckets: a few percent of the traffic each
QUIET = {b: (share, (800, 400), GENERIC) for b, share in (
    ("classify:low", 0.03), ("write:low", 0.025), ("reasoning:high", 0.02),
    ("chat:high", 0.015), ("summarize:high", 0.01))}


class WalkingClock:
    """Simulated time while seeding; real time once `stop()` is called."""

    def __init__(self, start: float) -> None:
        self.t: float | None = start

    def __call__(self) -> float:
        return time.time() if self.t is None else self.t

    def stop(self) -> None:
        self.t = None


async def seed(client, clock, requests: int, rng: np.random.Generator,
               hours: float = HOURS, quiet: bool = True) -> None:
    """`requests` route + feedback calls spread evenly over `hours` of `clock` (anything
    with a settable `t`, moved forward before each call)."""
    work = {**WORKLOAD, **(QUIET if quiet else {})}
    buckets = list(work)
    shares = np.array([work[b][0] for b in buckets])
    step = hours * 3600.0 / requests
    for _ in range(requests):
        clock.t += step
        bucket = buckets[rng.choice(len(buckets), p=shares / shares.sum())]
        _, (tokens_in, tokens_out), truth = work[bucket]
        r = await client.post("/v1/route", json={"prompt": f"a {bucket} request",
                                                 "bucket": bucket})
        d = await r.json()
        quality = float(np.clip(rng.normal(truth[d["model"]], 0.12), 0.0, 1.0))
        await client.post("/v1/feedback", json={
            "route_id": d["route_id"], "quality": round(quality, 3),
            "input_tokens": int(rng.gamma(4.0, tokens_in / 4.0)) + 1,
            "output_tokens": int(rng.gamma(3.0, tokens_out / 3.0)) + 1,
            "latency_ms": float(rng.gamma(4.0, 400.0))})


async def make(out: Path, requests: int, seed_: int = 3, hours: float = HOURS,
               window: str = "day") -> None:
    config = load(ROOT / "config.toml")
    clock = WalkingClock(time.time() - hours * 3600.0)
    with tempfile.TemporaryDirectory() as tmp:
        config = replace(config, storage=replace(config.storage, url=f"{tmp}/router.db"),
                         budgets=(BudgetConfig("team-daily", 6.0 * requests / 2400),))
        async with TestClient(TestServer(create_app(config, clock=clock))) as client:
            await seed(client, clock, requests, np.random.default_rng(seed_), hours)
            clock.stop()
            async with chromium() as page:
                await page.open(str(client.make_url("/dashboard")), width=1100)
                await page.wait_for("Number(document.body.dataset.ready || 0) >= 1")
                await choose_window(page, window)
                await asyncio.sleep(0.3)  # let the page lay out
                assert page.errors == [], page.errors
                await page.screenshot(out, width=1100)  # legible at the README's width


async def choose_window(page, window: str) -> None:
    """Pick a window in the page's selector and wait for the redraw it causes."""
    ready = await page.evaluate("Number(document.body.dataset.ready || 0)")
    await page.evaluate(f"(() => {{ const s = document.getElementById('window'); "
                        f"s.value = {window!r}; s.dispatchEvent(new Event('change')); "
                        f"return true; }})()")
    await page.wait_for(f"Number(document.body.dataset.ready || 0) > {ready}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2400)
    parser.add_argument("--hours", type=float, default=HOURS)
    parser.add_argument("--window", default="day", choices=("hour", "day", "week", "month"))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    args = parser.parse_args()
    asyncio.run(make(args.out, args.requests, hours=args.hours, window=args.window))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
