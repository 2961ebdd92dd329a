"""One thread that owns the store's connection (SQLite, or PostgreSQL through
`postgres.PgDatabase`) and commits jobs in groups.

Callers on the event loop submit jobs and await their futures; the thread takes whatever
has queued up (up to `max_batch`), runs each job (in its own savepoint where it may be
refused alone) inside one transaction, commits once, and only then resolves the futures.
An acknowledgement therefore always means "committed", and a burst of writes costs one
commit.

A batch whose transaction fails (disk full, database locked past the busy timeout, an I/O
error) answers every job in it with `StorageError` and changes nothing. The thread lives
on: after an error that can leave the connection itself unusable (read-only, I/O, corrupt,
cannot open) it closes the connection and opens a new one before the next batch, so the
service recovers by itself once the fault is gone. `failing` and `last_error` say how the
last batch went (for /healthz).
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

import structlog
from sqlite_utils import Database

from bandit_router.core.errors import RouterError

log = structlog.get_logger("bandit_router.storage.writer")


class Job(Protocol):
    # Jobs that may be refused alone (RouterError) run inside a savepoint; jobs that
    # cannot be (plain inserts) set this False and skip the savepoint's cost. A refusable
    # job may also set `refuses_before_writing = True` (it raises RouterError only before
    # its first write): it is refused alone without a savepoint.
    refusable: bool

    def run(self, db: Database) -> Any:
        """Do the job's SQL. Raise RouterError to refuse it alone (if refusable)."""


class StorageError(RuntimeError):
    """The database could not be opened or written."""


_STOP = object()
# SQLite errors after which the connection is replaced before the next batch: a file that was
# opened read-only stays read-only, and after an I/O error or corruption a fresh connection
# (with a fresh view of the WAL) is the safe way back.
_REOPEN_AFTER = ("SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_CORRUPT", "SQLITE_NOTADB",
                 "SQLITE_CANTOPEN")


LOCK_POLL_S = 0.0005  # between attempts at the write lock another process holds


