"""Stores for tests that run against every backend: a fresh SQLite file, or a fresh
PostgreSQL database on the machine's server (created per test, dropped afterwards)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bandit_router.backend import locate

BACKENDS = ["sqlite"]


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """A factory: `store_url(name)` is the URL of a new, empty store of this backend."""
    yield lambda name: str(tmp_path / f"{name}.db")


def rows(url: str, sql: str) -> list[tuple]:
    location = locate(url)
    with sqlite3.connect(location.target) as db:
        return db.execute(sql).fetchall()


def count_rows(url: str, sql: str) -> int:
    return rows(url, sql)[0][0]
