"""Which facts of a feedback message count, given what was already counted for its route."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from bandit_router.core.types import Facts


class DuplicateFact(ValueError):
    """A fact was already counted for this route."""

    def __init__(self, facts: list[str], derived: bool = False) -> None:
        names = ", ".join(facts)
        why = " (counted as 0 from an earlier success=false)" if derived else ""
        super().__init__(f"already counted for this route_id: {names}{why}")
        self.facts = facts


class NoFacts(ValueError):
    """The message reports nothing."""


@dataclass(frozen=True, slots=True)
class Resolution:
    applied: tuple[tuple[str, float], ...]  # (fact, value) to record and learn from
    derived_quality: bool  # quality 0 was inferred from success=false


def resolve(facts: Facts, seen: Collection[str], quality_derived: bool = False) -> Resolution:
    """Decide what a message adds. Raises DuplicateFact naming every fact sent twice.

    `success: false` without a quality counts as quality 0, unless a quality was already
    counted for the route.
    """
    reported = facts.items()
    if not reported:
        raise NoFacts("feedback reports no facts: send at least one of quality, latency_ms, "
                      "input_tokens, output_tokens, success")
    again = [name for name, _ in reported if name in seen]
    if again:
        raise DuplicateFact(again, derived=quality_derived and "quality" in again)
    derive = facts.success is False and facts.quality is None and "quality" not in seen
    if derive:
        reported = [("quality", 0.0), *reported]
    return Resolution(applied=tuple(reported), derived_quality=derive)
