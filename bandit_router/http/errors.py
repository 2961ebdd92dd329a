"""Every error the API answers, in one table: its class, its HTTP status, what it means.

Domain errors come from the core (core/errors.py, core/catalog_changes.py) and know no HTTP;
the errors only the edge can meet (a key, a body, an upstream) are defined here. The error
middleware, the gateway and the OpenAPI document all read this table."""

from __future__ import annotations

from typing import NamedTuple

from bandit_router.core.catalog_changes import LastEnabledModel, ModelExists, ModelNotFound
from bandit_router.core.errors import (
    BudgetExhausted,
    FactConflict,
    IdempotencyConflict,
    InvalidField,
    MissingField,
    NoEligibleModel,
    RouteNotFound,
    RouterError,
    Unavailable,
    UnknownBucket,
    UnknownField,
    UnknownModel,
    UnknownPolicy,
    UnknownUpstream,
)


class InvalidJson(RouterError):
    code = "invalid_json"


class UnreadableBody(InvalidJson):
    """The body could not be read to its end, so the connection cannot carry another
    request: the answer closes it."""


class UnsupportedMediaType(RouterError):
    code = "unsupported_media_type"


class BodyTooLarge(RouterError):
    code = "body_too_large"


class BodyTimeout(RouterError):
    """The body did not arrive within server.body_timeout_s of its headers."""

    code = "request_timeout"


class Unauthorized(RouterError):
    code = "unauthorized"


class Forbidden(RouterError):
    code = "forbidden"


class NoUpstream(RouterError):
    """A gateway call for a model (and fallbacks) with no upstream declared."""

    code = "no_upstream"


class Entry(NamedTuple):
    error: type[RouterError]
    status: int


TABLE: tuple[Entry, ...] = (
    Entry(RouterError, 400),
    Entry(InvalidJson, 400),
    Entry(UnreadableBody, 400),
    Entry(InvalidField, 400),
    Entry(MissingField, 400),
    Entry(UnknownField, 400),
    Entry(UnknownPolicy, 400),
    Entry(UnknownBucket, 400),
    Entry(UnknownModel, 400),
    Entry(UnknownUpstream, 400),
    Entry(NoUpstream, 400),
    Entry(Unauthorized, 401),
    Entry(Forbidden, 403),
    Entry(RouteNotFound, 404),
    Entry(ModelNotFound, 404),
    Entry(BodyTimeout, 408),
    Entry(FactConflict, 409),
    Entry(IdempotencyConflict, 409),
    Entry(ModelExists, 409),
    Entry(LastEnabledModel, 409),
    Entry(BodyTooLarge, 413),
    Entry(UnsupportedMediaType, 415),
    Entry(NoEligibleModel, 422),
    Entry(BudgetExhausted, 429),
    Entry(Unavailable, 503),
)
_STATUS = {e.error: e.status for e in TABLE}


def status_of(exc: RouterError) -> int:
    """The status of the nearest class in the table (a subclass answers as its parent)."""
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 400


def headers_of(exc: RouterError) -> dict[str, str] | None:
    if exc.retry_after_s is None:
        return None
    return {"Retry-After": str(max(1, round(exc.retry_after_s)))}
