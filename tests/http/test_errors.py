"""The error table: every error the package defines answers with a status from one place."""

from __future__ import annotations

import importlib
import pkgutil

import bandit_router
from bandit_router.core.errors import BudgetExhausted, RouterError
from bandit_router.http import errors


def _all_error_classes() -> set[type[RouterError]]:
    for module in pkgutil.walk_packages(bandit_router.__path__, "bandit_router."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    out, todo = set(), [RouterError]
    while todo:
        cls = todo.pop()
        out.add(cls)
        todo.extend(cls.__subclasses__())
    return out


def test_every_error_class_is_in_the_table_once():
    listed = [entry.error for entry in errors.TABLE]
    assert len(listed) == len(set(listed))
    missing = {c.__qualname__ for c in _all_error_classes() - set(listed)}
    assert not missing, f"errors with no status in http/errors.py: {sorted(missing)}"


def test_codes_are_unique_across_the_table():
    codes = [entry.error.code for entry in errors.TABLE if entry.error is not errors.UnreadableBody]
    assert len(codes) == len(set(codes))


def test_a_status_is_only_4xx_or_5xx():
    assert all(400 <= entry.status < 600 for entry in errors.TABLE)


def test_retry_after_is_whole_seconds_and_at_least_one():
    assert errors.headers_of(BudgetExhausted("spent", retry_after_s=0.2)) == {"Retry-After": "1"}
    assert errors.headers_of(BudgetExhausted("spent", retry_after_s=3600.4)) == {
        "Retry-After": "3600"}
    assert errors.headers_of(RouterError("no hint")) is None


def test_the_core_errors_know_no_http():
    from bandit_router.core import errors as core_errors

    assert not hasattr(core_errors.RouterError, "status")
    assert not hasattr(core_errors.RouterError("x"), "headers")
