"""resolve(): which facts a feedback message adds, given what its route already counted."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandit_router.core.facts import DuplicateFact, NoFacts, resolve
from bandit_router.core.types import FACTS, Facts


def test_facts_come_out_in_canonical_order() -> None:
    facts = Facts(success=True, output_tokens=12, quality=0.5, latency_ms=800.0)
    r = resolve(facts, seen=set())
    assert r.applied == (("quality", 0.5), ("latency_ms", 800.0), ("output_tokens", 12.0),
                         ("success", 1.0))
    assert r.derived_quality is False


def test_failure_without_quality_counts_as_quality_zero() -> None:
    r = resolve(Facts(success=False, latency_ms=300.0), seen=set())
    assert r.applied == (("quality", 0.0), ("latency_ms", 300.0), ("success", 0.0))
    assert r.derived_quality is True


def test_failure_with_quality_keeps_the_quality() -> None:
    r = resolve(Facts(success=False, quality=0.4), seen=set())
    assert r.applied == (("quality", 0.4), ("success", 0.0))
    assert r.derived_quality is False


def test_failure_after_a_counted_quality_derives_nothing() -> None:
    r = resolve(Facts(success=False), seen={"quality", "latency_ms"})
    assert r.applied == (("success", 0.0),)
    assert r.derived_quality is False


def test_success_true_derives_nothing() -> None:
    r = resolve(Facts(success=True), seen=set())
    assert r.applied == (("success", 1.0),)
    assert r.derived_quality is False


def test_late_parts_add_only_themselves() -> None:
    first = resolve(Facts(latency_ms=900.0, output_tokens=50), seen=set())
    later = resolve(Facts(quality=0.9), seen={name for name, _ in first.applied})
    assert later.applied == (("quality", 0.9),)


def test_duplicates_name_every_repeated_fact() -> None:
    with pytest.raises(DuplicateFact) as info:
        resolve(Facts(quality=1.0, latency_ms=5.0, output_tokens=3),
                seen={"quality", "output_tokens", "success"})
    assert info.value.facts == ["quality", "output_tokens"]
    message = str(info.value)
    assert "quality" in message and "output_tokens" in message
    assert "latency_ms" not in message
    assert "success=false" not in message


def test_duplicate_of_a_derived_quality_says_so() -> None:
    with pytest.raises(DuplicateFact) as info:
        resolve(Facts(quality=0.7), seen={"quality", "success"}, quality_derived=True)
    assert info.value.facts == ["quality"]
    assert "success=false" in str(info.value)


def test_empty_facts_raise_no_facts() -> None:
    with pytest.raises(NoFacts):
        resolve(Facts(), seen=set())
    with pytest.raises(NoFacts):
        resolve(Facts(), seen=set(FACTS))


def test_zero_values_are_facts() -> None:
    r = resolve(Facts(quality=0.0, input_tokens=0), seen=set())
    assert r.applied == (("quality", 0.0), ("input_tokens", 0.0))


facts_strategy = st.builds(
    Facts, quality=st.none() | st.floats(0, 1), latency_ms=st.none() | st.floats(0, 1e7),
    input_tokens=st.none() | st.integers(0, 10**6), output_tokens=st.none() | st.integers(0, 10**6),
    success=st.none() | st.booleans())


@given(facts=facts_strategy, seen=st.sets(st.sampled_from(FACTS)))
@settings(max_examples=300)
def test_each_fact_is_counted_once(facts: Facts, seen: set[str]) -> None:
    reported = {name for name, _ in facts.items()}
    try:
        r = resolve(facts, seen)
    except NoFacts:
        assert not reported
        return
    except DuplicateFact as exc:
        assert exc.facts == [name for name in FACTS if name in reported & seen]
        return
    assert not reported & seen
    applied = [name for name, _ in r.applied]
    assert len(applied) == len(set(applied))
    assert not set(applied) & seen  # nothing already counted is counted again
    assert set(applied) == reported | ({"quality"} if r.derived_quality else set())
    assert r.derived_quality == (facts.success is False and facts.quality is None
                                 and "quality" not in seen)
    if r.derived_quality:
        assert r.applied[0] == ("quality", 0.0)
