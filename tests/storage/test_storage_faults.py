"""Storage faults: a read-only, full, corrupted or locked database file.

At start, each gives a clear error naming the file and exit code 2. While serving, feedback
is answered 503 `unavailable` with the reason, routing goes on, /healthz says "degraded"
with the reason, nothing is acknowledged that was not committed, and the service recovers
by itself once the fault is gone.

How each fault is made real:
- read-only: `chattr +i` (immutable: refuses writes even to root, which ignores file modes;
  the tests run as root) when available, else chmod for a non-root user. A file that turns
  read-only while served is made so with chattr +i on its write-ahead log (an open
  descriptor ignores a later chmod, so without chattr that test is skipped).
- full: SQLite's `PRAGMA max_page_count` on the writer's connection, which fails writes with
  the same SQLITE_FULL ("database or disk is full") a full disk gives.
- corrupted: garbage bytes, a zeroed header, a truncated file.
- locked: another process holds `BEGIN IMMEDIATE` on the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bandit_router.http.app import create_app
from bandit_router.http.appkeys import STORE
from bandit_router.storage import store as store_module
from bandit_router.storage.rebuild import rebuild
from bandit_router.storage.store import connect

ROOT = Path(__file__).resolve().parents[2]


# --- helpers -----------------------------------------------------------------------------

def _command() -> list[str]:
    script = Path(sys.executable).parent / "bandit-router"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bandit_router"]


def _chattr_works(tmp: Path) -> bool:
    if shutil.which("chattr") is None:
        return False
    probe = tmp / "chattr-probe"
    probe.write_text("x")
    try:
        if subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode != 0:
            return False
        try:
            probe.write_text("y")
        except PermissionError:
            return True
        return False
    finally:
        subprocess.run(["chattr", "-i", str(probe)], capture_output=True)


@pytest.fixture
def chattr(tmp_path: Path) -> bool:
    return _chattr_works(tmp_path)


@contextlib.contextmanager
def read_only(path: Path, chattr: bool) -> Iterator[None]:
    """Make `path` (a file or a directory) refuse writes, for root too when chattr works."""
    if chattr:
        subprocess.run(["chattr", "+i", str(path)], check=True)
    elif os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
    else:
        pytest.skip("running as root without a working chattr: cannot make a file read-only")
    try:
        yield
    finally:
        if chattr:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        else:
            path.chmod(mode)


def make_db(path: Path) -> None:
    """A migrated database, closed cleanly (no -wal or -shm file left)."""
    db = connect(str(path))
    db.conn.close()
    assert not Path(f"{path}-wal").exists()


def serve(config: Path, db: Path) -> subprocess.CompletedProcess:
    """`bandit-router serve` that is expected to fail at start."""
    return subprocess.run([*_command(), "serve", "--config", str(config), "--db", str(db),
                           "--port", "0"], capture_output=True, text=True, timeout=60)


@contextlib.asynccontextmanager
async def serving(config):
    async with TestClient(TestServer(create_app(config)),
                          connector=aiohttp.TCPConnector(limit=0)) as client:
        yield client


async def route(client) -> str:
    resp = await client.post("/v1/route", json={"prompt": "What is the capital of France?"})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["route_id"]


async def feedback(client, route_id: str, quality: float = 0.75) -> tuple[int, dict]:
    resp = await client.post("/v1/feedback", json={"route_id": route_id, "quality": quality})
    return resp.status, await resp.json()


async def health(client) -> tuple[int, dict]:
    resp = await client.get("/healthz")
    return resp.status, await resp.json()


def stored_routes(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {r[0] for r in conn.execute("SELECT route_id FROM feedback")}
    finally:
        conn.close()


def agrees_with_rebuild(config, db: Path) -> bool:
    database = connect(str(db))
    try:
        return rebuild(database, config, write=False).differing == []
    finally:
        database.conn.close()


class Pragma:
    """A job for the writer thread: one PRAGMA on its connection."""

    refusable = False

    def __init__(self, sql: str) -> None:
        self.sql = sql

    def run(self, db):
        return db.execute(self.sql).fetchone()


async def on_writer(client, sql: str):
    return await asyncio.wrap_future(client.app[STORE]._writer.submit(Pragma(sql)))


# --- read-only ---------------------------------------------------------------------------

def test_a_read_only_file_fails_at_start_naming_it(tmp_path: Path, chattr: bool):
    db = tmp_path / "router.db"
    make_db(db)
    with read_only(db, chattr):
        proc = serve(ROOT / "config.toml", db)
    assert proc.returncode == 2, proc.stderr
    assert str(db) in proc.stderr
    assert "readonly" in proc.stderr and "must be writable" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_read_only_directory_fails_at_start_naming_the_file(tmp_path: Path, chattr: bool):
    folder = tmp_path / "data"
    folder.mkdir()
    db = folder / "router.db"
    make_db(db)
    with read_only(folder, chattr):  # SQLite cannot create router.db-wal next to it
        proc = serve(ROOT / "config.toml", db)
    assert proc.returncode == 2, proc.stderr
    assert str(db) in proc.stderr
    assert "unable to open database file" in proc.stderr and "directory" in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_a_file_turning_read_only_while_serving_gives_503_then_recovers(
        app_config, db_path: str, chattr: bool):
    if not chattr:
        pytest.skip("needs chattr +i: an open file ignores a later chmod")
    db = Path(db_path)
    async with serving(app_config) as c:
        before = await route(c)
        assert (await feedback(c, before))[0] == 200
        wal = Path(f"{db}-wal")
        assert wal.exists()
        ids = [await route(c) for _ in range(5)]
        with read_only(wal, chattr):
            refused = []
            for rid in ids:
                status, body = await feedback(c, rid)
                assert status == 503, body
                assert body["error"]["code"] == "unavailable"
                assert "disk I/O error" in body["error"]["message"] or \
                    "readonly" in body["error"]["message"], body
                refused.append(rid)
            assert await route(c)  # routing goes on
            status, h = await health(c)
            assert status == 200 and h["status"] == "degraded" and h["storage"] == "failing"
            assert h["storage_error"]
            assert stored_routes(db) == {before}  # nothing refused was written
        # the fault is gone: the writer reconnects, the same feedback is taken
        for rid in refused:
            assert (await feedback(c, rid))[0] == 200
        status, h = await health(c)
        assert (status, h["status"], h["storage"], h["storage_error"]) == (200, "ok", "ok", None)
        assert c.app[STORE]._writer.reopens >= 1
    assert stored_routes(db) == {before, *refused}
    assert agrees_with_rebuild(app_config, db)


# --- full --------------------------------------------------------------------------------

async def test_a_full_database_gives_503_acknowledges_only_what_it_committed_then_recovers(
        app_config, db_path: str):
    db = Path(db_path)
    async with serving(app_config) as c:
        assert (await feedback(c, await route(c)))[0] == 200
        (pages,) = await on_writer(c, "PRAGMA page_count")
        assert (await on_writer(c, f"PRAGMA max_page_count = {pages}"))[0] == pages
        acked, refused = [], []
        for _ in range(400):  # until the file would have to grow
            rid = await route(c)
            status, body = await feedback(c, rid)
            if status == 200:
                acked.append(rid)
                continue
            assert status == 503, body
            assert body["error"]["code"] == "unavailable"
            assert "database or disk is full" in body["error"]["message"]
            refused.append(rid)
            if len(refused) == 3:
                break
        assert len(refused) == 3, "the page limit never filled the database"
        status, h = await health(c)
        assert status == 200 and h["status"] == "degraded"
        assert "full" in h["storage_error"]
        assert await route(c)
        stored = stored_routes(db)
        assert set(acked) <= stored and not set(refused) & stored
        # space again: the refused feedback is taken
        await on_writer(c, "PRAGMA max_page_count = 1073741823")
        for rid in refused:
            assert (await feedback(c, rid))[0] == 200
        assert (await health(c))[1]["status"] == "ok"
        assert c.app[STORE].healthy
    assert set(acked) | set(refused) <= stored_routes(db)
    assert agrees_with_rebuild(app_config, db)


# --- corrupted ---------------------------------------------------------------------------

def _garbage(data: bytes) -> bytes:
    return os.urandom(len(data))


def _zeroed_header(data: bytes) -> bytes:
    return bytes(100) + data[100:]


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.mark.parametrize("damage", [_garbage, _zeroed_header, _truncated],
                         ids=["garbage", "zeroed-header", "truncated"])
def test_a_corrupted_file_fails_at_start_naming_it_and_is_left_alone(tmp_path: Path, damage):
    db = tmp_path / "router.db"
    make_db(db)
    damaged = damage(db.read_bytes())
    db.write_bytes(damaged)
    proc = serve(ROOT / "config.toml", db)
    assert proc.returncode == 2, proc.stderr
    assert str(db) in proc.stderr
    assert "not a database" in proc.stderr or "malformed" in proc.stderr
    assert "restore it from a backup" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert db.read_bytes() == damaged  # never "repaired" into an empty database
    check = subprocess.run([*_command(), "rebuild", "--check", "--db", str(db)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 2 and str(db) in check.stderr


# --- locked ------------------------------------------------------------------------------

LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


async def test_a_locked_database_gives_503_after_the_busy_timeout_then_recovers(
        app_config, db_path: str, monkeypatch):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 1.0)
    db = Path(db_path)
    async with serving(app_config) as c:
        first = await route(c)
        assert (await feedback(c, first))[0] == 200
        locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(db)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert locker.stdout.readline().strip() == "locked"
            rid = await route(c)
            # SQLite says "database is locked" only once the busy timeout has passed
            status, body = await asyncio.wait_for(feedback(c, rid), 30)
            assert status == 503, body
            assert body["error"]["code"] == "unavailable"
            assert "database is locked" in body["error"]["message"]
            assert (await health(c))[1]["storage_error"] == "database is locked"
            assert rid not in stored_routes(db)
        finally:
            locker.communicate("", timeout=30)  # releases the lock
        assert locker.returncode == 0
        assert (await feedback(c, rid))[0] == 200
        assert (await health(c))[1]["status"] == "ok"
    assert stored_routes(db) == {first, rid}
    assert agrees_with_rebuild(app_config, db)


async def test_a_lock_released_within_the_busy_timeout_is_simply_waited_for(
        app_config, db_path: str, monkeypatch):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 60.0)  # longer than this test
    async with serving(app_config) as c:
        rid = await route(c)
        locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(db_path)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert locker.stdout.readline().strip() == "locked"
            waiting = asyncio.create_task(feedback(c, rid))
            # while the write waits for the lock, routes and /healthz are answered
            for _ in range(10):
                await route(c)
            assert (await health(c))[0] == 200
            assert not waiting.done()  # it cannot commit while the lock is held
        finally:
            locker.communicate("", timeout=30)  # released: the waiting write goes on
        status, body = await asyncio.wait_for(waiting, 30)
        assert status == 200, body
    assert stored_routes(Path(db_path)) == {rid}

