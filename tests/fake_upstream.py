"""A real HTTP server speaking the chat-completions protocol, standing in for an LLM
provider (the one thing outside the project the tests replace). Its behaviour is chosen by
the model name it is sent; `up-flaky` does whatever `flaky` is set to, so one gateway
process can meet every kind of broken answer in turn."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

UPSTREAM_KEY = "sk-upstream-secret-abcdefghijklmnop"
CHUNK_GAP_S = 0.25
CHUNKS = ["The ", "answer ", "is ", "forty-", "two."]
BASE = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1}


def answer(model: str) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "".join(CHUNKS)}}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}


def event(model: str, piece: str) -> bytes:
    chunk = {**BASE, "model": model,
             "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


class FakeUpstream:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.cancelled = threading.Event()
        self.bad_keys = 0
        self.flaky = "ok"  # what up-flaky does (see _flaky)
        self.sent_bytes = 0  # bytes of the last endless answer written before the peer left
        self.first_chunk_read = threading.Event()  # set by a test: up-ok sends the rest
        self.gate_chunks = False  # up-ok streams hold after the first chunk until that event
        self.gate_timed_out = False
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        runner = web.AppRunner(app, handler_cancellation=True)
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
        if model == "up-flaky":
            return await self._flaky(request, model)
        if model == "up-forever":
            return await self._forever(request, model)
        if body.get("stream"):
            return await self._stream(request, body)
        return web.json_response(answer(model))

    async def _stream(self, request: web.Request, body: dict) -> web.StreamResponse:
        out = await self._open(request)
        for i, piece in enumerate(CHUNKS):
            await out.write(event(body["model"], piece))
            if i == 0 and self.gate_chunks:
                released = await self.loop.run_in_executor(None, self.first_chunk_read.wait,
                                                            30)
                self.gate_timed_out = not released
            else:
                await asyncio.sleep(CHUNK_GAP_S)
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {**BASE, "model": body["model"], "choices": [],
                     "usage": {"prompt_tokens": 11, "completion_tokens": 5,
                               "total_tokens": 16}}
            await out.write(b"data: " + orjson.dumps(usage) + b"\n\n")
        await out.write(b"data: [DONE]\n\n")
        await out.write_eof()
        return out

    @staticmethod
    async def _open(request: web.Request) -> web.StreamResponse:
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        return out

    async def _forever(self, request: web.Request, model: str) -> web.StreamResponse:
        """A stream that never ends by itself (a long generation)."""
        out = await self._open(request)
        while True:
            await out.write(event(model, "more "))
            await asyncio.sleep(0.1)

    async def _endless(self, out: web.StreamResponse, head: bytes, filler: bytes) -> None:
        self.sent_bytes = 0
        await out.write(head)
        try:
            for _ in range(4096):  # 256 MiB at most, should the peer never hang up
                await out.write(filler)
                self.sent_bytes += len(filler)
        except (ConnectionError, asyncio.CancelledError):
            pass

    async def _flaky(self, request: web.Request, model: str) -> web.StreamResponse:
        kind = self.flaky
        if kind == "list":
            return web.json_response([answer(model)])
        if kind == "usage-string":
            return web.json_response({**answer(model), "usage": "lots"})
        if kind == "not-json":
            return web.Response(text="<html>gateway timeout</html>", content_type="text/html")
        out = await self._open(request)
        filler = b"a" * 65_536
        if kind == "huge":  # a non-streamed answer that never ends
            await self._endless(out, b'{"choices": [{"message": {"content": "', filler)
        elif kind == "endless-line":
            await self._endless(out, b'data: {"choices": [{"delta": {"content": "', filler)
        elif kind == "bad-first-event":
            await out.write(b"data: [1, 2, 3]\n\n")
        elif kind in ("bad-later-event", "long-later-line", "error-later"):
            await out.write(event(model, "The ") + event(model, "answer "))
            await out.write({"bad-later-event": b'data: "not an object"\n\n',
                             "long-later-line": b"data: " + b"x" * 600_000 + b"\n\n",
                             "error-later": b'data: {"error": {"message": "overloaded"}}\n\n',
                             }[kind])
            await out.write(event(model, "is lost"))
        elif kind != "empty-stream":
            raise AssertionError(f"unknown flaky behaviour {kind!r}")
        await out.write_eof()
        return out

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@contextlib.asynccontextmanager
async def chat_server(completions: Callable[[web.Request], Awaitable[web.StreamResponse]],
                      ) -> AsyncIterator[str]:
    """An OpenAI-style provider on a loopback port, in the test's own loop, whose
    /v1/chat/completions is `completions`; yields its base URL (ending in /v1)."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    async with TestServer(app) as server:
        yield str(server.make_url("/v1"))

