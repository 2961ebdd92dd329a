"""The load benchmark's baseline: a bare aiohttp app that only parses the JSON body and
answers a small JSON object. Whatever the router costs beyond this is the router's own.

It also answers `POST /v1/chat/completions` like a very fast OpenAI-compatible provider
(a short fixed completion with usage), so it serves as the gateway run's upstream and as
that run's baseline: the same calls sent to it directly.

Run: python -m bandit_router.bench.baseline_server --port 8801
"""

from __future__ import annotations

import argparse

import orjson
from aiohttp import web

_ANSWER = orjson.dumps({"ok": True, "model": "baseline"})


def _completion(model: str) -> bytes:
    return orjson.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "A short answer."}}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 4, "total_tokens": 124}})


async def _chat(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    return web.Response(body=_completion(str(body.get("model"))),
                        content_type="application/json")


async def _echo(request: web.Request) -> web.Response:
    orjson.loads(await request.read())
    return web.Response(body=_ANSWER, content_type="application/json")


def create_app() -> web.Application:
    app = web.Application(client_max_size=1_048_576)
    app.router.add_post("/v1/route", _echo)
    app.router.add_post("/v1/feedback", _echo)
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_get("/healthz", lambda _: web.json_response({"status": "ok"}))
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # The same event loop as the router's `serve` (asyncio's own), like for like.
    web.run_app(create_app(), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
