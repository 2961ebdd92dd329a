"""The OpenAI-compatible gateway, driven by the official openai SDK against the real
service process, with small real upstream servers speaking the chat-completions protocol."""

from __future__ import annotations

import asyncio

import aiohttp
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fake_upstream import CHUNKS, UPSTREAM_KEY
from tests.gateways import Gateway, gateway_config
from tests.waiting import eventually, eventually_sync


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    gw = Gateway(tmp_path_factory.mktemp("gateway"), gateway_config(upstream))
    yield gw
    if gw.proc.poll() is None:
        assert gw.stop() == 0


@pytest.fixture
def client(gateway):
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0) as c:
        yield c


@pytest.fixture
async def async_client(gateway):
    async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="unused",
                                  max_retries=0) as c:
        yield c


MESSAGES = [{"role": "user", "content": "What is six times seven?"}]


def test_models_lists_aliases_and_catalog(client):
    ids = {m.id for m in client.models.list()}
    assert {"auto", "auto-cheap", "good-model", "fail-model"} <= ids


def test_alias_is_routed_forwarded_and_retried_to_a_working_model(client, upstream):
    seen_first = set()
    for _ in range(12):
        raw = client.chat.completions.with_raw_response.create(model="auto", messages=MESSAGES)
        answer = raw.parse()
        # fail-model (500), busy-model (429) and hang-model (times out) are retried on the
        # fallbacks; four attempts always reach good-model, the one that answers
        assert answer.model == raw.headers["x-routed-model"]
        assert answer.choices[0].message.content == "".join(CHUNKS)
        assert raw.headers["x-route-id"].startswith("r3.")
        assert raw.headers["x-route-bucket"]
        seen_first.add(answer.model)
    assert seen_first == {"good-model"}
    assert {"up-500", "up-429"} & set(upstream.calls)  # failures were tried, then passed over


def test_a_concrete_model_is_passed_through(client):
    raw = client.chat.completions.with_raw_response.create(model="good-model",
                                                           messages=MESSAGES)
    assert raw.parse().model == "good-model" and raw.headers["x-routed-model"] == "good-model"


def test_when_every_attempt_fails_the_client_gets_an_openai_error(client):
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="fail-model", messages=MESSAGES)
    assert err.value.status_code == 502
    assert "every upstream attempt failed" in str(err.value)


def test_unknown_model_is_a_clear_400(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gpt-nonexistent", messages=MESSAGES)
    assert "unknown model" in str(err.value)


async def test_streaming_chunks_arrive_before_the_upstream_finishes(async_client, upstream):
    # The upstream sends its first chunk, then holds the rest until this test has read
    # that chunk: so the chunk can only arrive if the gateway passes it on at once.
    upstream.first_chunk_read.clear()
    upstream.gate_chunks = True
    try:
        stream = await async_client.chat.completions.create(
            model="good-model", messages=MESSAGES, stream=True,
            stream_options={"include_usage": True})
        text, usage, released_by_us = "", None, False
        async for chunk in stream:
            assert chunk.model == "good-model"
            for choice in chunk.choices:
                text += choice.delta.content or ""
            usage = chunk.usage or usage
            if not upstream.first_chunk_read.is_set():
                released_by_us = True
                upstream.first_chunk_read.set()
    finally:
        upstream.gate_chunks = False
        upstream.first_chunk_read.set()
    assert released_by_us and not upstream.gate_timed_out
    assert text == "".join(CHUNKS)
    assert usage is not None and usage.completion_tokens == 5


def test_sync_streaming_works_too(client):
    pieces = [c.choices[0].delta.content for c in client.chat.completions.create(
        model="auto", messages=MESSAGES, stream=True) if c.choices]
    assert "".join(p or "" for p in pieces) == "".join(CHUNKS)


async def test_async_non_streamed(async_client):
    answer = await async_client.chat.completions.create(model="auto-cheap", messages=MESSAGES)
    assert answer.choices[0].message.content == "".join(CHUNKS)


async def test_a_model_without_upstream_is_never_chosen_by_the_gateway(gateway, client):
    """dark-model is the cheapest model but has no upstream: the gateway never decides for
    it, so it takes no share of the gateway's traffic and no decision it did not answer."""
    for _ in range(20):
        raw = client.chat.completions.with_raw_response.create(model="auto", messages=MESSAGES)
        assert raw.headers["x-routed-model"] != "dark-model"
    async with aiohttp.ClientSession() as s, s.get(f"{gateway.url}/v1/arms") as r:
        arms = (await r.json())["arms"]
    dark = [a for a in arms if a["model"] == "dark-model"]
    assert dark and all(a["recent_decisions"] == 0 and a["share"] == 0 for a in dark)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="dark-model", messages=MESSAGES)
    assert err.value.code == "no_upstream" and "no upstream" in str(err.value)
    # /v1/route answers for the caller to call, so it still decides among every model
    async with aiohttp.ClientSession() as s:
        seen = set()
        for _ in range(30):
            async with s.post(f"{gateway.url}/v1/route", json={
                    "prompt": "hi", "explain": True, "policy": "cheap"}) as r:
                d = await r.json()
            seen.add(d["model"])
            assert d["explanation"]["dark-model"]["eligible"] is True
    assert "dark-model" in seen


