"""`bandit-router migrate-store FROM TO`: SQLite to PostgreSQL and back, losing nothing."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from bandit_router.bench.launch import command
from bandit_router.core.settings import Config
from bandit_router.core.types import Facts, RouteTicket
from bandit_router.storage.store import Store, read_arms, read_log
from tests.stores import create_database, drop_database, off_loop, postgres_or_skip

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("gpt-5-nano", "gpt-5-mini", "gpt-5")


def _migrate(source: str, target: str) -> subprocess.CompletedProcess:
    return subprocess.run([*command(), "migrate-store", source, target, "--config",
                           str(ROOT / "config.toml")], capture_output=True, text=True,
                          timeout=120)


async def _fill(config: Config, url: str, n: int) -> None:
    """n feedback messages (every other one with an idempotency key) and a reset."""
    store = Store(config, path=url)
    await store.open(publish=lambda changes: None)
    for i in range(n):
        ticket = RouteTicket("default", "chat:low", MODELS[i % 3], 0.0, 10, f"n{i}")
        await store.record_feedback(f"route-{i}", ticket,
                                    Facts(quality=(i % 4) / 4, output_tokens=50 + i),
                                    idempotency_key=f"k{i}" if i % 2 else None)
    await store.reset("default", model=MODELS[2])
    await store.close()


def _contents(url: str) -> tuple:
    from bandit_router.storage.store import connect

    def read():
        db = connect(url)
        try:
            key = db.execute("SELECT value FROM meta WHERE key = 'route_key'").fetchone()[0]
            log = [(fid, e.route_id, e.facts, e.at, spend) for fid, e, spend in read_log(db)]
            idem = db.execute("SELECT tenant, key, response FROM idempotency "
                              "ORDER BY key").fetchall()
            usage = db.execute("SELECT tenant, policy, bucket, model, hour, spend_usd, "
                               "quality_n FROM usage ORDER BY model, hour").fetchall()
            return bytes(key), log, read_arms(db), idem, usage
        finally:
            db.conn.close()
    return off_loop(read)


@pytest.fixture
def pg_config(config: Config) -> Config:
    return replace(config, storage=replace(config.storage, sync_interval_ms=50))


@pytest.fixture
def pg_url():
    postgres_or_skip()
    url = create_database("migrate")
    yield url
    drop_database(url)


async def test_sqlite_to_postgresql_and_back_copies_everything(pg_config, tmp_path, pg_url):
    sqlite_url = str(tmp_path / "router.db")
    await _fill(pg_config, sqlite_url, 40)
    done = _migrate(sqlite_url, pg_url)
    assert done.returncode == 0, done.stdout + done.stderr
    # 40 messages and the reset's one per arm
    assert "feedback: 41 rows copied" in done.stdout and "equals" in done.stdout
    original = _contents(sqlite_url)
    assert _contents(pg_url) == original

    # the copy is a working store: new feedback gets new ids, after the copied ones
    store = Store(pg_config, path=pg_url)
    loaded = await store.open(publish=lambda changes: None)
    assert loaded.route_key == original[0]  # route_ids handed out before still verify
    result = await store.record_feedback(
        "route-new", RouteTicket("default", "chat:low", MODELS[0], 0.0, 10, "x"),
        Facts(quality=1.0))
    await store.close()
    assert result.feedback_id > max(fid for fid, *_ in original[1])

    back = str(tmp_path / "back.db")
    done = _migrate(pg_url, back)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _contents(back)[1] == _contents(pg_url)[1]


async def test_the_target_must_be_empty(pg_config, tmp_path):
    a, b = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    await _fill(pg_config, a, 3)
    await _fill(pg_config, b, 1)
    done = _migrate(a, b)
    assert done.returncode == 2 and "not empty" in done.stderr
    assert len(_contents(b)[1]) == 1  # untouched


def test_a_bad_url_is_a_clear_error(tmp_path):
    done = _migrate("mysql://x/y", str(tmp_path / "b.db"))
    assert done.returncode == 2 and "sqlite:// or postgresql://" in done.stderr
