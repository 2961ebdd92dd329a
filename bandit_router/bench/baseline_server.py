"""The load benchmark's baseline: a bare aiohttp app that only parses the JSON body and
answers a small JSON object. Whatever the router costs beyond this is the router's own.

Run: python -m bandit_router.bench.baseline_server --port 8801
"""

from __future__ import annotations

import argparse

import orjson
from aiohttp import web

_ANSWER = orjson.dumps({"ok": True, "model": "baseline"})


async def _echo(request: web.Request) -> web.Response:
    orjson.loads(await request.read())
    return web.Response(body=_ANSWER, content_type="application/json")


def create_app() -> web.Application:
    app = web.Application(client_max_size=1_048_576)
    app.router.add_post("/v1/route", _echo)
    app.router.add_post("/v1/feedback", _echo)
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
