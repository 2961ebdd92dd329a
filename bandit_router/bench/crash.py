"""Crash safety: SIGKILL the real service mid-load, restart it, prove nothing acknowledged was lost.

One database file lives through every kill point. Before each kill, many concurrent clients
route and send feedback; the client side records every feedback answered 200 (route_id and
facts). The process is then killed with SIGKILL at the kill point (after N more
acknowledged feedbacks, at a moment in time, or in the middle of a graceful shutdown), and:

- `PRAGMA integrity_check` must say ok;
- every feedback ever acknowledged must be in `feedback_facts`, with the value sent;
- `bandit-router rebuild --check` must exit 0 (the posterior snapshot equals a replay of the
  feedback log), and the restarted server's `GET /v1/arms` must equal what the rebuilt
  evidence gives;
- the restarted server must serve: feedbacks whose answer was lost in the crash are retried
  with their idempotency key and must each be answered 200 (applied now, or replayed because
  they had been committed), an acknowledged one resent must be replayed, and the next round's
  load goes on.

Used by tests/bench/test_crash.py (a few kill points) and benchmarks/crash.py (many).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from bandit_router.bench.launch import Service, rebuild_check
from bandit_router.config import load
from bandit_router.core.route_id import RouteIds
from bandit_router.core.types import ArmKey
from bandit_router.engine.router import Engine
from bandit_router.http.wire import arm_json
from bandit_router.storage.rebuild import rebuild
from bandit_router.storage.store import connect

PROMPTS = (
    "What is the capital of France?",
    "Say hello to my team in one line.",
    "Summarize this paragraph: the meeting moved to Thursday because the room was taken.",
    "Write a haiku about autumn rain.",
    "Refactor this python function step by step, handle every edge case and optimize it; "
    "explain the trade-offs.\n```python\ndef parse(rows):\n    return [r for r in rows]\n```\n",
    "Prove that the square root of two is irrational, step by step.",
    "Translate 'good morning, how are you?' into German and Spanish.",
    "Debug this error: TypeError: 'NoneType' object is not subscriptable in my Flask app.",
)
# Fields of GET /v1/arms that depend on the decision log, not on the feedback log.
NOT_FROM_FEEDBACK = frozenset({"share", "recent_decisions", "learned"})
Facts = dict[str, Any]


@dataclass
class Ledger:
    """What the clients were told: the truth the database must hold after any crash."""

    facts: dict[str, Facts] = field(default_factory=dict)  # acknowledged, by route_id
    acked: int = 0  # feedback messages answered 200
    replayed: int = 0  # ... of which answered from the idempotency store
    routes: set[str] = field(default_factory=set)  # route_ids answered 200
    in_flight: dict[str, dict] = field(default_factory=dict)  # idempotency key -> body
    unexpected: list[str] = field(default_factory=list)  # any other answer
    recent_keyed: list[dict] = field(default_factory=list)  # last acknowledged keyed messages
    key_counter: int = 0

    def ack(self, body: dict, replayed: bool) -> None:
        facts = {k: v for k, v in body.items() if k not in ("route_id", "idempotency_key")}
        self.facts.setdefault(body["route_id"], {}).update(facts)
        self.acked += 1
        self.replayed += replayed
        if body.get("idempotency_key"):
            self.recent_keyed = [*self.recent_keyed[-7:], body]

    def new_key(self) -> str:
        self.key_counter += 1
        return f"k{self.key_counter}-{random.getrandbits(48):012x}"


def messages(route_id: str, rng: random.Random, ledger: Ledger) -> list[dict]:
    """The feedback a client sends for one decision: all at once, in two parts, or with an
    idempotency key and a retry of the same message."""
    quality = {"quality": round(rng.random(), 6)}
    cost = {"latency_ms": round(rng.lognormvariate(7.5, 0.5), 3),
            "input_tokens": rng.randint(5, 2000), "output_tokens": rng.randint(1, 800)}
    shape = rng.random()
    if shape < 0.45:
        out = [{"route_id": route_id, **quality, **cost}]
    elif shape < 0.7:
        out = [{"route_id": route_id, "success": rng.random() < 0.7},
               {"route_id": route_id, **cost}]
    else:
        body = {"route_id": route_id, **quality, **cost, "idempotency_key": ledger.new_key()}
        return [body, dict(body)]  # a client retrying after a timeout
    for body in out:
        if rng.random() < 0.5:
            body["idempotency_key"] = ledger.new_key()
    return out


_GONE = (aiohttp.ClientError, TimeoutError, OSError)


async def send_feedback(session: aiohttp.ClientSession, url: str, body: dict,
                        ledger: Ledger) -> int:
    key = body.get("idempotency_key")
    if key:
        ledger.in_flight[key] = body
    async with session.post(f"{url}/v1/feedback", json=body) as r:
        text = await r.text()
        status, replayed = r.status, r.headers.get("Idempotent-Replayed") == "true"
    if key:
        ledger.in_flight.pop(key, None)
    if status == 200:
        ledger.ack(body, replayed)
    else:
        ledger.unexpected.append(f"feedback {status}: {text[:200]}")
    return status


async def client(session: aiohttp.ClientSession, url: str, ledger: Ledger, rng: random.Random,
                 on_ack: Callable[[], None]) -> None:
    """Route, then send feedback, until the server goes away."""
    try:
        while True:
            async with session.post(f"{url}/v1/route",
                                    json={"prompt": rng.choice(PROMPTS)}) as r:
                if r.status != 200:
                    ledger.unexpected.append(f"route {r.status}: {(await r.text())[:200]}")
                    continue
                route_id = (await r.json())["route_id"]
            ledger.routes.add(route_id)
            for body in messages(route_id, rng, ledger):
                if await send_feedback(session, url, body, ledger) == 200:
                    on_ack()
    except _GONE:
        return


@dataclass(frozen=True)
class KillPoint:
    kind: str  # "acks": after `value` more acknowledged feedbacks; "time": `value` s into the
    #            load; "term": SIGTERM at `value` s, then SIGKILL 20 ms later (mid-shutdown)
    value: float

    def __str__(self) -> str:
        return {"acks": f"after {self.value:g} acks", "time": f"at {self.value:.2f} s",
                "term": f"mid-shutdown at {self.value:.2f} s"}[self.kind]


def check_database(db: Path, ledger: Ledger) -> dict:
    """Integrity, and every acknowledged fact present with the value sent."""
    conn = sqlite3.connect(db)
    try:
        integrity = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        stored: dict[str, dict[str, float]] = {}
        for route_id, fact, value in conn.execute(
                "SELECT route_id, fact, value FROM feedback_facts WHERE derived = 0"):
            stored.setdefault(route_id, {})[fact] = value
        feedback_rows = conn.execute("SELECT count(*) FROM feedback").fetchone()[0]
    finally:
        conn.close()
    missing = [(route_id, fact, value, stored.get(route_id, {}).get(fact))
               for route_id, facts in ledger.facts.items() for fact, value in facts.items()
               if stored.get(route_id, {}).get(fact) != value]
    return {"integrity": integrity, "missing": missing, "feedback_rows": feedback_rows,
            "acknowledged_facts": sum(len(f) for f in ledger.facts.values())}


def rebuilt(config: Path, db: Path) -> tuple[dict[ArmKey, Any], list[ArmKey]]:
    """The evidence a replay of the feedback log gives, and the arms whose snapshot differs."""
    database = connect(str(db))
    try:
        result = rebuild(database, load(config), write=False)
    finally:
        database.conn.close()
    return result.rebuilt, result.differing


def expected_arms(config: Path, evidence: dict[ArmKey, Any], at: float) -> list[dict]:
    """GET /v1/arms as a server holding exactly `evidence` would answer it at time `at`."""
    engine = Engine(load(config), RouteIds(b"\0" * 32), np.random.default_rng(0), lambda: at)
    engine.absorb(evidence)
    return [arm_json(r) for r in engine.report()]


def same_arms(served: list[dict], expected: list[dict]) -> list[str]:
    """Differences between two /v1/arms listings (decision-log fields ignored)."""
    def index(rows: list[dict]) -> dict[tuple, dict]:
        return {(r["tenant"], r["policy"], r["bucket"], r["model"]): r for r in rows}

    a, b = index(served), index(expected)
    tenants = {k[0] for k in a}
    b = {k: v for k, v in b.items() if k[0] in tenants or not tenants}
    problems = [f"only served: {k}" for k in a.keys() - b.keys()]
    problems += [f"only rebuilt: {k}" for k in b.keys() - a.keys()]
    for k in a.keys() & b.keys():
        for name, value in a[k].items():
            if name not in NOT_FROM_FEEDBACK and not _close(value, b[k][name]):
                problems.append(f"{k} {name}: served {value!r}, rebuilt {b[k][name]!r}")
    return problems


def _close(x: Any, y: Any) -> bool:
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_close(i, j) for i, j in zip(x, y, strict=True))
    if isinstance(x, float) or isinstance(y, float):
        return x is not None and y is not None and math.isclose(x, y, rel_tol=1e-6,
                                                                abs_tol=1e-9)
    return x == y


async def load_until_killed(service: Service, ledger: Ledger, point: KillPoint,
                            rng: random.Random, concurrency: int) -> dict:
    """Drive the running service and kill it at `point`; returns what happened."""
    target = ledger.acked + int(point.value)
    acked_before = ledger.acked

    def on_ack() -> None:
        if point.kind == "acks" and ledger.acked >= target:
            service.kill()  # right now, with the other clients' requests in flight

    timeout = aiohttp.ClientTimeout(total=60)
    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=timeout,
                                     connector=aiohttp.TCPConnector(limit=0)) as session:
        clients = [asyncio.create_task(client(session, service.url, ledger,
                                              random.Random(rng.getrandbits(64)), on_ack))
                   for _ in range(concurrency)]
        if point.kind in ("time", "term"):
            await asyncio.sleep(point.value)
            if point.kind == "term":
                service.term()
                await asyncio.sleep(0.02)
            service.kill()
        done, _ = await asyncio.wait(clients, timeout=120)
        for task in clients:
            task.cancel()
        for task in clients:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if len(done) < len(clients):
            service.kill()
            ledger.unexpected.append("clients did not stop after the kill")
    code = service.wait()
    return {"exit_code": code, "load_s": round(time.monotonic() - started, 3),
            "acked_this_round": ledger.acked - acked_before,
            "in_flight_at_kill": len(ledger.in_flight)}


async def after_restart(service: Service, config: Path, ledger: Ledger,
                        evidence: dict[ArmKey, Any]) -> dict:
    """On the restarted service: /v1/arms equals the rebuild; lost answers are retried."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        async with session.get(f"{service.url}/v1/arms") as r:
            served = (await r.json())["arms"]
        problems = same_arms(served, expected_arms(config, evidence, time.time()))
        retried = dict(ledger.in_flight)
        ledger.in_flight.clear()
        retry_status = [await send_feedback(session, service.url, body, ledger)
                        for body in retried.values()]
        replay_ok = None
        if ledger.recent_keyed:  # acknowledged just before the kill: still answered the same
            keyed = ledger.recent_keyed[-1]
            async with session.post(f"{service.url}/v1/feedback", json=keyed) as r:
                replay_ok = r.status == 200 and r.headers.get("Idempotent-Replayed") == "true"
    return {"arms_problems": problems[:10], "arms_equal": not problems,
            "arms_compared": len(served), "retried": len(retried),
            "retried_ok": sum(s == 200 for s in retry_status), "replay_after_restart": replay_ok}


