"""Shutdown's deadline for the answers still being streamed.

Each streamed answer runs inside `Drain.stream()`, an `asyncio.timeout` with no deadline
until shutdown begins; `begin(deadline)` then sets it for every open stream (and every
stream opened after). A stream whose deadline passes gets a `TimeoutError` at its next
wait, ends itself cleanly (an error event, then the end of the chunked body), and its
handler returns, so the server can exit without cutting connections mid-answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Drain:
    def __init__(self) -> None:
        self._open: set[asyncio.Timeout] = set()
        self.deadline: float | None = None  # loop time; None until shutdown begins

    @contextlib.asynccontextmanager
    async def stream(self) -> AsyncIterator[None]:
        async with asyncio.timeout_at(self.deadline) as timeout:
            self._open.add(timeout)
            try:
                yield
            finally:
                self._open.discard(timeout)

    def begin(self, deadline: float) -> None:
        self.deadline = deadline
        for timeout in self._open:
            timeout.reschedule(deadline)

    def expired(self) -> bool:
        """Shutdown's deadline has passed: a stream's TimeoutError is ours, not the peer's."""
        return self.deadline is not None and \
            asyncio.get_running_loop().time() >= self.deadline

    @property
    def streams(self) -> int:
        return len(self._open)
