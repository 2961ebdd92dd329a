"""structlog set up once: JSON lines, UTC timestamps, written by a background thread.

Rendering happens on the caller's thread (cheap); the write to stdout happens on a
daemon thread, in batches, so a slow terminal or pipe never stalls the event loop.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import deque
from datetime import UTC, datetime
from typing import IO, Any

import orjson
import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


class BackgroundSink:
    """Collects rendered lines and writes them to `stream` from its own thread.

    Writers only append to a deque (no lock, no wake-up); the thread wakes every
    `interval` seconds and writes whatever piled up in one call. Waking it per line cost
    more CPU than everything else about logging. Past `limit` waiting lines, new lines are
    dropped and counted (a stuck stdout must not grow memory without bound).
    """

    def __init__(self, stream: IO[bytes], interval: float = 0.05, limit: int = 100_000) -> None:
        self._stream = stream
        self._lines: deque[bytes] = deque()
        self._interval, self._limit = interval, limit
        self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="bandit-router-log",
                                        daemon=True)
        self._thread.start()

    def write(self, line: bytes) -> None:
        if len(self._lines) < self._limit:
            self._lines.append(line)
        else:
            self.dropped += 1

    def _flush(self) -> None:
        lines = self._lines
        chunk = [lines.popleft() for _ in range(len(lines))]
        if chunk:
            self._stream.write(b"\n".join(chunk) + b"\n")
            self._stream.flush()

    def _drain(self) -> None:
        while not self._stop.wait(self._interval):
            self._flush()
        self._flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class _SinkLogger:
    def __init__(self, sink: BackgroundSink) -> None:
        self._sink = sink

    def msg(self, message: bytes) -> None:
        self._sink.write(message)

    log = debug = info = warning = warn = error = critical = exception = msg


def configure(level: str = "info", stream: IO[bytes] | None = None) -> BackgroundSink:
    """Route every structlog logger to JSON lines on `stream` (stdout by default)."""
    sink = BackgroundSink(stream or sys.stdout.buffer)
    structlog.configure(
        processors=[  # few and cheap: a decision's log line costs a few microseconds
            structlog.processors.add_log_level,
            _timestamp,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=lambda *args: _SinkLogger(sink),
        cache_logger_on_first_use=True,
    )
    return sink


def _timestamp(_: Any, __: str, event: dict) -> dict:
    event["timestamp"] = datetime.now(UTC).isoformat()[:-6] + "Z"  # ISO 8601, UTC
    return event


def _dumps(obj: Any, **_: Any) -> bytes:
    return orjson.dumps(obj, default=str)
