"""One thread that owns the SQLite connection and commits jobs in groups.

Callers on the event loop submit jobs and await their futures; the thread takes whatever
has queued up (up to `max_batch`), runs each job in its own savepoint inside one
transaction, commits once, and only then resolves the futures. An acknowledgement
therefore always means "committed", and a burst of writes costs one commit.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

import structlog
from sqlite_utils import Database

from bandit_router.errors import RouterError

log = structlog.get_logger("bandit_router.writer")


class Job(Protocol):
    # Jobs that may be refused alone (RouterError) run inside a savepoint; jobs that
    # cannot be (plain inserts) set this False and skip the savepoint's cost.
    refusable: bool

    def run(self, db: Database) -> Any:
        """Do the job's SQL. Raise RouterError to refuse it alone (if refusable)."""


class StorageError(RuntimeError):
    """The database could not be opened or written."""


_STOP = object()


class Writer:
    def __init__(self, open_db: Callable[[], Database], max_batch: int,
                 on_commit: Callable[[], None] = lambda: None,
                 on_rollback: Callable[[], None] = lambda: None) -> None:
        self._open_db = open_db
        self._max_batch = max_batch
        self._on_commit = on_commit
        self._on_rollback = on_rollback
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name="bandit-router-writer",
                                        daemon=True)
        self._ready: Future[None] = Future()
        self.db: Database | None = None
        self.commits = 0

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
            with self.db.atomic():
                for job, future in batch:
                    outcomes.append((future, *self._run_one(job)))
        except Exception as exc:
            self._on_rollback()
            log.error("commit_failed", error=str(exc), jobs=len(batch))
            failure = StorageError(f"database write failed: {exc}")
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            return
        self.commits += 1
        self._on_commit()
        for future, result, error in outcomes:
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

    def _run_one(self, job: Job) -> tuple[Any, BaseException | None]:
        if not getattr(job, "refusable", True):
            return job.run(self.db), None
        conn = self.db.conn
        conn.execute("SAVEPOINT job")  # a refused job leaves no trace
        try:
            result = job.run(self.db)
        except (RouterError, sqlite3.IntegrityError) as exc:
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
