"""structlog set up once: JSON lines, UTC timestamps, written by a background thread.

Rendering happens on the caller's thread (cheap); the write to stdout happens on a
daemon thread, so a slow terminal or pipe never stalls the event loop.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from typing import IO, Any

import orjson
import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


class BackgroundSink:
    """Collects rendered lines and writes them to `stream` from its own thread."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._drain, name="bandit-router-log",
                                        daemon=True)
        self._thread.start()

    def write(self, line: bytes) -> None:
        self._queue.put(line)

    def _drain(self) -> None:
        while True:
            line = self._queue.get()
            if line is None:
                self._stream.flush()
                return
            self._stream.write(line + b"\n")
            if self._queue.empty():
                self._stream.flush()

    def close(self) -> None:
        self._queue.put(None)
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
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=lambda *args: _SinkLogger(sink),
        cache_logger_on_first_use=True,
    )
    return sink


def _dumps(obj: Any, **_: Any) -> bytes:
    return orjson.dumps(obj, default=str)