async def run(config: Path, db: Path, points: list[KillPoint], concurrency: int = 32,
              seed: int = 0, progress: Callable[[str], None] = lambda m: None) -> dict:
    """Every kill point in turn on one database; the summary of what survived."""
    rng = random.Random(seed)
    ledger = Ledger()
    service = Service(config, db)
    await service.start()
    rounds = []
    started = time.monotonic()
    try:
        for i, point in enumerate(points, 1):
            row: dict[str, Any] = {"kill_point": str(point), "kind": point.kind,
                                   "value": point.value}
            row.update(await load_until_killed(service, ledger, point, rng, concurrency))
            row.update(check_database(db, ledger))
            check = rebuild_check(config, db)
            evidence, differing = rebuilt(config, db)
            row.update(rebuild_check_exit=check.returncode,
                       rebuild_differing=[str(k) for k in differing][:10])
            await service.start()
            row.update(await after_restart(service, config, ledger, evidence))
            row["missing_after_retries"] = len(check_database(db, ledger)["missing"])
            row["survived"] = survived(row)
            rounds.append(row)
            progress(f"kill point {i}/{len(points)} ({point}): {row['acked_this_round']} acked, "
                     f"{row['in_flight_at_kill']} in flight, missing {len(row['missing'])}, "
                     f"integrity {row['integrity'][0]}, rebuild --check "
                     f"{row['rebuild_check_exit']}, arms equal {row['arms_equal']}")
        final = await _serves(service, ledger, rng)
        code = service.stop()
    finally:
        service.kill()
    last = check_database(db, ledger)
    return {
        "kill_points": rounds, "survived": sum(r["survived"] for r in rounds),
        "feedback_acknowledged": ledger.acked, "replayed": ledger.replayed,
        "routes": len(ledger.routes), "feedback_lost": len(last["missing"]),
        "integrity": last["integrity"], "unexpected": ledger.unexpected[:20],
        "unexpected_count": len(ledger.unexpected), "serves_after_last_restart": final,
        "final_exit_code": code, "final_rebuild_check_exit": rebuild_check(config, db).returncode,
        "concurrency": concurrency, "seed": seed,
        "seconds": round(time.monotonic() - started, 1),
    }