async def _arms(gateway) -> dict[str, dict]:
    async with aiohttp.ClientSession() as s, s.get(f"{gateway.url}/v1/arms") as r:
        arms = (await r.json())["arms"]
    out: dict[str, dict] = {}
    for arm in arms:
        for key in ("evidence", "latency_observations"):
            out.setdefault(arm["model"], {}).setdefault(key, 0.0)
            out[arm["model"]][key] += arm[key]
    return out


async def test_feedback_is_automatic_and_quality_can_follow(gateway, async_client):
    raw = await async_client.chat.completions.with_raw_response.create(
        model="good-model", messages=MESSAGES)
    route_id = raw.headers["x-route-id"]

    async def learned():  # the gateway writes its feedback after answering
        arms = await _arms(gateway)
        # failures count as quality 0 (at least one; decay since takes a hair off it)
        return arms.get("good-model", {}).get("latency_observations", 0) >= 1 and \
            arms.get("fail-model", {}).get("evidence", 0) > 0.99
    await eventually(learned, "latency and tokens of good-model and fail-model's failures "
                              "learned")
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{gateway.url}/v1/feedback",
                          json={"route_id": route_id, "quality": 0.9}) as r:
            assert r.status == 200 and (await r.json())["applied"] == {"quality": 0.9}
        async with s.post(f"{gateway.url}/v1/feedback",
                          json={"route_id": route_id, "latency_ms": 5}) as r:
            # the gateway measured the call itself: a client may add its quality only
            error = (await r.json())["error"]
            assert r.status == 400 and error["field"] == "latency_ms"


async def test_a_client_that_hangs_up_cancels_the_upstream_call(gateway, upstream):
    upstream.cancelled.clear()
    timeout = aiohttp.ClientTimeout(total=0.4)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        with pytest.raises(asyncio.TimeoutError):
            await s.post(f"{gateway.url}/v1/chat/completions",
                         json={"model": "hang-model", "messages": MESSAGES})
    assert await asyncio.get_running_loop().run_in_executor(None, upstream.cancelled.wait, 5)


def test_upstream_keys_never_reach_the_logs(gateway, client, upstream):
    client.chat.completions.create(model="good-model", messages=MESSAGES)
    assert upstream.bad_keys == 0  # the key was sent where it belongs
    eventually_sync(lambda: "gateway_call" in gateway.log.read_text(),
                    "the call logged (the log thread writes every 50 ms)")
    assert UPSTREAM_KEY not in gateway.log.read_text()


async def _counted(gateway) -> dict[tuple[str, str], float]:
    """/metrics counters summed by (sample name, model or error code)."""
    async with aiohttp.ClientSession() as s, s.get(f"{gateway.url}/metrics") as r:
        text = await r.text()
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, sample.labels.get("model") or sample.labels.get("code", ""))
            out[key] = out.get(key, 0.0) + sample.value
    return out


async def test_gateway_traffic_is_counted_in_the_metrics(gateway, async_client):
    before = await _counted(gateway)
    with pytest.raises(openai.APIStatusError):  # fail-model has no fallback here: a 502
        await async_client.chat.completions.create(model="fail-model", messages=MESSAGES)
    await async_client.chat.completions.create(model="good-model", messages=MESSAGES)
    after: dict = {}

    async def fed_back() -> bool:  # the gateway writes its feedback after answering
        after.update(await _counted(gateway))
        fed = [after.get(("bandit_router_feedback_total", m), 0)
               - before.get(("bandit_router_feedback_total", m), 0)
               for m in ("fail-model", "good-model")]
        assert fed in ([0, 0], [1, 0], [0, 1], [1, 1]), fed
        return fed == [1, 1]
    await eventually(fed_back, "both calls' feedback counted")

    def grew(name: str, label: str) -> float:
        return after.get((name, label), 0) - before.get((name, label), 0)

    assert grew("bandit_router_decisions_total", "fail-model") == 1
    assert grew("bandit_router_decisions_total", "good-model") == 1
    assert grew("bandit_router_decision_seconds_count", "") == 2
    assert grew("bandit_router_errors_total", "upstream_failed") == 1
    assert grew("bandit_router_spend_usd_total", "good-model") > 0  # its usage, priced
