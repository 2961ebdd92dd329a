"""Soak: the real service at a steady request rate for minutes; memory, errors, lost feedback.

An open-loop client (requests start on a fixed schedule, whatever the answers' latency)
sends a mix of POST /v1/route, POST /v1/feedback (fresh facts, facts split over two
messages, idempotency-key retries that must be replayed, and resent facts without a key
that must be refused 409 `duplicate_fact`), GET /v1/arms and GET /healthz, over loopback.
The server's resident memory is sampled throughout. At the end the server is stopped with
SIGTERM and the database is checked: every acknowledged feedback is there (count and per
route_id), `rebuild --check` exits 0, every answered decision was logged.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import sqlite3
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from bandit_router.bench.crash import PROMPTS, Ledger, check_database
from bandit_router.bench.launch import Service, rebuild_check

MIX = {"route": 0.40, "feedback": 0.35, "arms": 0.15, "healthz": 0.10}
FEEDBACK_MIX = {"fresh": 0.60, "second_part": 0.15, "retry": 0.15, "duplicate": 0.10}
EXPECTED = {  # the answers each kind of request may get; anything else is an error
    "route": {200}, "arms": {200}, "healthz": {200},
    "fresh": {200}, "second_part": {200}, "retry": {200}, "duplicate": {409},
}


@dataclass(frozen=True)
class SoakSettings:
    duration_s: float = 180.0
    rate: float = 300.0  # requests per second, all kinds together
    sample_every_s: float = 2.0  # RSS sampling period
    warmup_fraction: float = 0.1  # memory before this share of the run is not judged
    max_in_flight: int = 512  # a request that would exceed this is counted as late
    seed: int = 0


class Soak:
    def __init__(self, service: Service, settings: SoakSettings) -> None:
        self.service, self.s = service, settings
        self.rng = random.Random(settings.seed)
        self.ledger = Ledger()
        self.awaiting_feedback: collections.deque[str] = collections.deque(maxlen=5000)
        self.awaiting_second: collections.deque[dict] = collections.deque(maxlen=5000)
        self.acked_keyed: collections.deque[dict] = collections.deque(maxlen=500)
        self.acked_plain: collections.deque[dict] = collections.deque(maxlen=500)
        self.status: dict[str, collections.Counter] = collections.defaultdict(
            collections.Counter)
        self.latency_ms: dict[str, list[float]] = collections.defaultdict(list)
        self.connection_errors: list[str] = []
        self.unexpected: list[str] = []
        self.replays_confirmed = 0
        self.in_flight = 0
        self.late = 0
        self.sent = 0
        self.rss: list[tuple[float, float]] = []  # (seconds since start, MB)

    # --- one request of each kind ----------------------------------------------------

    def _pick(self) -> tuple[str, dict | None]:
        kind = self.rng.choices(list(MIX), weights=list(MIX.values()))[0]
        if kind != "feedback":
            return kind, None
        sub = self.rng.choices(list(FEEDBACK_MIX), weights=list(FEEDBACK_MIX.values()))[0]
        if sub == "second_part" and self.awaiting_second:
            return sub, self.awaiting_second.popleft()
        if sub == "retry" and self.acked_keyed:
            return sub, dict(self.rng.choice(self.acked_keyed))
        if sub == "duplicate" and self.acked_plain:
            body = dict(self.rng.choice(self.acked_plain))
            body.pop("idempotency_key", None)
            return sub, body
        if not self.awaiting_feedback:
            return "route", None
        return "fresh", self._fresh(self.awaiting_feedback.popleft())

    def _fresh(self, route_id: str) -> dict:
        body: dict[str, Any] = {"route_id": route_id,
                                "latency_ms": round(self.rng.lognormvariate(7.5, 0.5), 3),
                                "input_tokens": self.rng.randint(5, 2000)}
        if self.rng.random() < 0.3:
            body["success"] = self.rng.random() < 0.8
        else:
            body["quality"] = round(self.rng.random(), 6)
        if self.rng.random() < 0.5:
            body["idempotency_key"] = self.ledger.new_key()
        if self.rng.random() < 0.3:  # the output tokens come later, in a second message
            self.awaiting_second.append({"route_id": route_id,
                                         "output_tokens": self.rng.randint(1, 800)})
        else:
            body["output_tokens"] = self.rng.randint(1, 800)
        return body

    async def _one(self, session: aiohttp.ClientSession, kind: str, body: dict | None) -> None:
        url = self.service.url
        started = time.perf_counter()
        try:
            if kind == "route":
                async with session.post(f"{url}/v1/route",
                                        json={"prompt": self.rng.choice(PROMPTS)}) as r:
                    status, payload = r.status, await r.read()
                if status == 200:
                    route_id = _json(payload)["route_id"]
                    self.ledger.routes.add(route_id)
                    self.awaiting_feedback.append(route_id)
            elif kind in ("arms", "healthz"):
                path = "/v1/arms" if kind == "arms" else "/healthz"
                async with session.get(f"{url}{path}") as r:
                    status, payload = r.status, await r.read()
            else:
                async with session.post(f"{url}/v1/feedback", json=body) as r:
                    status, payload = r.status, await r.read()
                    replayed = r.headers.get("Idempotent-Replayed") == "true"
                if status == 200:
                    self.ledger.ack(body, replayed)
                    if kind == "retry":
                        if replayed:
                            self.replays_confirmed += 1
                        else:
                            self.unexpected.append("retry: 200 without Idempotent-Replayed")
                    else:
                        (self.acked_keyed if body.get("idempotency_key") else
                         self.acked_plain).append(body)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.connection_errors.append(f"{kind}: {type(exc).__name__}: {exc}")
            return
        finally:
            self.in_flight -= 1
        self.latency_ms[kind].append((time.perf_counter() - started) * 1000)
        self.status[kind][status] += 1
        if status not in EXPECTED[kind]:
            self.unexpected.append(f"{kind} {status}: {payload[:200]!r}")

    # --- the run ---------------------------------------------------------------------

    async def _sample(self, t0: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.rss.append((round(time.monotonic() - t0, 2), round(self.service.rss_mb(), 2)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.s.sample_every_s)

    async def drive(self, progress: Callable[[str], None]) -> float:
        total = int(self.s.duration_s * self.s.rate)
        timeout = aiohttp.ClientTimeout(total=30)
        tasks: set[asyncio.Task] = set()
        stop = asyncio.Event()
        async with aiohttp.ClientSession(timeout=timeout,
                                         connector=aiohttp.TCPConnector(limit=0)) as session:
            t0 = time.monotonic()
            sampler = asyncio.create_task(self._sample(t0, stop))
            next_report = 10.0
            for i in range(total):
                delay = t0 + i / self.s.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self.in_flight >= self.s.max_in_flight:
                    self.late += 1
                    continue
                kind, body = self._pick()
                self.in_flight += 1
                self.sent += 1
                task = asyncio.create_task(self._one(session, kind, body))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                elapsed = time.monotonic() - t0
                if elapsed >= next_report:
                    progress(f"soak: {elapsed:.0f}/{self.s.duration_s:.0f} s, {self.sent:,} "
                             f"requests, RSS {self.rss[-1][1]:.1f} MB, in flight "
                             f"{self.in_flight}, errors {len(self.unexpected)} unexpected / "
                             f"{len(self.connection_errors)} connection")
                    next_report += 10.0
            if tasks:
                await asyncio.wait(tasks, timeout=60)
            elapsed = time.monotonic() - t0
            stop.set()
            await sampler
        return elapsed


def memory(rss: list[tuple[float, float]], warmup_s: float) -> dict:
    """Start (after warm-up), end and max RSS, and the least-squares slope after warm-up."""
    judged = [(t, m) for t, m in rss if t >= warmup_s] or rss
    t = np.array([p[0] for p in judged])
    m = np.array([p[1] for p in judged])
    slope = float(np.polyfit(t / 60.0, m, 1)[0]) if len(judged) >= 3 else 0.0
    span_min = float(t[-1] - t[0]) / 60.0 if len(judged) > 1 else 0.0
    start, end = float(m[0]), float(m[-1])
    growth = slope * span_min  # fitted growth over the judged span
    return {
        "first_mb": rss[0][1], "start_mb": start, "end_mb": end, "max_mb": max(p[1] for p in rss),
        "slope_mb_per_min": round(slope, 3), "fitted_growth_mb": round(growth, 2),
        "judged_from_s": round(float(t[0]), 1), "samples": len(rss),
        # flat: the fitted growth after warm-up stays within 3% of the start (at least 2 MB)
        "flat": bool(growth <= max(2.0, 0.03 * start)),
    }


def _json(payload: bytes) -> Any:
    import orjson

    return orjson.loads(payload)


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {}
    q = np.percentile(values, [50, 99])
    return {"p50_ms": round(float(q[0]), 2), "p99_ms": round(float(q[1]), 2),
            "max_ms": round(max(values), 2), "mean_ms": round(statistics.fmean(values), 2)}


def _database_counts(db: Path) -> dict:
    conn = sqlite3.connect(db)
    try:
        return {"feedback_rows": conn.execute("SELECT count(*) FROM feedback").fetchone()[0],
                "decisions": {r[0] for r in conn.execute("SELECT route_id FROM decisions")}}
    finally:
        conn.close()


async def run(config: Path, db: Path, settings: SoakSettings,
              progress: Callable[[str], None] = lambda m: None) -> dict:
    service = Service(config, db)
    await service.start()
    soak = Soak(service, settings)
    cpu_before = service.cpu_seconds()
    try:
        elapsed = await soak.drive(progress)
        cpu = service.cpu_seconds() - cpu_before
        exit_code = service.stop()
    finally:
        service.kill()
    check = check_database(db, soak.ledger)
    counts = _database_counts(db)
    rebuild = rebuild_check(config, db)
    fresh_messages = soak.ledger.acked - soak.ledger.replayed  # each one a row in `feedback`
    five_xx = sum(n for c in soak.status.values() for s, n in c.items() if s >= 500)
    mem = memory(soak.rss, settings.duration_s * settings.warmup_fraction)
    undecided = len(soak.ledger.routes - counts["decisions"])
    summary = {
        "settings": asdict(settings),
        "elapsed_s": round(elapsed, 1), "requests": soak.sent,
        "achieved_rate": round(soak.sent / elapsed, 1), "late": soak.late,
        "status": {k: dict(sorted(c.items())) for k, c in sorted(soak.status.items())},
        "latency": {k: _percentiles(v) for k, v in sorted(soak.latency_ms.items())},
        "five_xx": five_xx, "connection_errors": len(soak.connection_errors),
        "connection_error_samples": soak.connection_errors[:10],
        "unexpected": len(soak.unexpected), "unexpected_samples": soak.unexpected[:10],
        "feedback_acknowledged": soak.ledger.acked, "replays_confirmed": soak.replays_confirmed,
        "feedback_rows": counts["feedback_rows"], "feedback_rows_expected": fresh_messages,
        "routes_acknowledged": len(soak.ledger.routes),
        "route_ids_with_feedback": len(soak.ledger.facts),
        "feedback_missing": len(check["missing"]), "integrity": check["integrity"],
        "decisions_not_logged": undecided,
        "rebuild_check_exit": rebuild.returncode, "exit_code": exit_code,
        "server_cpu_s": round(cpu, 1), "memory": mem, "rss_samples": soak.rss,
    }
    summary["passed"] = passed(summary)
    return summary


def passed(s: dict) -> bool:
    return (s["five_xx"] == 0 and s["connection_errors"] == 0 and s["unexpected"] == 0
            and s["feedback_missing"] == 0 and s["feedback_rows"] == s["feedback_rows_expected"]
            and s["integrity"] == ["ok"] and s["rebuild_check_exit"] == 0
            and s["exit_code"] == 0 and s["decisions_not_logged"] == 0 and s["late"] == 0
            and s["memory"]["flat"])


def markdown(s: dict) -> str:
    m, st = s["memory"], s["settings"]
    lines = [
        "# Soak",
        "",
        f"{s['elapsed_s']:.0f} s at {st['rate']:g} req/s (achieved {s['achieved_rate']:g}), "
        f"{s['requests']:,} requests over loopback; **{'passed' if s['passed'] else 'FAILED'}**.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| 5xx answers | {s['five_xx']} |",
        f"| connection errors | {s['connection_errors']} |",
        f"| other unexpected answers | {s['unexpected']} |",
        f"| requests late (over {st['max_in_flight']} in flight) | {s['late']} |",
        f"| feedback acknowledged (replays confirmed) | {s['feedback_acknowledged']:,} "
        f"({s['replays_confirmed']:,}) |",
        f"| feedback rows in the database / expected | {s['feedback_rows']:,} / "
        f"{s['feedback_rows_expected']:,} |",
        f"| acknowledged feedback missing (per route_id and fact) | {s['feedback_missing']} |",
        f"| decisions answered but not logged | {s['decisions_not_logged']} |",
        f"| integrity check | {', '.join(s['integrity'])} |",
        f"| rebuild --check exit | {s['rebuild_check_exit']} |",
        f"| server exit code after SIGTERM | {s['exit_code']} |",
        f"| server RSS first / after warm-up / end / max | {m['first_mb']:.1f} / "
        f"{m['start_mb']:.1f} / {m['end_mb']:.1f} / {m['max_mb']:.1f} MB |",
        f"| RSS slope after warm-up ({m['judged_from_s']:g} s on, {m['samples']} samples) | "
        f"{m['slope_mb_per_min']:+.3f} MB/min (fitted growth {m['fitted_growth_mb']:+.2f} MB; "
        f"flat: {m['flat']}) |",
        f"| server CPU | {s['server_cpu_s']:.1f} s |",
        "",
        "| request | answers | p50 | p99 | max |",
        "|---|---|---|---|---|",
    ]
    for kind, counts in s["status"].items():
        lat = s["latency"].get(kind, {})
        answers = ", ".join(f"{code}: {n:,}" for code, n in counts.items())
        lines.append(f"| {kind} | {answers} | {lat.get('p50_ms', 0):.1f} ms | "
                     f"{lat.get('p99_ms', 0):.1f} ms | {lat.get('max_ms', 0):.1f} ms |")
    return "\n".join(lines) + "\n"
