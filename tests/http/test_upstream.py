"""Upstreams read like clients: a too large, endless or malformed answer is that upstream's
failure. Before our client got a byte, the gateway fails over to the next model; once a
stream has started, it ends cleanly with an OpenAI-style error event. Either way the
failure is learned against the upstream.

One gateway process, two models: `flaky-model` (cheap; its upstream does whatever the test
sets `upstream.flaky` to) and `good-model` (ten times its price). The policy's price weight
(points per price doubling) is the largest allowed, so every decision tries flaky-model first
and good-model second.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import openai
import pytest

from tests.gateways import Gateway, gateway_config
from tests.waiting import eventually

MODELS = {"flaky-model": ("up-flaky", 0.1), "good-model": ("up-ok", 1.0)}
MESSAGES = [{"role": "user", "content": "What is six times seven?"}]
ANSWER_CAP = 1 << 20


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    text = gateway_config(upstream, MODELS, attempts="2", timeout_s="10.0",
                          points_per_price_doubling="1000.0", max_answer_bytes=str(ANSWER_CAP),
                          max_event_bytes="262144")
    gw = Gateway(tmp_path_factory.mktemp("upstreams"), text)
    yield gw
    if gw.proc.poll() is None:
        assert gw.stop() == 0
    assert "Traceback" not in gw.log.read_text()


@pytest.fixture
def client(gateway):
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0) as c:
        yield c


async def _failures(gateway) -> float:
    """flaky-model's quality evidence: each failure of it counts as one quality-0 answer."""
    async with aiohttp.ClientSession() as s, s.get(f"{gateway.url}/v1/arms") as r:
        return sum(a["evidence"] for a in (await r.json())["arms"]
                   if a["model"] == "flaky-model")


async def _learned_one_more_failure(gateway, before: float) -> None:
    async def grew() -> bool:
        return await _failures(gateway) > before + 0.99  # (evidence decays a little)
    await eventually(grew, "the failure recorded against flaky-model")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("kind", ["list", "usage-string", "not-json", "huge"])
async def test_a_bad_answer_fails_over_and_counts_against_its_upstream(
        gateway, upstream, client, kind):
    upstream.flaky = kind
    before, rss = await _failures(gateway), _rss_mb(gateway.proc.pid)
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=MESSAGES)
    assert raw.headers["x-routed-model"] == "good-model"
    assert raw.parse().choices[0].message.content == "The answer is forty-two."
    assert upstream.calls[-2:] == ["up-flaky", "up-ok"]  # flaky first, then the failover
    await _learned_one_more_failure(gateway, before)
    if kind == "huge":  # the router stopped reading at its cap and hung up
        assert upstream.sent_bytes < 16 * ANSWER_CAP  # the rest sat in socket buffers
        assert _rss_mb(gateway.proc.pid) < rss + 64


@pytest.mark.parametrize("kind", ["bad-first-event", "endless-line", "empty-stream"])
async def test_a_stream_that_breaks_before_its_first_event_fails_over(
        gateway, upstream, client, kind):
    upstream.flaky = kind
    before = await _failures(gateway)
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=MESSAGES,
                                                           stream=True)
    assert raw.headers["x-routed-model"] == "good-model"
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == "The answer is forty-two."
    await _learned_one_more_failure(gateway, before)


@pytest.mark.parametrize("kind", ["bad-later-event", "long-later-line", "error-later"])
async def test_a_started_stream_that_breaks_ends_with_an_error_event(
        gateway, upstream, client, kind):
    upstream.flaky = kind
    before = await _failures(gateway)
    async with aiohttp.ClientSession() as s, s.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "auto", "messages": MESSAGES, "stream": True}) as r:
        assert r.status == 200 and r.headers["x-routed-model"] == "flaky-model"
        body = await r.read()  # a clean end of the chunked body, or this raises
    events = [line for line in body.split(b"\n") if line.startswith(b"data:")]
    assert b"HTTP/1.1" not in body  # no second response written inside the stream
    assert len(events) == 3 and b'"The "' in events[0] and b'"answer "' in events[1]
    assert events[-1].startswith(b'data: {"error":') and b"the stream broke" in events[-1]
    assert b"is lost" not in body
    await _learned_one_more_failure(gateway, before)
    with pytest.raises(openai.APIError, match="the stream broke"):  # what an SDK user sees
        for _ in client.chat.completions.create(model="auto", messages=MESSAGES, stream=True):
            pass
