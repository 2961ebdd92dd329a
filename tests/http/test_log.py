"""Logging: one JSON event per decision and per feedback, with level and sampling from config."""

from __future__ import annotations

import io
from dataclasses import replace

import orjson
import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from bandit_router.core.settings import Config
from bandit_router.http import log
from bandit_router.http.app import create_app


@pytest.fixture(autouse=True)
def _restore_structlog():
    yield
    structlog.reset_defaults()


async def _route_and_feedback(client) -> str:
    r = await client.post("/v1/route", json={"prompt": "hello there"})
    route_id = (await r.json())["route_id"]
    r = await client.post("/v1/feedback", json={"route_id": route_id, "quality": 1.0})
    assert r.status == 200
    return route_id


async def test_each_decision_and_feedback_logs_one_event_with_its_route_id(client):
    with capture_logs() as events:
        route_id = await _route_and_feedback(client)
    decisions = [e for e in events if e["event"] == "decision"]
    feedbacks = [e for e in events if e["event"] == "feedback"]
    assert [e["route_id"] for e in decisions] == [route_id]
    assert [e["route_id"] for e in feedbacks] == [route_id]
    assert feedbacks[0]["applied"] == {"quality": 1.0}
    assert decisions[0]["model"] == feedbacks[0]["model"]


async def test_decision_events_are_sampled_feedback_never(app_config: Config, clock):
    quiet = replace(app_config, logging=replace(app_config.logging, decision_sample_rate=0.0))
    async with TestClient(TestServer(create_app(quiet, clock=clock))) as client:
        with capture_logs() as events:
            for _ in range(5):
                await _route_and_feedback(client)
    assert not [e for e in events if e["event"] == "decision"]
    assert len([e for e in events if e["event"] == "feedback"]) == 5


def test_configure_writes_json_lines_at_the_configured_level():
    stream = io.BytesIO()
    sink = log.configure("warning", stream)
    logger = structlog.get_logger("t")
    logger.info("hidden", x=1)
    logger.warning("shown", route_id="r1.abc")
    sink.close()
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["shown"]
    assert lines[0]["route_id"] == "r1.abc" and lines[0]["level"] == "warning"
    assert lines[0]["timestamp"].endswith("Z")
