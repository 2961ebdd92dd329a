"""Migrations against concurrent starters: several processes opening one fresh store at the
same moment (two `serve` processes started together, or replicas) all succeed, and the
schema is migrated exactly once."""

from __future__ import annotations

import multiprocessing

import pytest
from sqlite_utils import Database

from bandit_router.storage.store import connect_for_writing
from tests.stores import BACKENDS, rows

OPENERS = 4


def _open(url: str, barrier, results) -> None:
    barrier.wait()  # every process starts migrating at the same moment
    try:
        connect_for_writing(url).conn.close()
        results.put("ok")
    except Exception as exc:
        results.put(f"{type(exc).__name__}: {exc}")


def _known(postgres: bool) -> list[str]:
    if postgres:
        from bandit_router.storage.postgres import MIGRATIONS

        return list(MIGRATIONS)
    from bandit_router.storage.migrations import migrations

    return [m.name for m in migrations.pending(Database(memory=True))]


def _race(url: str) -> list[str]:
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(OPENERS), context.Queue()
    openers = [context.Process(target=_open, args=(url, barrier, results))
               for _ in range(OPENERS)]
    for p in openers:
        p.start()
    outcomes = [results.get(timeout=60) for _ in openers]
    for p in openers:
        p.join(60)
    return outcomes


@pytest.mark.parametrize("rounds", [8])
def test_processes_opening_a_fresh_store_together_all_start(store_url, rounds: int,
                                                            request) -> None:
    # Without the lock, four SQLite openers failed in every round here ("database is
    # locked" or "duplicate column name: recent_pos"); PostgreSQL migrates under its
    # advisory lock already, and is held to the same.
    postgres = request.node.callspec.params["store_url"] == BACKENDS[1]
    for i in range(2 if postgres else rounds):
        url = store_url(f"race{i}")
        assert _race(url) == ["ok"] * OPENERS
        table = "schema_migrations" if postgres else "_sqlite_migrations"
        names = [r[0] for r in rows(url, f"SELECT name FROM {table}")]
        assert sorted(names) == sorted(_known(postgres))  # each migration applied once
