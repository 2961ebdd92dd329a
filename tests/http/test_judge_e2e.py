"""Quality without labels, end to end: the official openai SDK calls the real gateway on a
loopback port and never sends feedback; the models' upstream and the judge's are one fake
OpenAI-compatible server on loopback, which answers as the model asked and grades as a
judge from a hidden truth: the cheap model is adequate for small talk and not for proofs.
The router must learn that from the judge alone, pay for the judge as its own line, and
learn nothing from a judge that times out or answers garbage."""

from __future__ import annotations

import asyncio
import tomllib
from dataclasses import replace

import openai
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bandit_router.config import parse
from bandit_router.core.settings import Config
from bandit_router.http.app import create_app
from bandit_router.http.appkeys import ENGINE
from tests.conftest import ROOT, FakeClock
from tests.fake_upstream import chat_server

EASY = "hello there, how is your day going? ({i})"
HARD = "Solve for x step by step and prove it: x^2 - {i}x = 0; calculate each root exactly."
JUDGE_SYSTEM = "You are a strict, fair grader."


class Upstream:
    """Answers as the model it is asked for; grades as a judge when asked to."""

    def __init__(self) -> None:
        self.judge = "truth"  # "truth" | "garbage" | "slow"
        self.judged: list[str] = []  # the answers the judge was shown

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        messages = body["messages"]
        if messages[0]["content"].startswith(JUDGE_SYSTEM):
            return await self._grade(messages[-1]["content"])
        text = f"{body['model']} says: here is my answer."
        if body.get("stream"):
            return await self._stream(request, body["model"], text)
        return web.json_response(_answer(body["model"], text, 20, 12))

    async def _grade(self, prompt: str) -> web.Response:
        answer = prompt.split("<answer>")[1].split("</answer>")[0]
        self.judged.append(answer.strip())
        if self.judge == "slow":
            await asyncio.sleep(5)
        if self.judge == "garbage":
            return web.json_response(_answer("judge", "I would say it is fine.", 300, 10))
        hard = "prove it" in prompt
        good = not (hard and answer.strip().startswith("cheap-there"))
        score = {"score": 0.95 if good else 0.05, "reason": "hidden truth"}
        return web.json_response(_answer("judge", orjson.dumps(score).decode(), 300, 25))

    @staticmethod
    async def _stream(request: web.Request, model: str, text: str) -> web.StreamResponse:
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        for piece in (text[:10], text[10:]):
            chunk = {"id": "c", "object": "chat.completion.chunk", "model": model,
                     "choices": [{"index": 0, "delta": {"content": piece}}]}
            await out.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        done = {"id": "c", "object": "chat.completion.chunk", "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await out.write(b"data: " + orjson.dumps(done) + b"\n\ndata: [DONE]\n\n")
        await out.write_eof()
        return out


def _answer(model: str, content: str, prompt_tokens: int, completion_tokens: int) -> dict:
    return {"id": "c1", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}}


@pytest.fixture
async def upstream():
    fake = Upstream()
    async with chat_server(fake.completions) as fake.url:
        yield fake


def judged_config(app_config: Config, upstream: Upstream, **judge) -> Config:
    doc = tomllib.loads((ROOT / "config.toml").read_text())
    doc["upstreams"] = {"fake": {"base_url": upstream.url}}
    doc["models"] = [
        {"name": "cheap", "provider": "test", "input_per_mtok": 0.1, "output_per_mtok": 0.4,
         "context_tokens": 100_000, "latency_ms": 1000, "upstream": "fake",
         "upstream_model": "cheap-there"},
        {"name": "strong", "provider": "test", "input_per_mtok": 5.0, "output_per_mtok": 20.0,
         "context_tokens": 100_000, "latency_ms": 1000, "upstream": "fake",
         "upstream_model": "strong-there"}]
    doc["judge"] = {"model": "strong", "sample_rate": 1.0, "young_rate": 1.0,
                    "accuracy": 1.0, "timeout_s": 0.5, **judge}
    return replace(parse(doc), storage=app_config.storage)


