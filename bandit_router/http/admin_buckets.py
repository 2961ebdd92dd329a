"""Learned buckets over HTTP: list them, pin or reset one (`/v1/admin/buckets`), and the
service's refinement loop (off the hot path: k-means runs on a worker thread)."""

from __future__ import annotations

import asyncio
import dataclasses

import structlog
from aiohttp import web

from bandit_router.core.errors import InvalidField, UnknownBucket
from bandit_router.core.learned import Split, child_json, is_child, parent_of
from bandit_router.engine.router import Engine
from bandit_router.http.appkeys import CONFIG, ENGINE, STORE
from bandit_router.http.edge import caller_of, json_response, query_of, read_json
from bandit_router.http.errors import Forbidden
from bandit_router.http.schemas.admin import BucketChangeBody
from bandit_router.http.schemas.decode import convert
from bandit_router.storage.learned_store import ACTIONS
from bandit_router.storage.store import Store

log = structlog.get_logger("bandit_router")
ROUTES = web.RouteTableDef()


def learned_json(engine: Engine, tenant: str | None, policy: str | None = None) -> list[dict]:
    """Every learned bucket of a tenant (None: every tenant), with its label and size."""
    return [{"tenant": s.tenant, "policy": s.policy, **child_json(s, c)}
            for _, s in sorted(engine.learned.splits.items())
            if (tenant is None or s.tenant == tenant) and (policy is None or s.policy == policy)
            for c in s.children]


@ROUTES.get("/v1/admin/buckets")
async def list_buckets(request: web.Request) -> web.Response:
    caller = caller_of(request, "admin")
    query = query_of(request, {"policy"})
    engine = request.app[ENGINE]
    policy = engine.policy(query["policy"]).name if "policy" in query else None
    return json_response({"enabled": engine.config.buckets.learned.enabled,
                          "buckets": learned_json(engine, caller.tenant, policy)})


def _changed(split: Split, bucket: str, action: str) -> Split:
    """`split` after an admin's action on `bucket` (a learned bucket, or for a reset its
    rule bucket: every child goes, requests go back to the rule bucket)."""
    if action == "reset" and not is_child(bucket):
        return dataclasses.replace(split, children=(), version=split.version + 1)
    child = split.child(int(bucket.rpartition("/")[2]))
    if child is None:
        raise UnknownBucket(f"no learned bucket {bucket!r}; see GET /v1/admin/buckets",
                            "bucket")
    if action == "reset":
        children = tuple(c for c in split.children if c.id != child.id)
    else:
        pinned = dataclasses.replace(child, pinned=action == "pin")
        children = tuple(pinned if c.id == child.id else c for c in split.children)
    return dataclasses.replace(split, children=children, version=split.version + 1)


@ROUTES.post("/v1/admin/buckets")
async def change_bucket(request: web.Request) -> web.Response:
    """Pin (refinement leaves it alone), unpin or reset a learned bucket, or reset a rule
    bucket's learned children (admin scope, the caller's tenant; audited)."""
    app = request.app
    caller = caller_of(request, "admin")
    body = convert(await read_json(request), BucketChangeBody)
    action, bucket = body.action, body.bucket
    tenant = body.tenant or caller.tenant
    if tenant != caller.tenant and not caller.operator:
        raise Forbidden("a tenant's admin changes its own tenant's buckets only", "tenant")
    engine: Engine = app[ENGINE]
    policy = engine.policy(body.policy).name
    engine.check_bucket(bucket, learned=True)
    if action != "reset" and not is_child(bucket):
        raise InvalidField("only a learned bucket (task:level/k) is pinned", "bucket")
    store: Store = app[STORE]
    for _ in range(3):  # a refinement may commit in between: retry over the newer split
        split = _changed(engine.learned.split((tenant, policy, parent_of(bucket))), bucket,
                         action)
        if await store.save_split(split, caller.name, ACTIONS[action], bucket):
            engine.learned.install([split])
            if action == "reset" and not is_child(bucket):
                engine.learned.forget(split.key)
            log.info("learned_bucket_changed", tenant=tenant, key=caller.name, bucket=bucket,
                     action=action, version=split.version)
            return json_response({"action": action, "bucket": bucket, "version": split.version,
                                  "buckets": learned_json(engine, tenant, policy)})
        engine.learned.install(await store.load_splits())
    raise InvalidField("the learned bucket kept changing; try again", "bucket")


async def refine_forever(app: web.Application) -> None:
    """Reload the stored splits (other replicas' refinements), then refine the buckets with
    enough new answers on a worker thread and store what changed."""
    engine: Engine = app[ENGINE]
    store: Store = app[STORE]
    interval = app[CONFIG].buckets.learned.refine_interval_s
    while True:
        await asyncio.sleep(interval)
        try:
            await refine_once(engine, store)
        except Exception as exc:  # a storage fault: the next round tries again
            log.warning("refinement_failed", error=str(exc))


async def refine_once(engine: Engine, store: Store) -> int:
    """One round; how many splits it changed."""
    engine.learned.install(await store.load_splits())
    changed = 0
    for job in engine.learned.jobs():
        new = await asyncio.to_thread(engine.learned.run_job, job)
        if new.version == job[0].version:
            continue
        if await store.save_split(new):
            engine.learned.install([new])
            changed += 1
            log.info("bucket_refined", tenant=new.tenant, policy=new.policy, bucket=new.bucket,
                     children=len(new.children), version=new.version)
        else:
            engine.learned.install(await store.load_splits())
    return changed
