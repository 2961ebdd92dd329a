"""The app's background tasks outlive a storage failure: a failed round is logged and retried."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from bandit_router.http import app as app_module
from bandit_router.http.appkeys import CONFIG, STORE
from bandit_router.storage.writer import StorageError


class FlakyStore:
    def __init__(self) -> None:
        self.calls = 0

    async def prune(self, before: float) -> int:
        self.calls += 1
        if self.calls == 1:
            raise StorageError("database write failed: canceling statement due to lock timeout")
        return 3


async def test_a_failed_prune_is_logged_and_the_pruner_goes_on(config, monkeypatch):
    monkeypatch.setattr(app_module, "PRUNE_EVERY_S", 0.01)
    store = FlakyStore()
    app = {CONFIG: config, STORE: store}
    with capture_logs() as logs:
        task = asyncio.create_task(app_module._prune_forever(app, lambda: 1e9))
        for _ in range(200):
            if store.calls >= 3:
                break
            await asyncio.sleep(0.01)
        assert not task.done(), task.exception() if task.done() else None
        task.cancel()
    assert store.calls >= 3
    events = [e["event"] for e in logs]
    assert "prune_failed" in events and "decisions_pruned" in events