def begin_immediate(conn: sqlite3.Connection, timeout_s: float) -> None:
    """BEGIN IMMEDIATE, waiting up to `timeout_s` for a write lock another process holds.

    SQLite's own busy handler sleeps in growing steps (up to 100 ms), so two processes
    taking turns at the lock (`serve --workers 2`) would each wait far longer than the
    other holds it; polling every half millisecond hands the lock over promptly. The
    connection's busy timeout must be 0 for this to be the only wait.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorname", "").startswith("SQLITE_BUSY")
            if not busy or time.monotonic() >= deadline:
                raise
            time.sleep(LOCK_POLL_S)


def _needs_reopen(exc: BaseException) -> bool:
    name = getattr(exc, "sqlite_errorname", None) or ""
    return name.startswith(_REOPEN_AFTER)


class Writer:
    def __init__(self, open_db: Callable[[], Database], max_batch: int,
                 on_commit: Callable[[], None] = lambda: None,
                 on_rollback: Callable[[], None] = lambda: None,
                 on_reopen: Callable[[Database], None] = lambda db: None,
                 on_begin: Callable[[Database], None] = lambda db: None,
                 before_commit: Callable[[Database], None] = lambda db: None,
                 integrity_errors: tuple[type[BaseException], ...] = (sqlite3.IntegrityError,),
                 needs_reopen: Callable[[BaseException], bool] = _needs_reopen,
                 begin: Callable[[Any], None] = lambda conn: conn.execute("BEGIN IMMEDIATE"),
                 ) -> None:
        self._begin = begin
        self._open_db = open_db
        self._integrity_errors = integrity_errors
        self._needs_reopen = needs_reopen
        self._on_begin = on_begin
        self._before_commit = before_commit
        self._max_batch = max_batch
        self._on_commit = on_commit
        self._on_rollback = on_rollback
        self._on_reopen = on_reopen
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name="bandit-router-writer",
                                        daemon=True)
        self._ready: Future[None] = Future()
        self.db: Database | None = None
        self.commits = 0
        self.failing = False  # the last batch failed
        self.last_error: str | None = None  # the last batch failure's reason
        self.reopens = 0

    def start(self) -> Future[None]:
        self._thread.start()
        return self._ready

    def submit(self, job: Job) -> Future:
        future: Future = Future()
        self._queue.put((job, future))
        return future

    def stop(self) -> None:
        """Commit everything queued, then end the thread (blocks; call off the loop)."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def _main(self) -> None:
        try:
            self.db = self._open_db()
        except Exception as exc:  # the opener's error is the caller's to report
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        try:
            while True:
                batch, stop = self._take()
                if batch:
                    self._run(batch)
                if stop:
                    return
        finally:
            if self.db is not None:
                self.db.conn.close()

    def _take(self) -> tuple[list, bool]:
        first = self._queue.get()
        if first is _STOP:
            return [], True
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self, batch: list[tuple[Job, Future]]) -> None:
        # A caller that gave up (its awaiting task was cancelled, e.g. the pruner at
        # shutdown) cancels its future: skip that job. Every other future is marked
        # running here, so it can no longer be cancelled and resolving it below cannot
        # raise InvalidStateError (which used to kill this thread and drop the queue).
        batch = [(job, future) for job, future in batch if future.set_running_or_notify_cancel()]
        if not batch:
            return
        outcomes: list[tuple[Future, Any, BaseException | None]] = []
        try:
            if self.db is None:
                self._reopen()
            conn = self.db.conn
            try:
                # IMMEDIATE: take the write lock first, so that a lock held by another
                # process is waited for (up to the busy timeout), not failed mid-batch.
                # Inside the try: a lock wait that fails after BEGIN must roll back.
                self._begin(conn)
                self._on_begin(self.db)
                for job, future in batch:
                    outcomes.append((future, *self._run_one(job)))
                self._before_commit(self.db)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # some errors (disk full, I/O) roll back by themselves
                    conn.execute("ROLLBACK")
                raise
        except Exception as exc:
            self._failed(batch, exc)
            return
        self.commits += 1
        self.failing = False
        self._on_commit()
        for future, result, error in outcomes:
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

    def _failed(self, batch: list[tuple[Job, Future]], exc: Exception) -> None:
        self._on_rollback()
        reason = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
        log.error("commit_failed", error=str(exc), reason=reason, jobs=len(batch))
        self.failing = True
        self.last_error = str(exc)
        failure = exc if isinstance(exc, StorageError) else StorageError(
            f"database write failed: {exc}")
        for _, future in batch:
            if not future.done():
                future.set_exception(failure)
        if self.db is not None and self._needs_reopen(exc):
            log.warning("reconnecting", why="the connection may be unusable after this error")
            try:
                self.db.conn.close()
            except Exception as close_exc:  # the connection is being replaced anyway
                log.warning("close_failed", error=str(close_exc))
            self.db = None  # reopened before the next batch

    def _reopen(self) -> None:
        try:
            db = self._open_db()
        except Exception as exc:  # the client's reason names SQLite's error, not our path
            log.error("reconnect_failed", error=str(exc))
            raise StorageError(f"database unavailable: {exc.__cause__ or exc}") from exc
        try:
            self._on_reopen(db)
        except Exception:
            db.conn.close()
            raise
        self.db = db
        self.reopens += 1
        log.info("reconnected")

    def _run_one(self, job: Job) -> tuple[Any, BaseException | None]:
        if not getattr(job, "refusable", True):
            return job.run(self.db), None
        if getattr(job, "refuses_before_writing", False):
            # Its refusals come before its first write, so it needs no savepoint (two
            # statements fewer per job); anything else it raises fails the whole batch.
            try:
                return job.run(self.db), None
            except RouterError as exc:
                return None, exc
        conn = self.db.conn
        conn.execute("SAVEPOINT job")  # a refused job leaves no trace
        try:
            result = job.run(self.db)
        except (RouterError, *self._integrity_errors) as exc:
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            return None, exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
            raise
        conn.execute("RELEASE job")
        return result, None
