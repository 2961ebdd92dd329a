"""Errors a caller can cause, by what went wrong; each has the JSON code it answers with.

The HTTP status each maps to lives in one table at the edge (http/errors.py), so the core
knows nothing of HTTP."""

from __future__ import annotations


class RouterError(Exception):
    code = "invalid_request"

    def __init__(self, message: str, field: str | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.retry_after_s = retry_after_s  # when asking again may succeed (a budget renews)

    def payload(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}



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
    code = "no_eligible_model"


class RouteNotFound(RouterError):
    code = "unknown_route_id"


class FactConflict(RouterError):
    code = "duplicate_fact"


class IdempotencyConflict(RouterError):
    code = "idempotency_conflict"


class Unavailable(RouterError):
    code = "unavailable"


class BudgetExhausted(RouterError):
    """A budget with `when_spent = "refuse"` is spent for its current window."""

    code = "budget_exhausted"
