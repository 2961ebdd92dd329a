"""Decision-only microbenchmark: `Engine.decide` and feature extraction, timed in process.

A plain timer loop (perf_counter_ns around each call, after a warm-up) over catalogs of 4,
8 and 32 models derived from the config's catalog, with evidence already learned in the
bucket, and over a short and an 8,000-character prompt.
"""

from __future__ import annotations

import gc
import time
from dataclasses import replace

import numpy as np

from bandit_router.core.learner import ArmBook
from bandit_router.core.route_id import RouteIds
from bandit_router.core.settings import Config
from bandit_router.core.types import FeedbackEvent, Message, RouteRequest, RouteTicket
from bandit_router.engine.router import Engine
from bandit_router.engine.simulate import Clock

SHORT = "What is the capital of France? Answer in one word."
LONG_UNIT = ("Please review the following service log and explain, step by step, why the "
             "request latency doubled after the deploy; suggest a fix. ")


def long_prompt(chars: int = 8000) -> str:
    text = (LONG_UNIT * (chars // len(LONG_UNIT) + 1))[:chars]
    return text


def catalog(config: Config, n: int) -> Config:
    """`n` models: the config's, repeated with scaled prices and new names when needed."""
    base = config.models
    models = tuple(replace(base[i % len(base)], name=f"{base[i % len(base)].name}#{i}",
                           input_per_mtok=base[i % len(base)].input_per_mtok * (1 + i / n),
                           output_per_mtok=base[i % len(base)].output_per_mtok * (1 + i / n))
                   for i in range(n))
    return replace(config, models=models)


def _percentiles(ns: list[int]) -> dict[str, float]:
    us = np.array(ns) / 1000.0
    return {"p50_us": float(np.percentile(us, 50)), "p99_us": float(np.percentile(us, 99)),
            "mean_us": float(us.mean()), "calls": len(us)}


def _timed(fn, calls: int, repeats: int = 3) -> dict[str, float]:
    """Percentiles of one timed loop of `calls`; the loop is run `repeats` times and the run
    with the median p50 is kept (a shared VM's speed drifts between loops)."""
    runs = []
    for _ in range(repeats):
        for _ in range(min(1000, calls // 10)):
            fn()
        gc.collect()
        out = []
        perf = time.perf_counter_ns
        for _ in range(calls):
            t = perf()
            fn()
            out.append(perf() - t)
        runs.append(_percentiles(out))
    return sorted(runs, key=lambda r: r["p50_us"])[len(runs) // 2]


def engine_with_evidence(config: Config, request: RouteRequest, feedback: int = 2000) -> Engine:
    """An engine whose bucket for `request` has learned from `feedback` answers."""
    clock = Clock()
    engine = Engine(config, RouteIds(b"microbenchmark-key"), np.random.default_rng(0), clock)
    book = ArmBook(config.policies, weights=config.source_weights)
    rng = np.random.default_rng(1)
    for _ in range(feedback):
        clock.t += 1.0
        d = engine.decide(request)
        facts = (("quality", float(rng.random())), ("latency_ms", float(rng.uniform(500, 5000))),
                 ("input_tokens", 20.0), ("output_tokens", float(rng.integers(10, 500))))
        ticket = RouteTicket(d.policy, d.bucket, d.model, d.created_at, d.input_tokens, "")
        engine.absorb(book.apply(FeedbackEvent(d.route_id, ticket, facts, clock.t)))
    return engine


def run(config: Config, calls: int = 20_000) -> dict:
    """`decide`: the decision given the request's features (what the policy costs);
    `route`: features + decision, as `/v1/route` does it; `features`: extraction alone."""
    short = RouteRequest((Message("user", SHORT),))
    long = RouteRequest((Message("user", long_prompt()),))
    results: dict = {"decide": {}, "route": {}, "features": {}}
    for n in (4, 8, 32):
        engine = engine_with_evidence(catalog(config, n), short)
        features = engine.features(short)
        results["decide"][f"{n}_models"] = _timed(
            lambda e=engine, f=features: e.decide(short, f), calls)
        results["route"][f"{n}_models_short_prompt"] = _timed(
            lambda e=engine: e.decide(short), calls)
    engine = engine_with_evidence(catalog(config, 8), long)
    results["route"]["8_models_8000_chars"] = _timed(lambda: engine.decide(long), calls // 4)
    results["features"]["short"] = _timed(lambda: engine.features(short), calls)
    results["features"]["8000_chars"] = _timed(lambda: engine.features(long), calls // 4)
    return results
