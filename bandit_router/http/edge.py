"""What every endpoint shares: reading a JSON body within its limits, the query and the
caller, and answering in JSON, errors included (the error middleware)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import structlog
from aiohttp import web

from bandit_router.core.errors import (
    RouterError,
    Unavailable,
    UnknownField,
)
from bandit_router.http.appkeys import (
    CONFIG,
    KEYS,
    METRICS,
)
from bandit_router.http.auth import Principal, authenticate
from bandit_router.http.errors import (
    BodyTimeout,
    BodyTooLarge,
    InvalidJson,
    UnreadableBody,
    UnsupportedMediaType,
    headers_of,
    status_of,
)
from bandit_router.storage.writer import StorageError

log = structlog.get_logger("bandit_router")


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def json_response(payload: Any, status: int = 200, **kwargs: Any) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status,
                        content_type="application/json", **kwargs)


def _error(status: int, code: str, message: str, field: str | None = None,
           **kwargs: Any) -> web.Response:
    return json_response({"error": {"code": code, "message": message, "field": field}},
                         status=status, **kwargs)


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    count = request.app[METRICS].error
    try:
        return await handler(request)
    except RouterError as exc:
        count(exc.code)
        response = json_response(exc.payload(), status=status_of(exc), headers=headers_of(exc))
        if isinstance(exc, UnreadableBody | BodyTimeout):
            response.force_close()  # the rest of the body is not worth waiting for
        return response
    except StorageError as exc:
        count(Unavailable.code)
        log.error("storage_unavailable", error=str(exc), path=request.path)
        return _error(503, Unavailable.code, f"storage unavailable: {exc}")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        count(code)
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return _error(exc.status, code, exc.reason, headers=headers)
    except Exception:
        count("internal")
        log.exception("internal_error", path=request.path)
        return _error(500, "internal", "internal error; the router keeps serving")


async def read_json(request: web.Request) -> Any:
    if request.content_type != "application/json" and not request.content_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"send the body as JSON with 'Content-Type: application/json' "
            f"(got {request.content_type!r})")
    server = request.app[CONFIG].server
    limit = server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(f"request body is {request.content_length} bytes; the limit "
                           f"(server.max_body_bytes) is {limit}")
    try:
        # a peer trickling its body would otherwise hold the handler (and memory) forever
        async with asyncio.timeout(server.body_timeout_s):
            body = await request.read()
    except TimeoutError as exc:
        raise BodyTimeout(f"the body did not arrive within {server.body_timeout_s:g} s "
                          "(server.body_timeout_s)") from exc
    except web.HTTPRequestEntityTooLarge as exc:
        raise BodyTooLarge(f"request body exceeds server.max_body_bytes ({limit})") from exc
    except (web.RequestPayloadError, ConnectionResetError) as exc:
        # the caller's fault, not ours: data that does not match its Content-Encoding, or a
        # body cut short by a client that hung up; a 400, not a 500 and a logged traceback
        raise UnreadableBody("the request body could not be read: it does not match its "
                             "Content-Encoding, or the connection closed before it "
                             "ended") from exc
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"body is not valid JSON: {exc}") from exc


def query_of(request: web.Request, allowed: set[str]) -> dict[str, str]:
    for key in request.query:
        if key not in allowed:
            raise UnknownField(f"unknown query parameter {key!r}; allowed: "
                               f"{', '.join(sorted(allowed))}", key)
    return {k: request.query[k] for k in allowed if k in request.query}


def caller_of(request: web.Request, scope: str | None) -> Principal:
    return authenticate(request.app[KEYS], request, scope)
