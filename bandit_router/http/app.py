"""The aiohttp application: built by a factory from a config and a store, nothing global."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable

import numpy as np
import structlog
from aiohttp import web

from bandit_router.core.route_id import RouteIds
from bandit_router.core.settings import Config
from bandit_router.engine.router import Engine
from bandit_router.http import (
    admin_buckets,
    admin_models,
    admin_reset,
    arms,
    dashboard,
    feedback,
    gateway,
    route,
    service,
    stats,
)
from bandit_router.http.appkeys import (
    BODIES,
    CONFIG,
    DRAIN,
    ENGINE,
    KEYS,
    LOG_SAMPLER,
    METRICS,
    OPENAPI,
    ROUTE_IDS,
    STORE,
)
from bandit_router.http.auth import KeyRing
from bandit_router.http.drain import Drain
from bandit_router.http.edge import error_middleware
from bandit_router.http.metrics import Metrics
from bandit_router.http.openapi import Served
from bandit_router.http.schemas.bodies import Bodies
from bandit_router.storage.store import DECISION_FLUSH_S, Store
from bandit_router.storage.writer import StorageError

log = structlog.get_logger("bandit_router")
PRUNE_EVERY_S = 600.0


def create_app(config: Config, store: Store | None = None,
               clock: Callable[[], float] = time.time) -> web.Application:
    """The service. `store` defaults to the config's SQLite file; tests may pass their own."""
    app = web.Application(client_max_size=config.server.max_body_bytes,
                          middlewares=[error_middleware])
    app[CONFIG] = config
    app[BODIES] = Bodies.build(config.server)
    app[OPENAPI] = Served(app[BODIES])
    app[STORE] = store or Store(config, clock=clock)
    app[LOG_SAMPLER] = random.Random(config.routing.seed)
    app[KEYS] = KeyRing(config.auth)
    app[DRAIN] = Drain()
    app[METRICS] = Metrics(lambda: (app[ENGINE], app[STORE]) if ENGINE in app else None)
    for family in (route, feedback, arms, stats, admin_reset, admin_models, admin_buckets,
                   gateway, dashboard, service):  # one module per endpoint family
        app.add_routes(family.ROUTES)
    app.cleanup_ctx.append(lambda a: _lifecycle(a, clock))
    app.cleanup_ctx.append(gateway.lifecycle)  # opened after the store, closed before it
    return app


async def _lifecycle(app: web.Application, clock: Callable[[], float]) -> AsyncIterator[None]:
    config, store = app[CONFIG], app[STORE]
    loaded = await store.open(publish=lambda changes: app[ENGINE].absorb(changes),
                              on_spend=lambda spent: _spent(app[ENGINE], spent),
                              on_catalog=lambda entries: app[ENGINE].set_catalog(entries))
    app[ROUTE_IDS] = RouteIds(loaded.route_key)
    engine = Engine(config, app[ROUTE_IDS], np.random.default_rng(config.routing.seed), clock)
    engine.set_catalog(store.catalog)  # before the arms: a runtime-added model's are usable
    engine.absorb(loaded.arms)
    engine.remember(loaded.recent)
    engine.replay_spent(loaded.spend)
    engine.learned.install(await store.load_splits())
    app[ENGINE] = engine
    app[OPENAPI].body(engine.config)  # built once here, not on the first request
    for key in engine.orphans:
        log.warning("orphaned_arm", tenant=key.tenant, policy=key.policy, bucket=key.bucket,
                    model=key.model, why="its model, policy or bucket is no longer in the "
                                         "config; kept in the database, not used")
    log.info("started", db=store.path, config=config.source, arms=len(loaded.arms))
    tasks = [asyncio.create_task(_prune_forever(app, clock)),
             asyncio.create_task(_flush_forever(store)),
             asyncio.create_task(_sync_forever(store, config.storage.sync_interval_ms))]
    if config.buckets.learned.enabled:
        tasks.append(asyncio.create_task(admin_buckets.refine_forever(app)))
    yield
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await store.close()
    log.info("stopped", db=store.path)


def _spent(engine: Engine, spent: list[tuple[str, str, float, float, str]]) -> None:
    for tenant, policy, usd, at, model in spent:
        engine.spent(tenant, policy, usd, at, model)


async def _flush_forever(store: Store) -> None:
    while True:
        await asyncio.sleep(DECISION_FLUSH_S)
        store.flush_decisions()


async def _sync_forever(store: Store, interval_ms: float) -> None:
    while True:
        await asyncio.sleep(interval_ms / 1000.0)
        store.sync()


async def _prune_forever(app: web.Application, clock: Callable[[], float]) -> None:
    ttl_s = app[CONFIG].storage.decision_ttl_hours * 3600.0
    while True:
        try:
            pruned = await app[STORE].prune(before=clock() - ttl_s)
        except StorageError as exc:  # e.g. a lock timeout: the next round prunes it all
            log.warning("prune_failed", error=str(exc), retry_in_s=PRUNE_EVERY_S)
        else:
            if pruned:
                log.info("decisions_pruned", count=pruned)
        await asyncio.sleep(PRUNE_EVERY_S)
