"""Fixtures of the HTTP tests: the trust-model world (tests/http/tenants.py) on a live app."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bandit_router.core.settings import Config
from bandit_router.http.app import create_app
from tests.conftest import FakeClock
from tests.fake_upstream import chat_server
from tests.http.tenants import Capture, trust_config


@pytest.fixture
async def capture():
    server = Capture()
    async with chat_server(server.completions) as server.url:
        yield server


@pytest.fixture
def trusted(app_config, capture, monkeypatch) -> Config:
    return trust_config(app_config, capture, monkeypatch)


@pytest.fixture
async def server(trusted: Config, clock: FakeClock):
    async with TestClient(TestServer(create_app(trusted, clock=clock))) as c:
        yield c
