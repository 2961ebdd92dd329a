"""The OpenAI-compatible gateway, driven by the official openai SDK against the real
service process, with small real upstream servers speaking the chat-completions protocol."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import aiohttp
import openai
import orjson
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM_KEY = "sk-upstream-secret-abcdefghijklmnop"
CHUNK_GAP_S = 0.25
CHUNKS = ["The ", "answer ", "is ", "forty-", "two."]


class FakeUpstream:
    """An OpenAI-compatible server whose behaviour is chosen by the model name it is sent."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.cancelled = threading.Event()
        self.bad_keys = 0
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        runner = self.runner = web.AppRunner(app, handler_cancellation=True)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())
        self.loop.close()

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = body["model"]
        self.calls.append(model)
        if request.headers.get("Authorization") != f"Bearer {UPSTREAM_KEY}":
            self.bad_keys += 1
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        if model == "up-500":
            return web.json_response({"error": {"message": "boom"}}, status=500)
        if model == "up-429":
            return web.json_response({"error": {"message": "slow down"}}, status=429)
        if model in ("up-slow", "up-hang"):
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        if body.get("stream"):
            return await self._stream(request, body)
        return web.json_response({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "".join(CHUNKS)}}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}})

    async def _stream(self, request: web.Request, body: dict) -> web.StreamResponse:
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        base = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1,
                "model": body["model"]}
        for piece in CHUNKS:
            chunk = {**base, "choices": [{"index": 0, "delta": {"content": piece},
                                          "finish_reason": None}]}
            await out.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
            await asyncio.sleep(CHUNK_GAP_S)
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {**base, "choices": [], "usage": {"prompt_tokens": 11,
                                                      "completion_tokens": 5,
                                                      "total_tokens": 16}}
            await out.write(b"data: " + orjson.dumps(usage) + b"\n\n")
        await out.write(b"data: [DONE]\n\n")
        await out.write_eof()
        return out

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(upstream: FakeUpstream) -> str:
    """The bundled config with a catalog of test models, each behind the fake upstream."""
    doc = tomllib.loads((ROOT / "config.toml").read_text())
    base = f"http://127.0.0.1:{upstream.port}/v1"
    models = {"fail-model": ("up-500", 0.1), "busy-model": ("up-429", 0.2),
              "good-model": ("up-ok", 1.0), "hang-model": ("up-hang", 2.0)}
    lines = []
    for name, (there, price) in models.items():
        lines += ["[[models]]", f'name = "{name}"', 'provider = "test"',
                  f"input_per_mtok = {price}", f"output_per_mtok = {price * 2}",
                  "context_tokens = 100000", "latency_ms = 1000",
                  f'upstream = {{ base_url = "{base}", model = "{there}", '
                  f'key_env = "TEST_UPSTREAM_KEY" }}', ""]
    # the cheapest model, and the only one the gateway cannot call
    lines += ["[[models]]", 'name = "dark-model"', 'provider = "test"', "input_per_mtok = 0.05",
              "output_per_mtok = 0.1", "context_tokens = 100000", "latency_ms = 1000", ""]
    text = (ROOT / "config.toml").read_text()
    head = text[:text.index("[[models]]")]
    tail = text[text.index("# Buckets are"):]
    assert doc["routing"]["seed"] == 0
    head = _set(head, "attempts", "4")
    head = _set(head, "timeout_s", "1.0")
    return head + "\n".join(lines) + "\n" + tail


def _set(text: str, key: str, value: str) -> str:
    """`text` with the bundled `key = ...` line (in [gateway]) set to `value`."""
    changed, n = re.subn(rf"(?m)^{key} = [^#\n]*", f"{key} = {value}  ", text, count=1)
    assert n == 1, key
    return changed


class Gateway:
    def __init__(self, tmp: Path, upstream: FakeUpstream) -> None:
        self.config = tmp / "gateway.toml"
        self.config.write_text(_config(upstream))
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "gateway.log"
        env = {**os.environ, "TEST_UPSTREAM_KEY": UPSTREAM_KEY}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bandit_router", "serve", "--config", str(self.config),
                 "--db", str(tmp / "gw.db"), "--port", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("gateway did not start")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def upstream():
    server = FakeUpstream()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    gw = Gateway(tmp_path_factory.mktemp("gateway"), upstream)
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
        assert raw.headers["x-route-id"].startswith("r2.")
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


async def test_streaming_chunks_arrive_before_the_upstream_finishes(async_client):
    started = time.monotonic()
    stream = await async_client.chat.completions.create(
        model="good-model", messages=MESSAGES, stream=True,
        stream_options={"include_usage": True})
    arrivals, text, usage = [], "", None
    async for chunk in stream:
        arrivals.append(time.monotonic() - started)
        assert chunk.model == "good-model"
        for choice in chunk.choices:
            text += choice.delta.content or ""
        usage = chunk.usage or usage
    assert text == "".join(CHUNKS)
    assert usage is not None and usage.completion_tokens == 5
    total = CHUNK_GAP_S * len(CHUNKS)
    assert arrivals[0] < total / 2  # the first chunk came long before the upstream finished
    assert arrivals[-1] >= total * 0.9


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
    await asyncio.sleep(0.5)  # the gateway writes its feedback after answering
    arms = await _arms(gateway)
    assert arms["good-model"]["latency_observations"] >= 1  # latency and tokens, learned
    assert arms["fail-model"]["evidence"] >= 1  # failures count as quality 0
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{gateway.url}/v1/feedback",
                          json={"route_id": route_id, "quality": 0.9}) as r:
            assert r.status == 200 and (await r.json())["applied"] == {"quality": 0.9}
        async with s.post(f"{gateway.url}/v1/feedback",
                          json={"route_id": route_id, "latency_ms": 5}) as r:
            assert r.status == 409  # the gateway already reported the latency


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
    time.sleep(0.3)  # the log thread writes every 50 ms
    assert UPSTREAM_KEY not in gateway.log.read_text()
    assert "gateway_call" in gateway.log.read_text()


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
    deadline = time.monotonic() + 10
    while True:  # the gateway writes its feedback after answering
        after = await _counted(gateway)
        fed = [after.get(("bandit_router_feedback_total", m), 0)
               - before.get(("bandit_router_feedback_total", m), 0)
               for m in ("fail-model", "good-model")]
        if fed == [1, 1] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert fed == [1, 1]

    def grew(name: str, label: str) -> float:
        return after.get((name, label), 0) - before.get((name, label), 0)

    assert grew("bandit_router_decisions_total", "fail-model") == 1
    assert grew("bandit_router_decisions_total", "good-model") == 1
    assert grew("bandit_router_decision_seconds_count", "") == 2
    assert grew("bandit_router_errors_total", "upstream_failed") == 1
    assert grew("bandit_router_spend_usd_total", "good-model") > 0  # its usage, priced
