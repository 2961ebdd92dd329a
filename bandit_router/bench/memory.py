"""Memory under a long run: a million decisions through the service's own parts.

In process, on one event loop: each request is validated, decided by the `Engine`, logged
(structlog to /dev/null), and its decision handed to the `Store` (batched writes to
a real SQLite file), while a simulated clock runs at one request per millisecond and the
store prunes decisions older than a short time-to-live, as the service does in the
background. Resident memory is read before and after; nothing is kept per decision.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sqlite3
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
import structlog

from bandit_router.core.route_id import RouteIds
from bandit_router.core.settings import Config
from bandit_router.engine.router import Engine
from bandit_router.engine.simulate import Clock
from bandit_router.http import log
from bandit_router.http.schemas.bodies import Bodies
from bandit_router.http.wire import parse_route
from bandit_router.storage.store import Store

TTL_S = 60.0  # decisions older than this (simulated) are pruned
PRUNE_EVERY = 50_000


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _run(config: Config, decisions: int, db: Path, progress) -> dict:
    clock = Clock()
    config = replace(config, storage=replace(config.storage, url=str(db),
                                             decision_ttl_hours=TTL_S / 3600))
    store = Store(config, clock=clock)
    loaded = await store.open(publish=lambda changes: None)
    engine = Engine(config, RouteIds(loaded.route_key), np.random.default_rng(0), clock)
    logger = structlog.get_logger("bandit_router")
    texts = [f"Question {i}: what is {i} times {i + 1}? Explain briefly." for i in range(97)]
    bodies = [orjson.dumps({"prompt": t}) for t in texts]
    schema = Bodies.build(config.server)
    warmup = min(20_000, decisions // 10)
    start_rss = None
    samples: list[tuple[int, float]] = []
    started = time.monotonic()
    for i in range(decisions):
        if i == warmup:
            gc.collect()
            start_rss = rss_mb()
        clock.t += 0.001
        d = engine.decide(parse_route(orjson.loads(bodies[i % len(bodies)]), schema))
        logger.info("decision", route_id=d.route_id, model=d.model, bucket=d.bucket)
        store.log_decision(d)
        if i % 1000 == 0:
            await asyncio.sleep(0)  # let the loop breathe, as a server would
        if i and i % PRUNE_EVERY == 0:
            store.flush_decisions()
            await store.prune(before=clock() - TTL_S)
            samples.append((i, rss_mb()))
            progress(i, decisions)
    store.flush_decisions()
    await store.prune(before=clock() - TTL_S)
    gc.collect()
    end_rss = rss_mb()
    await store.close()
    with sqlite3.connect(db) as conn:
        kept = conn.execute("SELECT count(*) FROM decisions").fetchone()[0]
    return {"decisions": decisions, "rss_mb_after_warmup": start_rss, "rss_mb_end": end_rss,
            "rss_growth_mb": end_rss - start_rss, "decisions_kept_in_db": kept,
            "ttl_s_simulated": TTL_S, "dropped_decisions": store.dropped_decisions,
            "rss_mb_samples": samples,
            "seconds": time.monotonic() - started}


def run(config: Config, decisions: int = 1_000_000, progress=lambda done, total: None) -> dict:
    sink = log.configure("info", open(os.devnull, "wb"))  # noqa: SIM115 (closed by the sink)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return asyncio.run(_run(config, decisions, Path(tmp) / "memory.db", progress))
    finally:
        sink.close()
        structlog.reset_defaults()
