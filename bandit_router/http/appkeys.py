"""Typed keys of the aiohttp application's state."""

from __future__ import annotations

import random

from aiohttp import web

from bandit_router.core.route_id import RouteIds
from bandit_router.core.settings import Config
from bandit_router.engine.router import Engine
from bandit_router.http.auth import KeyRing
from bandit_router.http.drain import Drain
from bandit_router.http.metrics import Metrics
from bandit_router.http.openapi import Served
from bandit_router.http.schemas.bodies import Bodies
from bandit_router.storage.store import Store

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", Store)
ENGINE = web.AppKey("engine", Engine)
ROUTE_IDS = web.AppKey("route_ids", RouteIds)
LOG_SAMPLER = web.AppKey("log_sampler", random.Random)
KEYS = web.AppKey("keys", KeyRing)
METRICS = web.AppKey("metrics", Metrics)
DRAIN = web.AppKey("drain", Drain)  # streamed answers, ended by shutdown's deadline
BODIES = web.AppKey("bodies", Bodies)  # the request bodies' classes, with the config's limits
OPENAPI = web.AppKey("openapi", Served)  # the document, built at start
