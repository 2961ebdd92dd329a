"""Folding feedback into arm evidence: the one place learning happens.

The service's storage writer, `bandit-router rebuild` and the offline simulations all
learn through `ArmBook`, so a replay of the feedback log gives exactly the live state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from bandit_router.core import posterior
from bandit_router.core.learned import parent_of
from bandit_router.core.posterior import Evidence
from bandit_router.core.settings import PolicyConfig
from bandit_router.core.types import ArmKey, FeedbackEvent

_EMPTY = Evidence()


def arm_key(event: FeedbackEvent) -> ArmKey:
    t = event.ticket
    return ArmKey(t.policy, t.bucket, t.model, t.tenant)


def arm_keys(event: FeedbackEvent) -> tuple[ArmKey, ...]:
    """The arms an event teaches: its own and, for a learned bucket, its rule bucket's
    (which so holds every answer its children had: no refinement loses evidence)."""
    key = arm_key(event)
    parent = parent_of(key.bucket)
    if parent == key.bucket or event.facts == (("reset", 1.0),):
        return (key,)
    return key, replace(key, bucket=parent)


def fold(current: Evidence, event: FeedbackEvent, policy: PolicyConfig | None,
         weights: Mapping[str, float] | None = None) -> Evidence:
    """The arm's evidence after `event` (`weights`: of each quality source). A policy no
    longer in config neither decays nor caps."""
    if policy is None:
        return posterior.observe(current, event.facts, event.at, 0.0, 0.0, weights=weights)
    return posterior.observe(current, event.facts, event.at, policy.half_life_hours * 3600.0,
                             policy.evidence_cap, policy.change_window, policy.prior,
                             policy.change_min_hours * 3600.0, weights)


class ArmBook:
    """Every arm's evidence, with changes staged until the caller commits them."""

    def __init__(self, policies: Mapping[str, PolicyConfig],
                 states: Mapping[ArmKey, Evidence] | None = None,
                 weights: Mapping[str, float] | None = None) -> None:
        self._policies = policies
        self._weights = weights
        self._states: dict[ArmKey, Evidence] = dict(states or {})
        self._staged: dict[ArmKey, Evidence] = {}

    def get(self, key: ArmKey) -> Evidence:
        staged = self._staged.get(key)
        return staged if staged is not None else self._states.get(key, _EMPTY)

    def learn(self, event: FeedbackEvent) -> tuple[ArmKey, Evidence]:
        """The new evidence for the event's arm (seeing staged changes); installs nothing."""
        key = arm_key(event)
        return key, fold(self.get(key), event, self._policies.get(key.policy), self._weights)

    def learn_all(self, event: FeedbackEvent) -> list[tuple[ArmKey, Evidence]]:
        """`learn` for every arm the event teaches (`arm_keys`)."""
        policy = self._policies.get(event.ticket.policy)
        return [(key, fold(self.get(key), event, policy, self._weights))
                for key in arm_keys(event)]

    def stage(self, key: ArmKey, evidence: Evidence) -> None:
        self._staged[key] = evidence

    def commit(self) -> dict[ArmKey, Evidence]:
        changes, self._staged = self._staged, {}
        self._states.update(changes)
        return changes

    def discard(self) -> None:
        self._staged = {}

    def states(self) -> dict[ArmKey, Evidence]:
        return dict(self._states)

    def arms(self) -> set[ArmKey]:
        """Every arm with evidence, staged changes included."""
        return set(self._states) | set(self._staged)

    def apply(self, event: FeedbackEvent) -> dict[ArmKey, Evidence]:
        """Learn from one event and commit it at once (for in-process use)."""
        for key, evidence in self.learn_all(event):
            self.stage(key, evidence)
        return self.commit()


def replay(events: Iterable[FeedbackEvent], policies: Mapping[str, PolicyConfig],
           weights: Mapping[str, float] | None = None) -> dict[ArmKey, Evidence]:
    """Evidence rebuilt from a feedback log, in log order."""
    book = ArmBook(policies, weights=weights)
    for event in events:
        book.apply(event)
    return book.states()
