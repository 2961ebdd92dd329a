"""Crash safety: the real `bandit-router serve` killed with SIGKILL mid-load, then restarted.

The harness (bandit_router/bench/crash.py; benchmarks/crash.py runs it at many more kill
points) records on the client side every feedback answered 200. After each kill the
database must pass `PRAGMA integrity_check`, hold every acknowledged fact with the value
sent, agree with a rebuild from its feedback log (`rebuild --check` and GET /v1/arms), and
the restarted server must serve, answering lost-in-the-crash retries by idempotency key.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from bandit_router.bench.crash import (
    KillPoint,
    Ledger,
    check_database,
    client,
    run,
)
from bandit_router.bench.launch import Service, rebuild_check

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config.toml"  # the bundled config, decay included

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals")

KILL_POINTS = [
    KillPoint("acks", 1),  # the first acknowledgement, everything else in flight
    KillPoint("acks", 40),
    KillPoint("acks", 400),
    KillPoint("time", 0.15),  # moments in the load, whatever is in flight
    KillPoint("time", 0.9),
    KillPoint("term", 0.4),  # SIGKILL 20 ms into a graceful shutdown
]


async def test_sigkill_at_six_points_loses_no_acknowledged_feedback(tmp_path: Path):
    summary = await run(CONFIG, tmp_path / "router.db", KILL_POINTS, concurrency=32, seed=5)
    rounds = summary["kill_points"]
    assert len(rounds) == len(KILL_POINTS)
    for row in rounds:
        where = row["kill_point"]
        assert row["exit_code"] == -9, f"{where}: the process was not killed by SIGKILL"
        assert row["acked_this_round"] >= (row["value"] if row["kind"] == "acks" else 1), where
        assert row["integrity"] == ["ok"], where
        assert row["missing"] == [], f"{where}: acknowledged feedback lost"
        assert row["rebuild_check_exit"] == 0 and row["rebuild_differing"] == [], where
        assert row["arms_equal"], f"{where}: {row['arms_problems']}"
        assert row["arms_compared"] > 0, where
        # answers lost in the crash: the retry (same idempotency key) is applied or replayed
        assert row["retried_ok"] == row["retried"], where
        assert row["replay_after_restart"] is True, where
        assert row["missing_after_retries"] == 0, where
        assert row["survived"], where
    # the kill-at-N points really killed with requests in flight, at least once
    assert any(r["in_flight_at_kill"] > 0 for r in rounds)
    assert summary["survived"] == len(KILL_POINTS)
    assert summary["feedback_lost"] == 0
    assert summary["feedback_acknowledged"] > 1000
    assert summary["unexpected"] == []  # no 4xx/5xx anywhere, before or after any crash
    assert summary["serves_after_last_restart"] is True
    assert summary["final_exit_code"] == 0
    assert summary["final_rebuild_check_exit"] == 0


async def test_sigterm_under_load_flushes_everything_pending_and_exits_0(tmp_path: Path):
    db = tmp_path / "router.db"
    service = Service(CONFIG, db)
    await service.start()
    ledger = Ledger()
    rng = random.Random(11)
    pending_seen = 0
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            clients = [asyncio.create_task(client(session, service.url, ledger,
                                                  random.Random(rng.getrandbits(64)),
                                                  lambda: None)) for _ in range(24)]
            while ledger.acked < 300:
                await asyncio.sleep(0.01)
                assert not all(t.done() for t in clients), ledger.unexpected[:3]
            for _ in range(50):  # until the server reports decisions still in memory
                async with session.get(f"{service.url}/healthz") as r:
                    health = await r.json()
                pending_seen = health["decisions_buffered"] + health["write_queue"]
                if pending_seen:
                    break
                await asyncio.sleep(0.01)
            service.term()  # with the clients still sending
            done, _ = await asyncio.wait(clients, timeout=60)
            assert len(done) == len(clients), "clients hung after SIGTERM"
        code = service.wait()
    finally:
        service.kill()
    assert code == 0, service.log.read_text()[-2000:]
    assert pending_seen > 0, "nothing was pending at SIGTERM: the test proved nothing"
    assert ledger.unexpected == []
    check = check_database(db, ledger)
    assert check["integrity"] == ["ok"]
    assert check["missing"] == []
    # every decision answered before the shutdown was logged, the buffered ones included
    conn = sqlite3.connect(db)
    try:
        logged = {row[0] for row in conn.execute("SELECT route_id FROM decisions")}
    finally:
        conn.close()
    assert ledger.routes and ledger.routes <= logged, len(ledger.routes - logged)
    result = rebuild_check(CONFIG, db)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"event":"stopped"' in service.log.read_text()
