"""Waiting on a condition instead of sleeping for a guessed time: poll until `check()` is
true (or returns something truthy, which is returned), failing with `what` if it never
does within `timeout_s` (a bound on a hung test, not a speed claim)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(check: Callable[[], Awaitable[Any]], what: str,
                     timeout_s: float = 30.0, every_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(every_s)


def eventually_sync(check: Callable[[], Any], what: str, timeout_s: float = 30.0,
                    every_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(every_s)
