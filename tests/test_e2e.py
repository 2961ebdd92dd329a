"""End to end: `bandit-router serve` as a real process, driven over HTTP in a closed loop.

The simulated world has a cheap, a mid and a strong model. The cheap one is adequate for
easy chat and clearly inadequate for hard code; the router must learn both, keep what it
learned across a restart, and agree with a rebuild from its feedback log.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import subprocess
from pathlib import Path

import aiohttp
import pytest

from bandit_router.bench.launch import Service, command
from tests.world import CHEAP, EASY, HARD, MID, STRONG, TYPICAL_LATENCY_MS, WORLD

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = 2000
WORKERS = 8


@pytest.fixture
def no_decay_config(tmp_path: Path) -> Path:
    """The bundled config with decay off, so "unchanged after restart" can mean exactly."""
    text = (ROOT / "config.toml").read_text()
    assert "half_life_hours = 168" in text
    path = tmp_path / "config.toml"
    path.write_text(text.replace("half_life_hours = 168", "half_life_hours = 0"))
    return path


@pytest.fixture
async def server(no_decay_config: Path, tmp_path: Path):
    srv = Service(no_decay_config, tmp_path / "router.db")
    await srv.start()
    yield srv
    if srv.running:
        srv.kill()
        srv.wait()


async def _closed_loop(session: aiohttp.ClientSession, url: str, rng: random.Random,
                       log: list[tuple[int, str, str, str]], counter: list[int]) -> None:
    for _ in range(REQUESTS // WORKERS):
        kind = rng.choice(["easy", "hard"])
        prompt = rng.choice(EASY) if kind == "easy" else HARD
        body = {"prompt": prompt, "constraints": {"models": [CHEAP, MID, STRONG]}}
        async with session.post(f"{url}/v1/route", json=body) as r:
            assert r.status == 200, await r.text()
            decision = await r.json()
        counter[0] += 1
        log.append((counter[0], kind, decision["bucket"], decision["model"]))
        model = decision["model"]
        quality = min(1.0, max(0.0, rng.gauss(WORLD[kind][model], 0.05)))
        feedback = {"route_id": decision["route_id"], "quality": quality,
                    "latency_ms": TYPICAL_LATENCY_MS[model] * rng.lognormvariate(0, 0.2),
                    "input_tokens": len(prompt) // 4, "output_tokens": rng.randint(50, 400)}
        async with session.post(f"{url}/v1/feedback", json=feedback) as r:
            assert r.status == 200, await r.text()


def _share(log, kind: str, model: str) -> float:
    tail = [row for row in log if row[0] > REQUESTS * 3 // 4 and row[1] == kind]
    return sum(row[3] == model for row in tail) / len(tail)


async def test_learns_cheap_for_easy_strong_for_hard_and_survives_restart(server: Service):
    log: list[tuple[int, str, str, str]] = []
    counter = [0]
    async with aiohttp.ClientSession() as s:
        await asyncio.gather(*(_closed_loop(s, server.url, random.Random(w), log, counter)
                               for w in range(WORKERS)))
        async with s.get(f"{server.url}/v1/arms") as r:
            before = await r.json()

    assert len(log) == REQUESTS
    assert {row[2] for row in log if row[1] == "easy"} == {"chat:low"}
    assert {row[2] for row in log if row[1] == "hard"} == {"code:high"}
    assert _share(log, "easy", CHEAP) > 0.5, "the cheap model should win the easy bucket"
    assert _share(log, "hard", STRONG) > 0.5, "the strong model should win the hard bucket"

    assert server.stop() == 0, "SIGTERM should flush and exit cleanly"
    with sqlite3.connect(server.db) as db:  # every acknowledged feedback, once
        assert db.execute("SELECT count(*) FROM feedback").fetchone()[0] == REQUESTS
        assert db.execute("SELECT count(*) FROM feedback_facts").fetchone()[0] == 4 * REQUESTS
        assert db.execute("SELECT count(*) FROM decisions").fetchone()[0] == REQUESTS
    check = subprocess.run([*command(), "rebuild", "--check", "--config", str(server.config),
                            "--db", str(server.db)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    await server.start()
    async with aiohttp.ClientSession() as s, s.get(f"{server.url}/v1/arms") as r:
        after = await r.json()
    assert after == before


@pytest.mark.skipif(os.name != "posix", reason="signals")
async def test_bad_config_fails_fast_naming_the_key(tmp_path: Path):
    bad = tmp_path / "config.toml"
    bad.write_text((ROOT / "config.toml").read_text().replace("[server]", "[server]\nprot = 1"))
    proc = subprocess.run([*command(), "serve", "--config", str(bad), "--db",
                           str(tmp_path / "x.db")], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "server.prot" in proc.stderr and "unknown key" in proc.stderr
