"""ArmBook: staged learning, commit and discard; replaying the log gives the live state."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandit_router.config import load
from bandit_router.core.learner import ArmBook, arm_key, fold, replay
from bandit_router.core.posterior import Evidence, observe
from bandit_router.core.settings import Config, PolicyConfig
from bandit_router.core.types import ArmKey, FeedbackEvent, RouteTicket

CONFIG = load(Path(__file__).resolve().parents[2] / "config.toml")
HOUR = 3600.0
T0 = 1_800_000_000.0


def event(policy: str = "default", bucket: str = "chat:low", model: str = "gpt-5-mini",
          facts: tuple[tuple[str, float], ...] = (("quality", 1.0),), at: float = T0,
          route_id: str = "r1.x.y") -> FeedbackEvent:
    ticket = RouteTicket(policy, bucket, model, at - 1.0, 100, "n")
    return FeedbackEvent(route_id, ticket, facts, at)


KEY = ArmKey("default", "chat:low", "gpt-5-mini")


@pytest.fixture
def book(config: Config) -> ArmBook:
    return ArmBook(config.policies)


def test_unknown_arm_has_no_evidence(book: ArmBook) -> None:
    assert book.get(KEY) == Evidence()
    assert book.states() == {}


def test_learn_installs_nothing(book: ArmBook) -> None:
    key, ev = book.learn(event())
    assert key == KEY == arm_key(event())
    assert ev.q_pos == 1.0
    assert book.get(KEY) == Evidence()
    assert book.states() == {}


def test_staged_changes_are_seen_but_not_committed(book: ArmBook) -> None:
    book.stage(*book.learn(event(at=T0)))
    assert book.get(KEY).q_pos == 1.0
    assert book.states() == {}
    # a second event in the same batch builds on the staged one
    book.stage(*book.learn(event(facts=(("quality", 0.0),), at=T0 + 1)))
    assert book.get(KEY).quality_n == pytest.approx(2.0, rel=1e-6)
    changes = book.commit()
    assert set(changes) == {KEY}
    assert book.states() == changes
    assert book.get(KEY) == changes[KEY]
    assert book.commit() == {}  # nothing left staged


def test_discard_forgets_the_batch(book: ArmBook) -> None:
    book.apply(event(at=T0))
    committed = book.states()
    other = ArmKey("cheap", "code:high", "gpt-5")
    book.stage(*book.learn(event(at=T0 + 5)))
    book.stage(*book.learn(event("cheap", "code:high", "gpt-5", at=T0 + 5)))
    assert book.get(other).q_pos == 1.0
    book.discard()
    assert book.states() == committed
    assert book.get(KEY) == committed[KEY]
    assert book.get(other) == Evidence()
    assert book.commit() == {}


def test_book_starts_from_given_states(config: Config) -> None:
    start = {KEY: Evidence(q_pos=3.0, q_neg=1.0, updated_at=T0)}
    book = ArmBook(config.policies, start)
    book.apply(event(at=T0))
    assert book.get(KEY).q_pos == pytest.approx(4.0)
    assert start[KEY].q_pos == 3.0  # the caller's mapping is not modified


def test_fold_uses_the_policy_half_life_and_cap(config: Config) -> None:
    policy = replace(config.policies["default"], evidence_cap=500.0)
    start = Evidence(q_pos=600.0, q_neg=0.0, updated_at=T0)
    week_later = event(at=T0 + policy.half_life_hours * HOUR, facts=(("latency_ms", 10.0),))
    ev = fold(start, week_later, policy)
    assert ev.q_pos == pytest.approx(300.0)  # one half-life
    capped = fold(start, event(at=T0, facts=(("quality", 1.0),)), policy)
    assert capped.quality_n == pytest.approx(policy.evidence_cap)


def test_a_policy_gone_from_config_neither_decays_nor_caps(config: Config) -> None:
    book = ArmBook(config.policies, {ArmKey("retired", "chat:low", "gpt-5"):
                                     Evidence(q_pos=600.0, updated_at=T0)})
    book.apply(event("retired", model="gpt-5", at=T0 + 1e8))
    assert book.get(ArmKey("retired", "chat:low", "gpt-5")).q_pos == 601.0


# --- replay == live -------------------------------------------------------------------------

arm_keys = st.sampled_from([("default", "chat:low", "gpt-5-mini"),
                            ("default", "code:high", "claude-sonnet-4-5"),
                            ("cheap", "chat:low", "gpt-5-mini"),
                            ("retired", "chat:low", "gpt-5")])
fact_sets = st.lists(st.sampled_from(["quality", "latency_ms", "input_tokens", "output_tokens",
                                      "success"]), unique=True, min_size=1).map(
    lambda names: tuple(sorted(names, key=["quality", "latency_ms", "input_tokens",
                                           "output_tokens", "success"].index)))
values = {"quality": st.floats(0, 1), "latency_ms": st.floats(0, 1e6),
          "input_tokens": st.integers(0, 10**6).map(float),
          "output_tokens": st.integers(0, 10**6).map(float),
          "success": st.sampled_from([0.0, 1.0])}


@st.composite
def logs(draw) -> list[FeedbackEvent]:
    out, now = [], T0
    for i in range(draw(st.integers(0, 40))):
        now += draw(st.floats(0, 30 * 24 * HOUR))
        names = draw(fact_sets)
        facts = tuple((n, draw(values[n])) for n in names)
        out.append(event(*draw(arm_keys), facts=facts, at=now, route_id=f"r{i}"))
    return out


# short half-life and a small cap, so decay and capping both happen in the examples
POLICIES = {name: replace(p, half_life_hours=24.0, evidence_cap=8.0)
            for name, p in CONFIG.policies.items()}


@given(events=logs(), policies=st.sampled_from([CONFIG.policies, POLICIES]))
@settings(max_examples=100, deadline=None)
def test_replay_equals_live_one_by_one(events: list[FeedbackEvent],
                                       policies: dict[str, PolicyConfig]) -> None:
    live = ArmBook(policies)
    by_hand: dict[ArmKey, Evidence] = {}  # an oracle that skips ArmBook entirely
    for e in events:
        live.apply(e)
        key = ArmKey(e.ticket.policy, e.ticket.bucket, e.ticket.model)
        p = policies.get(key.policy)
        by_hand[key] = observe(by_hand.get(key, Evidence()), e.facts, e.at,
                               p.half_life_hours * HOUR if p else 0.0,
                               p.evidence_cap if p else 0.0,
                               p.change_window if p else 0.0,
                               p.prior if p else None,
                               p.change_min_hours * HOUR if p else 0.0)
    assert live.states() == by_hand
    assert replay(events, policies) == live.states()  # exact, float for float


@given(events=logs(), cuts=st.lists(st.integers(1, 6), max_size=20),
       rolled_back=st.sets(st.integers(0, 19)))
@settings(max_examples=100, deadline=None)
def test_replay_equals_live_batches_with_rollbacks(events: list[FeedbackEvent],
                                                   cuts: list[int],
                                                   rolled_back: set[int]) -> None:
    """The storage writer's pattern: learn + stage per event, commit or discard per batch;
    the log holds only committed events, and replaying it gives the live state exactly."""
    live, log, i = ArmBook(POLICIES), [], 0
    for b, size in enumerate([*cuts, len(events)]):
        batch = events[i:i + size]
        i += size
        for e in batch:
            live.stage(*live.learn(e))
        if b in rolled_back:
            live.discard()
        else:
            live.commit()
            log.extend(batch)
    assert replay(log, POLICIES) == live.states()


def test_replay_matches_observe_by_hand(config: Config) -> None:
    policy = config.policies["default"]
    events = [event(facts=(("quality", 0.25), ("latency_ms", 800.0)), at=T0),
              event(facts=(("quality", 0.75),), at=T0 + 10 * HOUR),
              event(facts=(("output_tokens", 321.0),), at=T0 + 50 * HOUR)]
    by_hand = Evidence()
    for e in events:
        by_hand = observe(by_hand, e.facts, e.at, policy.half_life_hours * HOUR,
                          policy.evidence_cap, policy.change_window, policy.prior,
                          policy.change_min_hours * HOUR)
    assert replay(events, config.policies) == {KEY: by_hand}
    assert by_hand.quality_n < 2.0  # decay happened along the way
