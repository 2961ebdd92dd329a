"""Poisoned state: no feedback, snapshot row or config change can break a posterior."""

from __future__ import annotations

import math
import sqlite3
import tomllib
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from bandit_router.config import load, parse
from bandit_router.core import posterior
from bandit_router.core.posterior import FIELDS, Evidence, observe
from bandit_router.core.route_id import RouteIds
from bandit_router.core.settings import Config
from bandit_router.core.types import ArmKey, Message, RouteRequest
from bandit_router.engine.router import Engine
from bandit_router.http.app import create_app

ROOT = Path(__file__).resolve().parent.parent
CONFIG = load(ROOT / "config.toml")
anything = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                     st.sampled_from([0.0, -1.0, 1e308, -1e308, math.nan, math.inf]))
facts = st.lists(st.tuples(st.sampled_from(["quality", "latency_ms", "input_tokens",
                                             "output_tokens", "success"]), anything),
                 max_size=6).map(tuple)


@given(history=st.lists(facts, max_size=15), gaps=st.lists(st.floats(0, 1e9), max_size=15),
       half_life=st.sampled_from([0.0, 1.0, 3600.0]), cap=st.sampled_from([0.0, 5.0]),
       window=st.sampled_from([0.0, 2.0, 50.0]))
@settings(max_examples=300, deadline=None)
def test_no_feedback_can_make_evidence_unsound(history, gaps, half_life, cap, window):
    ev, now = Evidence(), 0.0
    for i, fs in enumerate(history):
        now += gaps[i] if i < len(gaps) else 1.0
        ev = observe(ev, fs, now, half_life, cap, window)
        assert posterior.sound(ev), ev


evidence = st.builds(Evidence, **{f.name: anything for f in fields(Evidence)})


@given(garbage=st.lists(evidence, min_size=1, max_size=7))
@settings(max_examples=100, deadline=None)
def test_decisions_survive_any_absorbed_evidence(garbage: list[Evidence]):
    engine = Engine(CONFIG, RouteIds(b"k" * 32), np.random.default_rng(0), lambda: 1e9)
    engine.absorb({ArmKey("default", "chat:low", m.name): ev
                   for m, ev in zip(CONFIG.models, garbage, strict=False)})
    d = engine.decide(RouteRequest((Message("user", "hello"),), explain=True))
    assert d.model in engine.catalog.names
    assert math.isfinite(d.expected_cost_usd) and math.isfinite(d.expected_latency_ms)
    for arm in d.explanation:
        assert 0.0 <= arm.quality_mean <= 1.0
        lo, hi = arm.quality_interval
        assert 0.0 <= lo <= hi <= 1.0
    for report in engine.report():
        assert math.isfinite(report.quality_mean) and math.isfinite(report.evidence)


def test_repair_keeps_what_is_sound():
    ev = Evidence(q_pos=3.0, q_neg=math.nan, lat_n=-2.0, lat_sum=5.0, out_n=math.inf,
                  updated_at=10.0)
    fixed = posterior.repaired(ev)
    assert posterior.sound(fixed) and not posterior.sound(ev)
    assert (fixed.q_pos, fixed.q_neg, fixed.lat_n, fixed.lat_sum, fixed.out_n) == \
        (3.0, 0.0, 0.0, 5.0, 0.0)


@pytest.fixture
async def learned(app_config: Config, clock):
    """A database where every policy has learned something in a few buckets."""
    async with TestClient(TestServer(create_app(app_config, clock=clock))) as c:
        ids = []
        for policy in ("default", "cheap"):
            for prompt in ("hello there", "def f(x): return x  # python bug in this function"):
                for _ in range(3):
                    r = await c.post("/v1/route", json={"prompt": prompt, "policy": policy})
                    d = await r.json()
                    r = await c.post("/v1/feedback", json={"route_id": d["route_id"],
                                                           "quality": 0.8, "latency_ms": 900})
                    assert r.status == 200
                    ids.append(d)
    return ids


async def test_a_damaged_snapshot_row_is_repaired_at_start(learned, app_config, db_path, clock):
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE arms SET q_pos = ?, lat_n = -5 WHERE rowid = "
                    "(SELECT min(rowid) FROM arms)", [math.inf])
    with capture_logs() as events:
        async with TestClient(TestServer(create_app(app_config, clock=clock))) as c:
            for _ in range(20):
                assert (await c.post("/v1/route", json={"prompt": "hello there"})).status == 200
            arms = (await (await c.get("/v1/arms")).json())["arms"]
    assert any(e["event"] == "arm_repaired" for e in events)
    assert all(math.isfinite(a["quality_mean"]) and a["evidence"] >= 0 for a in arms)
    with sqlite3.connect(db_path) as db:  # and the row itself was written back sound
        rows = db.execute(f"SELECT {', '.join(FIELDS)} FROM arms").fetchall()
    assert all(math.isfinite(v) and v >= 0 for row in rows for v in row)


def _changed_config(app_config: Config) -> Config:
    """The bundled config, edited as an operator might between restarts."""
    doc = tomllib.loads((ROOT / "config.toml").read_text())
    doc["models"] = [m for m in doc["models"] if m["name"] != "gpt-5"]  # a model removed
    tasks = doc["buckets"]["tasks"]
    tasks["conversation"] = tasks.pop("chat")  # a bucket renamed
    doc["buckets"]["default_task"] = "conversation"
    del doc["policies"]["cheap"]  # a policy removed
    doc["policies"]["default"]["prior"]["quality_mean"] = 0.7  # a prior changed
    return replace(parse(doc), storage=app_config.storage)


async def test_config_changes_on_restart_orphan_arms_and_nothing_breaks(learned, app_config,
                                                                       db_path, clock):
    with sqlite3.connect(db_path) as db:
        before = db.execute("SELECT count(*) FROM arms").fetchone()[0]
    changed = _changed_config(app_config)
    with capture_logs() as events:
        async with TestClient(TestServer(create_app(changed, clock=clock))) as c:
            for prompt in ("hello there", "def f(x): return x  # python bug in this function"):
                r = await c.post("/v1/route", json={"prompt": prompt})
                assert r.status == 200 and (await r.json())["model"] != "gpt-5"
            assert (await c.get("/v1/arms")).status == 200
            # feedback for decisions made under the old config still lands (in the orphans)
            for d in learned[:4]:
                r = await c.post("/v1/feedback", json={"route_id": d["route_id"],
                                                       "output_tokens": 10})
                assert r.status == 200, await r.text()
            assert (await c.get("/healthz")).status == 200
    orphans = [e for e in events if e["event"] == "orphaned_arm"]
    assert orphans and {e["policy"] for e in orphans} >= {"cheap"}
    assert any(e["bucket"].startswith("chat:") for e in orphans)
    with sqlite3.connect(db_path) as db:  # kept, not deleted
        assert db.execute("SELECT count(*) FROM arms").fetchone()[0] >= before
    # and the original config still finds everything it learned
    async with TestClient(TestServer(create_app(app_config, clock=clock))) as c:
        arms = (await (await c.get("/v1/arms", params={"policy": "cheap"})).json())["arms"]
        assert sum(a["evidence"] for a in arms) > 0