def survived(row: dict) -> bool:
    return (row["integrity"] == ["ok"] and not row["missing"] and row["rebuild_check_exit"] == 0
            and not row["rebuild_differing"] and row["arms_equal"]
            and row["retried_ok"] == row["retried"] and row["missing_after_retries"] == 0
            and row["replay_after_restart"] is not False)


async def _serves(service: Service, ledger: Ledger, rng: random.Random) -> bool:
    """A few routes and feedbacks on the last restarted server, all answered 200."""
    ok = True
    async with aiohttp.ClientSession() as session:
        for _ in range(5):
            async with session.post(f"{service.url}/v1/route",
                                    json={"prompt": rng.choice(PROMPTS)}) as r:
                ok &= r.status == 200
                route_id = (await r.json())["route_id"]
            body = {"route_id": route_id, "quality": 0.5, "latency_ms": 900.0}
            ok &= await send_feedback(session, service.url, body, ledger) == 200
    return ok


def default_points(n: int, seed: int) -> list[KillPoint]:
    """`n` kill points cycling through the kinds, with random amounts."""
    rng = random.Random(seed)
    points = []
    for i in range(n):
        kind = ("acks", "time", "acks", "term")[i % 4]
        if kind == "acks":
            points.append(KillPoint(kind, rng.choice((1, 2, 10, 50, 200, 500, 1000))))
        else:
            points.append(KillPoint(kind, round(rng.uniform(0.05, 1.5), 3)))
    return points
