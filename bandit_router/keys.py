"""Typed keys of the aiohttp application's state."""

from __future__ import annotations

import random

from aiohttp import web

from bandit_router.auth import KeyRing
from bandit_router.config import Config
from bandit_router.drain import Drain
from bandit_router.engine import Engine
from bandit_router.metrics import Metrics
from bandit_router.route_id import RouteIds
from bandit_router.store import Store

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", Store)
ENGINE = web.AppKey("engine", Engine)
ROUTE_IDS = web.AppKey("route_ids", RouteIds)
LOG_SAMPLER = web.AppKey("log_sampler", random.Random)
KEYS = web.AppKey("keys", KeyRing)
METRICS = web.AppKey("metrics", Metrics)
DRAIN = web.AppKey("drain", Drain)  # streamed answers, ended by shutdown's deadline
