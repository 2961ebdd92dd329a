"""Errors a caller can cause, each with the HTTP status and JSON code it maps to."""

from __future__ import annotations


class RouterError(Exception):
    status = 400
    code = "invalid_request"

    def __init__(self, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.headers = headers  # extra response headers (e.g. Retry-After)

    def payload(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


class InvalidJson(RouterError):
    code = "invalid_json"


class InvalidField(RouterError):
    code = "invalid_field"


class MissingField(RouterError):
    code = "missing_field"


class UnknownField(RouterError):
    code = "unknown_field"


class UnknownPolicy(RouterError):
    code = "unknown_policy"


class UnknownBucket(RouterError):
    code = "unknown_bucket"


class UnknownModel(RouterError):
    code = "unknown_model"


class UnknownUpstream(RouterError):
    code = "unknown_upstream"


class NoEligibleModel(RouterError):
    status = 422
    code = "no_eligible_model"


class RouteNotFound(RouterError):
    status = 404
    code = "unknown_route_id"


class FactConflict(RouterError):
    status = 409
    code = "duplicate_fact"


class IdempotencyConflict(RouterError):
    status = 409
    code = "idempotency_conflict"


class Unavailable(RouterError):
    status = 503
    code = "unavailable"


class UnsupportedMediaType(RouterError):
    status = 415
    code = "unsupported_media_type"


class BodyTooLarge(RouterError):
    status = 413
    code = "body_too_large"


class BudgetExhausted(RouterError):
    """A budget with `when_spent = "refuse"` is spent for its current window."""

    status = 429
    code = "budget_exhausted"


class BodyTimeout(RouterError):
    """The body did not arrive within server.body_timeout_s of its headers."""

    status = 408
    code = "request_timeout"
