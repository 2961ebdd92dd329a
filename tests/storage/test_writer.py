"""The storage writer: one thread, group commit, a refused job leaves no trace, and a failed
commit fails every job of its batch (none acknowledged)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlite_utils import Database

from bandit_router.core.errors import FactConflict
from bandit_router.storage.writer import StorageError, Writer


class Insert:
    refusable = False

    def __init__(self, value: int) -> None:
        self.value = value

    def run(self, db: Database) -> int:
        db.conn.execute("INSERT INTO t (v) VALUES (?)", [self.value])
        return self.value


class Hold:
    """Holds the writer until `gate` opens, so the jobs submitted meanwhile queue up behind
    it and are taken as one batch (whether or not this job is in it)."""

    refusable = False

    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate

    def run(self, db: Database) -> None:
        self.gate.wait(5)


class InsertThenRefuse:
    refusable = True

    def run(self, db: Database) -> None:
        db.conn.execute("INSERT INTO t (v) VALUES (-1)")
        raise FactConflict("already counted", "quality")


class Explode:
    refusable = False

    def run(self, db: Database) -> None:
        db.conn.execute("INSERT INTO missing_table VALUES (1)")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "w.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (v INTEGER)")
    return path


@pytest.fixture
def writer(db_path: Path):
    w = Writer(lambda: Database(sqlite3.connect(db_path, check_same_thread=False,
                                                isolation_level=None)), max_batch=64)
    w.start().result(5)
    yield w
    w.stop()


def _rows(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT v FROM t ORDER BY rowid")]


def test_queued_jobs_commit_together_in_order(writer: Writer, db_path: Path):
    gate = threading.Event()
    writer.submit(Hold(gate))
    futures = [writer.submit(Insert(i)) for i in range(10)]
    gate.set()
    assert [f.result(5) for f in futures] == list(range(10))
    assert _rows(db_path) == list(range(10))
    assert writer.commits <= 2  # the hold (maybe alone), then the ten queued behind it at once


def test_a_refused_job_leaves_no_trace_and_its_batch_commits(writer: Writer, db_path: Path):
    gate = threading.Event()
    writer.submit(Hold(gate))
    futures = [writer.submit(Insert(1)), writer.submit(InsertThenRefuse()),
               writer.submit(Insert(2))]
    gate.set()
    assert futures[0].result(5) == 1 and futures[2].result(5) == 2
    with pytest.raises(FactConflict):
        futures[1].result(5)
    assert _rows(db_path) == [1, 2]


def test_a_failed_commit_fails_every_job_of_its_batch(writer: Writer, db_path: Path):
    gate = threading.Event()
    writer.submit(Hold(gate))
    futures = [writer.submit(Insert(1)), writer.submit(Explode()),
               writer.submit(Insert(2))]
    gate.set()
    for f in futures:
        with pytest.raises(StorageError):
            f.result(5)
    assert _rows(db_path) == []
    assert writer.failing and "missing_table" in (writer.last_error or "")
    assert writer.submit(Insert(3)).result(5) == 3  # the writer goes on
    assert not writer.failing and _rows(db_path) == [3]


def test_stop_commits_what_is_queued(db_path: Path):
    w = Writer(lambda: Database(sqlite3.connect(db_path, check_same_thread=False,
                                                isolation_level=None)), max_batch=8)
    w.start().result(5)
    futures = [w.submit(Insert(i)) for i in range(20)]
    w.stop()
    assert all(f.done() and f.exception() is None for f in futures)
    assert _rows(db_path) == list(range(20))
    assert not w.alive


def test_an_opener_that_fails_is_reported_by_start(tmp_path: Path):
    def fail() -> Database:
        raise sqlite3.OperationalError("unable to open database file")

    w = Writer(fail, max_batch=8)
    with pytest.raises(sqlite3.OperationalError):
        w.start().result(5)
