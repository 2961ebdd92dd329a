"""`serve --workers N`: N router processes on one port, sharing one store.

The parent prepares the store (migrations run once, here, not raced by N children), then
starts N children that each bind the same port with SO_REUSEPORT, so the kernel spreads
connections over them. Each child is a full replica: arms in memory, its own writer, and
the shared log folded in every `storage.sync_interval_ms` (see `store.Store`).

The parent only supervises: SIGTERM or SIGINT is passed on to every child (each flushes
and exits 0), and a child that dies on its own is started again after a short pause, so
one crash costs that child's in-flight requests and nothing that was acknowledged.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess

import structlog

from bandit_router.http.metrics import share_between_processes

RESTART_PAUSE_S = 1.0
log = structlog.get_logger("bandit_router.http.workers")


_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def _leave(signum: int, frame: object) -> None:
    raise SystemExit(0)


class Supervisor:
    def __init__(self, n: int, serve_one: Callable[[], int]) -> None:
        self.n = n
        self._serve_one = serve_one
        # fork: a child inherits the parsed config; nothing threaded has started yet
        self._context = multiprocessing.get_context("fork")
        self._children: list[BaseProcess] = []
        self._stopping = False
        self._signalled: set[int] = set()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        # any worker may answer a scrape of /metrics: they keep their counters where
        # every one of them can read all of them
        metrics_dir = share_between_processes()
        for i in range(self.n):
            if not self._stopping:
                self._children.append(self._start(i))
        while not self._stopping:
            time.sleep(0.2)
            for i, child in enumerate(self._children):
                if not child.is_alive() and not self._stopping:
                    log.error("worker_died", worker=i, pid=child.pid, exitcode=child.exitcode,
                              why="restarting it")
                    time.sleep(RESTART_PAUSE_S)
                    if not self._stopping:  # a SIGTERM during the pause: stay stopped
                        self._children[i] = self._start(i)
        # a SIGTERM that came while a child was being started found it not yet listed
        self._signal_children()
        codes = []
        for child in self._children:
            child.join()
            codes.append(child.exitcode)
        shutil.rmtree(metrics_dir, ignore_errors=True)
        return 0 if all(code == 0 for code in codes) else 1

    def _start(self, index: int) -> BaseProcess:
        child = self._context.Process(target=self._child_main, name=f"bandit-router-{index}")
        # Signals wait while forking, so the child never runs the parent's handler; the
        # child takes them once its own are in place.
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            child.start()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        return child

    def _child_main(self) -> None:
        # Asked to stop while still starting (before the app's own handlers): it has
        # acknowledged nothing yet, so leaving at once is a clean exit.
        signal.signal(signal.SIGTERM, _leave)
        signal.signal(signal.SIGINT, _leave)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        raise SystemExit(self._serve_one())

    def _stop(self, signum: int, frame: object) -> None:
        self._stopping = True
        self._signal_children()

    def _signal_children(self) -> None:
        # once each: a second SIGTERM would cut the child's graceful shutdown short
        for child in self._children:
            if child.is_alive() and child.pid is not None and child.pid not in self._signalled:
                self._signalled.add(child.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGTERM)
