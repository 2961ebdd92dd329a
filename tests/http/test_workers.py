"""`bandit-router serve --workers N`: N processes on one port, one SQLite file."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bandit_router.bench.launch import command, free_port, rebuild_check, wait_healthy
from tests.stores import count_rows

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.fixture
def workers(tmp_path: Path):
    """`serve --workers 2` as a real process tree; yields (process, url, db)."""
    config = tmp_path / "config.toml"
    config.write_text((ROOT / "config.toml").read_text()
                      .replace("half_life_hours = 168", "half_life_hours = 0"))
    db, port = tmp_path / "router.db", free_port()
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen([*command(), "serve", "--workers", "2", "--config", str(config),
                                 "--db", str(db), "--port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT)
    yield proc, f"http://127.0.0.1:{port}", db, config
    if proc.poll() is None:  # a test failed midway: its workers too, or they are orphaned
        for child in _children(proc.pid):
            os.kill(child, signal.SIGKILL)
        proc.kill()
        proc.wait()


async def _healthy(proc: subprocess.Popen, url: str, db: Path) -> None:
    try:
        await wait_healthy(url, proc, db.parent / "serve.log", timeout_s=15)
    except RuntimeError as exc:
        pytest.fail(f"workers did not become healthy: {exc}")


async def _route_and_feedback(session: aiohttp.ClientSession, url: str, n: int) -> list[str]:
    acked = []
    for i in range(n):
        # a new connection per request, so the kernel spreads them over the workers
        async with session.post(f"{url}/v1/route", json={"prompt": f"question {i}"},
                                headers={"Connection": "close"}) as r:
            assert r.status == 200, await r.text()
            route_id = (await r.json())["route_id"]
        async with session.post(f"{url}/v1/feedback", headers={"Connection": "close"},
                                json={"route_id": route_id, "quality": (i % 10) / 10}) as r:
            assert r.status == 200, await r.text()
            acked.append(route_id)
    return acked


async def test_two_workers_share_the_port_and_the_store(workers):
    proc, url, db, config = workers
    async with aiohttp.ClientSession() as s:
        await _healthy(proc, url, db)
        assert len(_children(proc.pid)) == 2
        acked = await _route_and_feedback(s, url, 300)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0  # every worker flushed and exited cleanly
    assert count_rows(str(db), "SELECT count(*) FROM feedback") == len(acked) == 300
    assert count_rows(str(db), "SELECT count(DISTINCT route_id) FROM feedback") == 300
    check = rebuild_check(config, db)
    assert check.returncode == 0, check.stdout + check.stderr


async def _scrape(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with session.get(f"{url}/metrics", headers={"Connection": "close"}) as r:
        assert r.status == 200
        text = await r.text()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


async def test_any_worker_answers_metrics_with_every_workers_counts(workers):
    proc, url, db, _ = workers
    async with aiohttp.ClientSession() as s:
        await _healthy(proc, url, db)
        acked = await _route_and_feedback(s, url, 120)
        scrapes = [await _scrape(s, url) for _ in range(8)]
    for m in scrapes:  # each scrape may be answered by either worker: all say the same
        assert m["bandit_router_decisions_total"] == len(acked) == 120
        assert m["bandit_router_feedback_total"] == 120
        assert m["bandit_router_decision_seconds_count"] == 120
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0


async def test_a_worker_that_dies_is_replaced(workers):
    proc, url, db, _ = workers
    async with aiohttp.ClientSession() as s:
        await _healthy(proc, url, db)
        first = _children(proc.pid)
        os.kill(first[0], signal.SIGKILL)
        for _ in range(200):
            now = _children(proc.pid)
            if len(now) == 2 and first[0] not in now:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"the dead worker was not replaced: {first} -> {_children(proc.pid)}")
        await _healthy(proc, url, db)
        acked = await _route_and_feedback(s, url, 50)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert count_rows(str(db), "SELECT count(*) FROM feedback") == len(acked)


def test_workers_must_be_positive(tmp_path: Path):
    done = subprocess.run([*command(), "serve", "--workers", "0", "--db",
                           str(tmp_path / "x.db")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--workers" in done.stderr
