"""The feedback log is the truth: replaying it gives exactly the live posteriors."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bandit_router.core.posterior import FIELDS, Evidence
from bandit_router.core.types import ArmKey
from bandit_router.http.app import create_app
from bandit_router.http.appkeys import ENGINE
from bandit_router.storage.rebuild import rebuild
from bandit_router.storage.store import connect, read_arms
from tests.calls import route

CONFIG_TOML = Path(__file__).resolve().parents[2] / "config.toml"
FACTS = ("quality", "latency_ms", "input_tokens", "output_tokens", "success")


@contextlib.asynccontextmanager
async def serving(config, clock):
    async with TestClient(TestServer(create_app(config, clock=clock))) as client:
        yield client


@contextlib.contextmanager
def opened(db_path: str):
    db = connect(db_path)
    try:
        yield db
    finally:
        db.conn.close()




async def get_arms(client) -> list[dict]:
    resp = await client.get("/v1/arms")
    assert resp.status == 200
    return (await resp.json())["arms"]


async def drive(client, clock, rng: random.Random, steps: int) -> int:
    """A seeded mix of routes and partial, late, sometimes repeated feedback over HTTP.

    Returns how many feedback messages were applied."""
    prompts = ["hello", "Write a short story about a fox", "def f(x): return x  # python bug",
               "Summarize the main points", "Prove it step by step, rigorously, and justify it",
               "What is the value of the integral? Calculate it and solve for x"]
    pending: list[tuple[str, set[str]]] = []
    done: list[str] = []
    applied = 0
    for _ in range(steps):
        clock.advance(rng.expovariate(1 / 900))  # evidence decays between events
        roll = rng.random()
        if not pending or roll < 0.45:
            body: dict = {"prompt": rng.choice(prompts),
                          "policy": rng.choice(["default", "cheap"])}
            if rng.random() < 0.2:
                body["bucket"] = rng.choice(["math:high", "code:low", "write:high"])
            d = await route(client, **body)
            pending.append((d["route_id"], set(FACTS)))
        elif roll < 0.95:
            i = rng.randrange(len(pending))
            rid, left = pending[i]
            body = {"route_id": rid}
            for fact in rng.sample(sorted(left), rng.randint(1, min(2, len(left)))):
                body[fact] = {"quality": rng.choice([0.0, 1.0, round(rng.random(), 4)]),
                              "success": rng.random() < 0.7,
                              "latency_ms": rng.lognormvariate(7.5, 0.8),
                              "input_tokens": rng.randint(0, 8000),
                              "output_tokens": rng.randint(0, 4000)}[fact]
            resp = await client.post("/v1/feedback", json=body)
            answer = await resp.json()
            assert resp.status == 200, answer
            applied += 1
            left -= set(answer["applied"])
            if left:
                pending[i] = (rid, left)
            else:
                done.append(pending.pop(i)[0])
        elif done:  # a repeat of a fact already counted changes nothing
            resp = await client.post("/v1/feedback",
                                     json={"route_id": rng.choice(done), "quality": 0.5})
            assert resp.status == 409
    return applied


def engine_state(app) -> dict[ArmKey, Evidence]:
    """The evidence the running engine decides with, read out of its tables."""
    engine = app[ENGINE]
    out = {}
    for (tenant, policy, bucket), table in engine._tables.items():
        for i, model in enumerate(engine.catalog.names):
            values = dict(zip(FIELDS, table.evidence[:, i].tolist(), strict=True))
            ev = Evidence(**values, updated_at=float(table.updated_at[i]))
            if ev != Evidence():
                out[ArmKey(policy, bucket, model, tenant)] = ev
    return out


async def test_rebuild_equals_live_state_after_a_random_mix(app_config, clock, db_path):
    async with serving(app_config, clock) as c:
        applied = await drive(c, clock, random.Random(20261127), 400)
        with opened(db_path) as db:
            live = read_arms(db)
            result = rebuild(db, app_config, write=False)
        assert result.events == applied > 100
        assert len(live) > 10
        assert result.differing == []
        assert result.rebuilt == live  # exactly: same floats, field by field
        assert engine_state(c.app) == live  # and what the engine holds in memory
        # counts grow by whole numbers, so fractional ones show that decay was exercised
        assert any(ev.lat_n != round(ev.lat_n) for ev in live.values())
        before = await get_arms(c)
    with opened(db_path) as db:  # writing the rebuild changes nothing the service shows
        assert rebuild(db, app_config, write=True).differing == []
        assert read_arms(db) == live
    async with serving(app_config, clock) as c:
        assert await get_arms(c) == before
        assert engine_state(c.app) == live


@pytest.mark.parametrize("corruption", ["nudge", "delete", "invent"])
async def test_rebuild_finds_and_repairs_a_corrupted_snapshot(app_config, clock, db_path,
                                                              corruption):
    async with serving(app_config, clock) as c:
        await drive(c, clock, random.Random(5), 150)
        before = await get_arms(c)
    with opened(db_path) as db:
        live = read_arms(db)
    victim = sorted(live, key=lambda k: (k.policy, k.bucket, k.model))[len(live) // 2]
    where = "policy = ? AND bucket = ? AND model = ?"
    conn = sqlite3.connect(db_path)
    with conn:
        if corruption == "nudge":
            conn.execute(f"UPDATE arms SET q_pos = q_pos + 0.25 WHERE {where}",
                         (victim.policy, victim.bucket, victim.model))
        elif corruption == "delete":
            conn.execute(f"DELETE FROM arms WHERE {where}",
                         (victim.policy, victim.bucket, victim.model))
        else:
            victim = ArmKey("default", "classify:high", "gpt-5")
            assert victim not in live
            columns = ", ".join(["tenant", "policy", "bucket", "model",
                                 *(f.name for f in fields(Evidence))])
            marks = ", ".join("?" * (4 + len(fields(Evidence))))
            conn.execute(f"INSERT INTO arms ({columns}) VALUES ({marks})",
                         (victim.tenant, victim.policy, victim.bucket, victim.model,
                          *([1.0] * len(FIELDS)), clock(), 0.0, 0.0))
    conn.close()

    with opened(db_path) as db:
        found = rebuild(db, app_config, write=False)
        assert found.differing == [victim]
        assert read_arms(db) != live  # a check does not write
        repaired = rebuild(db, app_config, write=True)
        assert repaired.differing == [victim]
        assert read_arms(db) == live
        assert rebuild(db, app_config, write=False).differing == []
    async with serving(app_config, clock) as c:
        assert await get_arms(c) == before


def run_cli(db_path: str, cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bandit_router", "rebuild", *extra, "--db", db_path,
         "--config", str(CONFIG_TOML)],
        cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


async def test_rebuild_cli_check(app_config, clock, db_path, tmp_path):
    async with serving(app_config, clock) as c:
        applied = await drive(c, clock, random.Random(99), 80)
    ok = run_cli(db_path, tmp_path, "--check")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"replayed {applied} feedback messages" in ok.stdout
    assert "0 arms differed" in ok.stdout

    with opened(db_path) as db:
        live = read_arms(db)
    victim = sorted(live, key=lambda k: (k.policy, k.bucket, k.model))[0]
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("UPDATE arms SET lat_sum = lat_sum * 2 WHERE policy = ? AND bucket = ? "
                     "AND model = ?", (victim.policy, victim.bucket, victim.model))
    conn.close()

    bad = run_cli(db_path, tmp_path, "--check")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert (f"differs: {victim.tenant} / {victim.policy} / {victim.bucket} / {victim.model}"
            in bad.stdout)
    with opened(db_path) as db:
        assert read_arms(db) != live  # --check only looks

    fixed = run_cli(db_path, tmp_path)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "snapshot replaced" in fixed.stdout
    assert run_cli(db_path, tmp_path, "--check").returncode == 0
    with opened(db_path) as db:
        assert read_arms(db) == live
