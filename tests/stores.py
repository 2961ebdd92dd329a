"""Stores for tests that run against every backend: a fresh SQLite file, or a fresh
PostgreSQL database on a real server (created per test, dropped afterwards).

The PostgreSQL server is $BANDIT_ROUTER_TEST_POSTGRES (default: the machine's own, on
127.0.0.1:5432 as user postgres). Where none answers, its tests skip with that reason;
`.ci/run` starts one and sets BANDIT_ROUTER_REQUIRE_POSTGRES=1, which turns the skip into
a failure.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from bandit_router.bench.scaleout import admin_sql
from bandit_router.core.location import locate

SERVER = os.environ.get("BANDIT_ROUTER_TEST_POSTGRES",
                        "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", "postgresql"]


def off_loop(fn: Callable, *args):
    """Run blocking asyncpg work on a thread of its own (tests already run a loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


def _admin(sql: str) -> None:
    off_loop(admin_sql, SERVER, sql)


def _database_url(name: str) -> str:
    return urlunsplit(urlsplit(SERVER)._replace(path=f"/{name}"))


def postgres_or_skip() -> None:
    try:
        _admin("SELECT 1")
    except Exception as exc:
        reason = f"no PostgreSQL server at {SERVER}: {exc}"
        if os.environ.get("BANDIT_ROUTER_REQUIRE_POSTGRES"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """A factory: `store_url(name)` is the URL of a new, empty store of this backend."""
    if request.param == "sqlite":
        yield lambda name: str(tmp_path / f"{name}.db")
        return
    postgres_or_skip()
    created: list[str] = []

    def new(name: str) -> str:
        created.append(create_database(name))
        return created[-1]

    yield new
    for url in created:
        drop_database(url)


def create_database(name: str) -> str:
    """A new, empty PostgreSQL database's URL."""
    database = f"br_test_{name}_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{database}"')
    return _database_url(database)


def drop_database(url: str) -> None:
    database = urlsplit(url).path.lstrip("/")
    _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def rows(url: str, sql: str) -> list[tuple]:
    location = locate(url)
    if location.kind == "sqlite":
        with sqlite3.connect(location.target) as db:
            return db.execute(sql).fetchall()
    from bandit_router.storage.postgres import PgDatabase

    def read() -> list[tuple]:
        db = PgDatabase(location.target)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()

    return off_loop(read)


def count_rows(url: str, sql: str) -> int:
    return rows(url, sql)[0][0]
