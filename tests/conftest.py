"""Shared fixtures: the bundled config, a controllable clock, engines, a live app client, the
same app with API keys (tests/calls.py KEYS), and a fake upstream."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, settings

from bandit_router.config import load, parse
from bandit_router.core.route_id import RouteIds
from bandit_router.core.settings import Config
from bandit_router.engine.router import Engine
from bandit_router.http.app import create_app
from tests.calls import KEYS
from tests.fake_upstream import FakeUpstream
from tests.stores import store_url  # noqa: F401  (a fixture: a fresh store of each backend)

ROOT = Path(__file__).resolve().parent.parent

# Property tests draw the same examples on every run (derandomize: a fixed seed, so main is
# green every time, not most times), and never fail on how fast examples are generated:
# that health check measures wall time, which a loaded 2-core CI machine does not give.
settings.register_profile("suite", derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def config() -> Config:
    return load(ROOT / "config.toml")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def route_ids() -> RouteIds:
    return RouteIds(b"k" * 32)


@pytest.fixture
def engine(config: Config, route_ids: RouteIds, clock: FakeClock) -> Engine:
    return Engine(config, route_ids, np.random.default_rng(7), clock)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "router.db")


@pytest.fixture
def app_config(config: Config, db_path: str) -> Config:
    return replace(config, storage=replace(config.storage, url=db_path))


@pytest.fixture
async def client(app_config: Config, clock: FakeClock):
    """The real app on a real loopback port, with a real SQLite file and the fake clock."""
    async with TestClient(TestServer(create_app(app_config, clock=clock))) as c:
        yield c


@pytest.fixture(scope="module")
def upstream():
    """A fake LLM provider (a real HTTP server on loopback), shared by a module's tests."""
    server = FakeUpstream()
    yield server
    server.stop()


@pytest.fixture
def keyed_config(app_config: Config, monkeypatch) -> Config:
    """The bundled config with the API keys of tests/calls.py KEYS (secrets from the
    environment, as an operator would give them)."""
    doc = tomllib.loads((ROOT / "config.toml").read_text())
    doc["auth"] = {"keys": []}
    for name, (tenant, scopes, secret) in KEYS.items():
        variable = f"TEST_KEY_{name.upper().replace('-', '_')}"
        monkeypatch.setenv(variable, secret)
        doc["auth"]["keys"].append({"name": name, "tenant": tenant, "scopes": scopes,
                                    "key_env": variable})
    return replace(parse(doc), storage=app_config.storage)


@pytest.fixture
async def keyed(keyed_config: Config, clock: FakeClock):
    async with TestClient(TestServer(create_app(keyed_config, clock=clock))) as c:
        yield c
