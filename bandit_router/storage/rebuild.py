"""Rebuilding the posterior snapshot from the feedback log (the log is the truth)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from bandit_router.core.learner import replay
from bandit_router.core.posterior import Evidence
from bandit_router.core.settings import Config
from bandit_router.core.types import ArmKey
from bandit_router.storage.store import read_arms, read_events, write_arms


@dataclass(frozen=True, slots=True)
class RebuildResult:
    events: int
    rebuilt: dict[ArmKey, Evidence]
    differing: list[ArmKey]  # arms whose snapshot differs from the rebuild (before writing)


def rebuild(db: Database, config: Config, write: bool = True) -> RebuildResult:
    """Replay the log over the configured priors; with `write`, replace the snapshot."""
    events = list(read_events(db))
    rebuilt = replay(events, config.policies, config.source_weights)
    live = read_arms(db)
    differing = sorted((k for k in rebuilt.keys() | live.keys()
                        if rebuilt.get(k) != live.get(k)),
                       key=lambda k: (k.tenant, k.policy, k.bucket, k.model))
    if write:
        with db.atomic():
            db.execute("DELETE FROM arms")
            write_arms(db, rebuilt)
    return RebuildResult(events=len(events), rebuilt=rebuilt, differing=differing)