async def _stats(c) -> dict:
    return await (await c.get("/v1/stats")).json()


async def _judged(c, calls: int) -> dict:
    """/v1/stats once the judge has been called `calls` times (its calls run after the
    answer; waiting for each keeps the run deterministic)."""
    for _ in range(500):
        stats = await _stats(c)
        judge = stats["totals"]["judge"]
        # a call is tallied as it returns and its score once committed: wait for both
        if judge["calls"] >= calls and judge["scores"] + judge["failed"] >= judge["calls"]:
            return stats
        await asyncio.sleep(0.01)
    raise AssertionError(f"the judge was not called {calls} times: {stats['totals']['judge']}")


async def _ask(sdk, c, prompt: str, calls: int) -> str:
    raw = await sdk.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": prompt}])
    await _judged(c, calls)
    return raw.headers["x-routed-model"]


async def test_the_judge_alone_teaches_which_model_is_adequate_where(app_config, upstream,
                                                                    clock: FakeClock):
    config = judged_config(app_config, upstream)
    async with TestClient(TestServer(create_app(config, clock=clock))) as c, \
            openai.AsyncOpenAI(base_url=str(c.make_url("/v1")), api_key="unused",
                               max_retries=0) as sdk:
        chosen: dict[str, list[str]] = {"easy": [], "hard": []}
        for i in range(160):
            for kind, template in (("easy", EASY), ("hard", HARD)):
                clock.advance(1.0)
                calls = 2 * i + (1 if kind == "easy" else 2)
                chosen[kind].append(await _ask(sdk, c, template.format(i=i), calls))
        # the gateway's measurements commit in the background too: wait for the last one
        for _ in range(500):
            stats = await _stats(c)
            if stats["totals"]["feedback"] >= 320:
                break
            await asyncio.sleep(0.01)
    late = {kind: models[-60:] for kind, models in chosen.items()}
    # cheap is adequate for small talk and 50x cheaper; proofs need the strong model
    assert late["easy"].count("cheap") >= 45, late["easy"]
    assert late["hard"].count("strong") >= 45, late["hard"]
    judge = stats["totals"]["judge"]
    assert judge["calls"] == judge["scores"] == 320 and judge["failed"] == 0
    # the judge's own spend line: 300 tokens in and 25 out at the strong model's prices
    assert judge["spend_usd"] == pytest.approx(320 * (300 * 5e-6 + 25 * 20e-6))
    assert stats["totals"]["feedback"] == 320  # the gateway's measurements, no client's
    assert stats["totals"]["mean_quality"] is None  # no client ever sent a quality


async def test_a_streamed_answer_is_judged_from_the_text_that_was_streamed(
        app_config, upstream, clock):
    config = judged_config(app_config, upstream)
    async with TestClient(TestServer(create_app(config, clock=clock))) as c, \
            openai.AsyncOpenAI(base_url=str(c.make_url("/v1")), api_key="unused",
                               max_retries=0) as sdk:
        stream = await sdk.chat.completions.create(
            model="strong", stream=True, messages=[{"role": "user", "content": "hi"}])
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream
                        if chunk.choices])
        await _judged(c, 1)
    assert upstream.judged == [text] and text.startswith("strong-there says")


@pytest.mark.parametrize("judge", ["garbage", "slow"])
async def test_a_judge_that_times_out_or_answers_garbage_changes_nothing(
        app_config, upstream, clock, judge):
    upstream.judge = judge
    config = judged_config(app_config, upstream)
    async with TestClient(TestServer(create_app(config, clock=clock))) as c, \
            openai.AsyncOpenAI(base_url=str(c.make_url("/v1")), api_key="unused",
                               max_retries=0) as sdk:
        for i in range(5):
            await _ask(sdk, c, HARD.format(i=i), i + 1)
        stats = await _stats(c)
        arms = (await (await c.get("/v1/arms")).json())["arms"]
        metrics = await (await c.get("/metrics")).text()
    assert stats["totals"]["judge"]["failed"] == 5 and stats["totals"]["judge"]["scores"] == 0
    assert all(a["evidence"] == 0.0 for a in arms)  # no quality learned from it
    outcome = "unparsed" if judge == "garbage" else "timeout"
    assert f'bandit_router_judge_calls_total{{outcome="{outcome}"}} 5.0' in metrics


