"""A review of the day's work after 96bf80b (stats' models, colours and timeline; the judge's
scores kept apart): each test states what must hold and fails on the commit under review
(59e5b6b). The server tests run the real app on a loopback port with test_trust's two
tenants (acme, globex) and operator key, over a real SQLite file."""

from __future__ import annotations

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bandit_router.core import posterior
from bandit_router.core.posterior import FIELDS, Evidence
from bandit_router.core.types import ArmKey
from bandit_router.engine.arms import quality_counts
from bandit_router.http.app import create_app
from bandit_router.storage import timeline
from tests.conftest import FakeClock
from tests.http.tenants import call, decide

# test_trust's fixtures: the capture upstream, and the server with two tenants and an operator

PROGRESS_STEP = 10  # SQLite VM instructions per progress-handler call


def _count_minute_reads(monkeypatch) -> list[int]:
    """The work (SQLite VM instructions / PROGRESS_STEP) of each per-minute timeline read
    the server makes, counted on the writer thread that runs it: a count, not a time."""
    work: list[int] = []
    original = timeline.ReadMinutes.run

    def counted(self, db):
        ticks = [0]

        def tick() -> int:
            ticks[0] += 1
            return 0  # go on

        db.conn.set_progress_handler(tick, PROGRESS_STEP)
        try:
            return original(self, db)
        finally:
            db.conn.set_progress_handler(None, PROGRESS_STEP)
            work.append(ticks[0])

    monkeypatch.setattr(timeline.ReadMinutes, "run", counted)
    return work


async def _stats(c, key: str, window: str) -> dict:
    status, body = await call(c, "GET", f"/v1/stats?window={window}", key)
    assert status == 200, body
    return body


# --- 1. the timeline's per-minute read --------------------------------------------------

async def test_a_short_history_reads_per_minute_without_scanning_other_tenants_week(
        server, clock, monkeypatch):
    """A tenant whose history is short (one decision, a minute old) gets its timeline from
    the decisions table, read from the *window's* start with only the created_at index:
    globex's decisions of three days ago are all visited for acme's window=week, on the
    single writer thread that also commits every feedback (the dashboard asks every 5 s).
    The same answer must cost the same whatever other tenants did before acme's history
    began; measured against acme's own window=hour read in the same run."""
    for _ in range(600):  # globex's traffic, three days before acme's first decision
        await decide(server, "globex-app")
    clock.advance(3 * 86_400.0)
    await decide(server, "acme-app")
    clock.advance(60.0)
    work = _count_minute_reads(monkeypatch)
    hour = await _stats(server, "acme-app", "hour")
    week = await _stats(server, "acme-app", "week")
    assert len(work) == 2, "the short history is read per minute in both windows"
    assert hour["timeline"]["buckets"] == week["timeline"]["buckets"]  # the same answer
    baseline, loaded = work
    assert loaded <= 3 * baseline + 5, (
        f"acme's week read did {loaded * PROGRESS_STEP} SQLite instructions against "
        f"{baseline * PROGRESS_STEP} for its hour: it scans globex's 600 old decisions")


# --- 1b. a clock that is behind the store's newest row -----------------------------------

async def test_stats_answer_when_another_replicas_clock_is_ahead(trusted):
    """Two replicas share a store; one's clock runs two minutes ahead of the other's (or
    NTP steps a clock back). Its decisions are then newer than the reader's `now`:
    timeline_json makes fewer than one slot (n = 0) and indexes an empty row, so /v1/stats
    (and the dashboard) answer 500 for every tenant with such traffic."""
    behind = FakeClock()
    ahead = FakeClock(behind() + 120.0)
    async with TestClient(TestServer(create_app(trusted, clock=ahead))) as a, \
            TestClient(TestServer(create_app(trusted, clock=behind))) as b:
        await decide(a, "acme-app")
        await _stats(a, "acme-app", "day")  # flushes a's decisions to the shared store
        status, body = await call(b, "GET", "/v1/stats?window=day", "acme-app")
        assert status == 200, body
        assert body["totals"]["decisions"] == 1


def test_timeline_counts_a_decision_newer_than_now():
    """The same at the unit: a count a slot past `now` is still counted, not an IndexError."""
    now = 1_800_000_000.0
    counts = [timeline.Count(now + 90.0, "auto", "chat:low", "gpt-5-nano", 3)]
    out = timeline.timeline_json(counts, now, timeline.MINUTE_S)
    assert out["slots"] >= 1
    assert sum(map(sum, out["buckets"][0]["models"].values())) == 3


# --- 2. the judge's scores kept apart ---------------------------------------------------

CAP = 50.0
ACCURACY = 0.85


def _fed(n: int, quality: float) -> Evidence:
    """An arm after n client scores and n judge scores of `quality` each, capped at CAP."""
    ev, weights = Evidence(), {"client": 1.0, "judge": 1.0, "judge_accuracy": ACCURACY}
    for i in range(n):
        facts = (("quality", quality), ("judge_quality", quality))
        ev = posterior.observe(ev, facts, float(i), 0.0, CAP, weights=weights)
    return ev


def test_evidence_cap_bounds_an_arms_quality_evidence_with_a_noisy_judge():
    """docs/configuration.md: `evidence_cap` is the "most quality observations an arm keeps
    (keeps it exploring, at a steady cost)". With judge.accuracy < 1 the judge's scores are capped
    apart (their own CAPPED group), so an arm keeps `cap` client scores *and* `cap` judge
    scores: its Beta counts (quality_counts, what pooling and the posterior add) pass the
    cap by the judge's worth, about 1.5 x cap for a middling arm."""
    ev = _fed(200, 0.5)
    column = np.array([[getattr(ev, name)] for name in FIELDS])
    pos, neg = quality_counts(column, ACCURACY)
    kept = float(pos[0] + neg[0])
    assert kept <= CAP * (1 + 1e-9), f"an arm capped at {CAP:g} keeps {kept:.1f} observations"


def test_arms_evidence_is_what_the_posterior_counts(engine):
    """/v1/arms' `evidence` (also bandit_router_posterior_evidence and the dashboard's n)
    sums the raw judge scores (report.py: ev[QUALITY_ROWS]) while the posterior, the pool
    and the judge's own sampling (Engine.evidence) count them at their worth (`judged`,
    ~0.49 each for a 0.85 judge): an arm with 40 judge scores and no client one reports
    40 observations behind a posterior that counts about 20."""
    assert engine.config.judge.accuracy == ACCURACY  # the bundled judge: a noisy one
    ev, weights = Evidence(updated_at=engine.now()), engine.config.source_weights
    for _ in range(40):
        ev = posterior.observe(ev, (("judge_quality", 0.5),), engine.now(), 0.0, 0.0,
                               weights=weights)
    key = ArmKey("default", "chat:low", "gpt-5-nano", "acme")
    engine.absorb({key: ev})
    counted = engine.evidence(key.tenant, key.policy, key.bucket, key.model)
    [reported] = [r.evidence for r in engine.report(tenant="acme") if r.key == key]
    assert counted == pytest.approx(19.6, rel=0.05)  # what the posterior adds
    assert reported == pytest.approx(counted, rel=0.01), (
        f"/v1/arms reports {reported:.1f} observations, the posterior counts {counted:.1f}")
