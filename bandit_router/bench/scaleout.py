"""Scale-out benchmark: the router with 1 and 2 workers on SQLite, and on PostgreSQL; and
the staleness between replicas (how long until one replica's feedback shapes another's
decisions).

Throughput cells use the load benchmark's wrk driver and bodies (/v1/route and
/v1/feedback, fresh route_ids for every feedback). They are not pinned: two workers need
both cores, which wrk then shares, so on a 2-core machine the 2-worker rows show what the
machine allows, not what the design would give on more cores.

Staleness: two replica processes on one store. Feedback is sent to replica A; the clock
starts when A acknowledges it and stops when replica B's `GET /v1/arms` first shows the
arm's new evidence (polled every 2 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import orjson

from bandit_router.bench.launch import Process, free_port
from bandit_router.bench.traffic import drive, feedback_bodies, mint_route_ids, prompts, write_lines
from bandit_router.config import load as load_config

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin_sql(server: str, sql: str) -> None:
    """One statement on a PostgreSQL server (e.g. CREATE DATABASE), from its own loop."""
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(server, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@contextlib.contextmanager
def postgres_database(server: str) -> Iterator[str]:
    """A fresh database on `server` for one run, dropped afterwards."""
    name = f"bandit_router_bench_{uuid.uuid4().hex[:8]}"
    admin_sql(server, f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        admin_sql(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _serve(name: str, url: str, workers: int, settings, work: Path) -> Process:
    config_args = ["--config", settings.config] if settings.config else []
    port = free_port()
    return Process(name, [sys.executable, "-m", "bandit_router", "serve", *config_args,
                              "--db", url, "--workers", str(workers), "--port", str(port)],
                       port, work / f"{name}.log")


def _cell(store: str, url: str, workers: int, settings, work: Path, script: Path,
          connections: int, progress: Callable[[str], None]) -> dict:
    name = f"{store}-{workers}w"
    server = _serve(name, url, workers, settings, work)
    row: dict = {"store": store, "workers": workers}
    try:
        routes = write_lines(work / f"route-{name}.jsonl", [
            orjson.dumps({"prompt": p}) for p in prompts(settings.prompts, settings.seed)])
        row["route"] = drive(server, "/v1/route", routes, script, connections, settings)
        per_run = int(settings.duration_s * 15_000) + 1000
        ids = mint_route_ids(url, per_run, settings.config, settings.seed + workers)
        feedback = write_lines(work / f"feedback-{name}.jsonl",
                                     feedback_bodies(ids, workers))
        row["feedback"] = drive(server, "/v1/feedback", feedback, script, connections,
                                    settings)
    finally:
        row["exit_code"] = server.stop()
    progress(f"scale-out {name}: route {row['route']['throughput']:.0f} req/s p99 "
             f"{row['route']['p99_us'] / 1000:.2f} ms; feedback "
             f"{row['feedback']['throughput']:.0f} req/s p99 "
             f"{row['feedback']['p99_us'] / 1000:.2f} ms")
    return row


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=orjson.dumps(body),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def _evidence(base: str, bucket: str, model: str) -> float:
    with urllib.request.urlopen(f"{base}/v1/arms?bucket={bucket}", timeout=10) as r:
        arms = json.loads(r.read())["arms"]
    return next((a["evidence"] for a in arms if a["model"] == model), 0.0)


def staleness(store: str, url: str, settings, work: Path) -> dict:
    """Seconds from replica A's acknowledgement to replica B showing the feedback."""
    a = _serve(f"{store}-replica-a", url, 1, settings, work)
    b = _serve(f"{store}-replica-b", url, 1, settings, work)
    samples = []
    try:
        for i in range(settings.staleness_samples):
            decision = _post(f"{a.url}/v1/route", {"prompt": f"staleness probe {i}"})
            bucket, model = decision["bucket"], decision["model"]
            before = _evidence(b.url, bucket, model)
            _post(f"{a.url}/v1/feedback", {"route_id": decision["route_id"], "quality": 1.0})
            acked = time.perf_counter()
            while _evidence(b.url, bucket, model) == before:
                time.sleep(0.002)
                if time.perf_counter() - acked > 30:
                    raise RuntimeError("replica B never saw replica A's feedback")
            samples.append(time.perf_counter() - acked)
            time.sleep(float(np.random.default_rng(i).uniform(0, 0.25)))  # unaligned starts
    finally:
        a.stop()
        b.stop()
    ms = np.array(samples) * 1000
    return {"samples": len(samples), "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "max_ms": float(ms.max()),
            "sync_interval_ms": load_config(settings.config).storage.sync_interval_ms}


def run(settings, work: Path, script: Path, postgres: str | None = DEFAULT_POSTGRES,
        progress: Callable[[str], None] = print, connections: int = 32) -> dict:
    results: dict = {"connections": connections, "cells": [], "staleness": {}}
    for workers in (1, 2):
        url = str(work / f"scaleout-{workers}w.db")
        results["cells"].append(_cell("sqlite", url, workers, settings, work, script,
                                      connections, progress))
    results["staleness"]["sqlite"] = staleness("sqlite", str(work / "staleness.db"),
                                               settings, work)
    if postgres is None:
        results["postgres_skipped"] = "not asked for"
        return results
    try:
        admin_sql(postgres, "SELECT 1")
    except Exception as exc:  # no server: say so in the results, run the rest
        results["postgres_skipped"] = f"no PostgreSQL server at {postgres}: {exc}"
        progress(results["postgres_skipped"])
        return results
    for workers in (1, 2):
        with postgres_database(postgres) as url:
            results["cells"].append(_cell("postgresql", url, workers, settings, work, script,
                                          connections, progress))
    with postgres_database(postgres) as url:
        results["staleness"]["postgresql"] = staleness("postgresql", url, settings, work)
    for store, s in results["staleness"].items():
        progress(f"staleness {store}: p50 {s['p50_ms']:.0f} ms, p95 {s['p95_ms']:.0f} ms, "
                 f"max {s['max_ms']:.0f} ms (sync interval {s['sync_interval_ms']:g} ms)")
    return results


def markdown(results: dict) -> list[str]:
    lines = ["## Scale-out: workers and PostgreSQL", "",
             f"wrk at {results['connections']} keep-alive connections, unpinned (two workers "
             "need both cores, which wrk shares on this machine). Every feedback is a new "
             "fact committed before it is acknowledged.", "",
             "| store | workers | route req/s | route p99 ms | feedback req/s | "
             "feedback p99 ms |", "|---|---:|---:|---:|---:|---:|"]
    for c in results["cells"]:
        r, f = c["route"], c["feedback"]
        lines.append(f"| {c['store']} | {c['workers']} | {r['throughput']:.0f} | "
                     f"{r['p99_us'] / 1000:.2f} | {f['throughput']:.0f} | "
                     f"{f['p99_us'] / 1000:.2f} |")
    if "postgres_skipped" in results:
        lines += ["", f"PostgreSQL rows skipped: {results['postgres_skipped']}"]
    lines += ["", "Staleness (replica A acknowledges a feedback → replica B's /v1/arms shows "
              "it):", "", "| store | samples | p50 ms | p95 ms | max ms | sync interval ms |",
              "|---|---:|---:|---:|---:|---:|"]
    for store, s in results["staleness"].items():
        lines.append(f"| {store} | {s['samples']} | {s['p50_ms']:.0f} | {s['p95_ms']:.0f} | "
                     f"{s['max_ms']:.0f} | {s['sync_interval_ms']:g} |")
    return lines