async def test_the_judge_stops_when_its_budget_is_spent(app_config, upstream, clock):
    one = 300 * 5e-6 + 25 * 20e-6
    config = judged_config(app_config, upstream, budget_usd=one * 2.5)
    async with TestClient(TestServer(create_app(config, clock=clock))) as c, \
            openai.AsyncOpenAI(base_url=str(c.make_url("/v1")), api_key="unused",
                               max_retries=0) as sdk:
        for i in range(3):
            await _ask(sdk, c, EASY.format(i=i), i + 1)
        for i in range(3):
            await sdk.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": EASY.format(i=10 + i)}])
        await asyncio.sleep(0)  # a judge that ran would need its upstream: none is pending
        stats = await _stats(c)
        metrics = await (await c.get("/metrics")).text()
    assert stats["totals"]["judge"]["calls"] == 3
    assert 'bandit_router_judge_calls_total{outcome="skipped_budget"} 3.0' in metrics


async def test_gateway_feedback_that_storage_fails_to_commit_is_counted(
        app_config, upstream, clock, monkeypatch):
    """No client waits for the gateway's own measurements, so a storage fault in them shows
    in /metrics (and the answer still reaches the caller)."""
    from bandit_router.http.appkeys import STORE
    from tests.waiting import eventually

    config = judged_config(app_config, upstream)
    async with TestClient(TestServer(create_app(config, clock=clock))) as c, \
            openai.AsyncOpenAI(base_url=str(c.make_url("/v1")), api_key="unused",
                               max_retries=0) as sdk:
        async def failing(*args, **kwargs):
            raise OSError("disk I/O error")
        monkeypatch.setattr(c.server.app[STORE], "record_feedback", failing)
        answer = await sdk.chat.completions.create(
            model="strong", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content.startswith("strong-there says")

        async def counted() -> bool:
            text = await (await c.get("/metrics")).text()
            return 'bandit_router_background_feedback_failed_total{kind="measured"} 1.0' in text
        await eventually(counted, "the lost measurement counted in /metrics")


async def test_with_explore_rate_alone_exactly_the_explorations_are_judged(
        app_config, upstream, clock: FakeClock):
    # the settled and young rates are 0: only an answer from a model other than the one the
    # router believed best for its request (its decision's favourite) may be judged
    config = judged_config(app_config, upstream, sample_rate=0.0, young_rate=0.0,
                           explore_rate=1.0)
    async with TestClient(TestServer(create_app(config, clock=clock))) as c, \
            openai.AsyncOpenAI(base_url=str(c.make_url("/v1")), api_key="unused",
                               max_retries=0) as sdk:
        engine = c.app[ENGINE]
        decided, decide = [], engine.decide
        engine.decide = lambda *a, **k: decided.append(decide(*a, **k)) or decided[-1]
        explored = 0
        for i in range(60):
            clock.advance(1.0)
            template = EASY if i % 2 else HARD
            model = await _ask(sdk, c, template.format(i=i), explored)
            d = decided[-1]
            assert model == d.model and d.favourite in ("cheap", "strong")
            if d.model != d.favourite:
                explored += 1
                await _judged(c, explored)  # its score counts before the next decision
        stats = await _judged(c, explored)
    assert 0 < explored < 60  # the router explored, and not always
    assert stats["totals"]["judge"]["calls"] == explored
    wanted = sorted(f"{d.model}-there" for d in decided if d.model != d.favourite)
    assert sorted(a.split(" ")[0] for a in upstream.judged) == wanted
