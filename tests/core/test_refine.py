"""Refinement of learned buckets (pure): splits that follow disagreement, bounds, pins,
determinism; and the learner's side: evidence is never lost to a refinement."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bandit_router.config import load
from bandit_router.core.learned import Child, Split, from_json, to_json
from bandit_router.core.learner import ArmBook, replay
from bandit_router.core.posterior import Evidence
from bandit_router.core.refine import Sample, refine
from bandit_router.core.settings import LearnedBuckets
from bandit_router.core.sketch import sketch
from bandit_router.core.types import ArmKey, FeedbackEvent, RouteTicket
from bandit_router.engine.learned_book import LearnedBook
from tests.conftest import ROOT
from tests.world import easy, hard

SETTINGS = LearnedBuckets(min_samples=40, per_child=20, max_children=4)


def samples(n: int, cheap_on_hard: float, seed: int = 0) -> list[Sample]:
    """`n` answers, half easy and half hard: the cheap model is right on easy prompts
    (quality 1) and on hard ones with probability `cheap_on_hard`; the strong one always."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        is_hard = i % 2 == 1
        text = hard(i) if is_hard else easy(i)
        model = "cheap" if rng.random() < 0.5 else "strong"
        q = float(rng.random() < cheap_on_hard) if is_hard and model == "cheap" else 1.0
        out.append(Sample(sketch(text), model, q, text))
    return out


def test_a_bucket_whose_answers_disagree_splits_along_the_kinds():
    split = refine(Split("default", "default", "chat:low"), samples(200, 0.0), SETTINGS, 64)
    assert 2 <= len(split.children) <= SETTINGS.max_children and split.version == 1
    for texts in ([easy(i) for i in range(8)], [hard(i) for i in range(6)]):
        # each kind goes to children that hold that kind only
        children = {split.nearest(sketch(t)).id for t in texts}
        others = {split.nearest(sketch(t)).id for t in
                  ([hard(i) for i in range(6)] if texts[0].startswith("Quick") else
                   [easy(i) for i in range(8)])}
        assert not children & others


def test_a_bucket_whose_answers_agree_stays_whole():
    whole = Split("default", "default", "chat:low")
    assert refine(whole, samples(200, 1.0), SETTINGS, 64) is whole


def test_too_few_answers_never_split():
    whole = Split("default", "default", "chat:low")
    assert refine(whole, samples(SETTINGS.min_samples - 1, 0.0), SETTINGS, 64) is whole


def test_refinement_is_deterministic_under_a_seed():
    data = samples(240, 0.0, seed=3)
    one = refine(Split("t", "p", "chat:low"), data, SETTINGS, 64, seed=11)
    two = refine(Split("t", "p", "chat:low"), data, SETTINGS, 64, seed=11)
    assert one.same(two) and one.children


def test_the_number_of_learned_buckets_is_bounded():
    data = samples(400, 0.0)
    assert len(refine(Split("t", "p", "b"), data, SETTINGS, 64).children) <= 4
    assert len(refine(Split("t", "p", "b"), data, SETTINGS, 3).children) <= 3
    assert not refine(Split("t", "p", "b"), data, SETTINGS, 1).children


def test_a_pinned_child_does_not_move_and_ids_are_kept():
    first = refine(Split("t", "p", "b"), samples(200, 0.0), SETTINGS, 64)
    pinned = dataclasses.replace(first.children[0], pinned=True)
    split = dataclasses.replace(first, children=(pinned, *first.children[1:]))
    again = refine(split, samples(300, 0.0, seed=5), SETTINGS, 64)
    kept = again.child(pinned.id)
    assert kept is not None and kept.same(pinned)
    assert {c.id for c in first.children} <= {c.id for c in again.children}


def test_a_split_survives_its_stored_form():
    split = refine(Split("t", "p", "chat:low"), samples(200, 0.0), SETTINGS, 64)
    back = from_json("t", "p", "chat:low", split.version, to_json(split))
    assert back.same(split)


def test_an_offline_book_refines_from_answered_decisions():
    book = LearnedBook(dataclasses.replace(SETTINGS, refine_every=10))
    for i, s in enumerate(samples(200, 0.0)):
        book.decided(f"r{i}", ("t", "p", "chat:low"), s.vector, s.text)
        assert book.answered(f"r{i}", s.model, s.quality)
        book.refine_now()
    assert not book.answered("r0", "cheap", 1.0)  # each decision's answer is taken once
    assert book.splits[("t", "p", "chat:low")].children
    assert book.assign("t", "p", "chat:low", sketch(easy(0))).startswith("chat:low/")
    assert book.assign("t", "p", "code:low", sketch(easy(0))) == "code:low"


# --- evidence: a learned bucket's answers count in its rule bucket too ----------------------

POLICIES = load(ROOT / "config.toml").policies
NO_DECAY = {name: dataclasses.replace(p, half_life_hours=0.0, evidence_cap=0.0)
            for name, p in POLICIES.items()}


def _event(i: int, bucket: str, model: str, q: float) -> FeedbackEvent:
    ticket = RouteTicket("default", bucket, model, 1_800_000_000.0 + i, 10, "")
    return FeedbackEvent(f"r{i}", ticket, (("quality", q),), 1_800_000_000.0 + i)


def _quality_n(ev: Evidence) -> float:
    return ev.q_pos + ev.q_neg


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["chat:low", "chat:low/1", "chat:low/2",
                                           "chat:low/7"]),
                          st.sampled_from(["gpt-5-nano", "gpt-5"]),
                          st.floats(0.0, 1.0)), max_size=60))
def test_refinement_never_loses_evidence(events):
    """Whatever the learned buckets (made, reset, merged), the rule bucket holds every
    answer: its evidence is its own answers' plus all its children's."""
    log = [_event(i, b, m, q) for i, (b, m, q) in enumerate(events)]
    arms = replay(log, NO_DECAY)
    for model in ("gpt-5-nano", "gpt-5"):
        parent = _quality_n(arms.get(ArmKey("default", "chat:low", model), Evidence()))
        children = sum(_quality_n(ev) for k, ev in arms.items()
                       if k.model == model and k.bucket.startswith("chat:low/"))
        direct = sum(1 for b, m, _ in events if b == "chat:low" and m == model)
        assert abs(parent - (children + direct)) < 1e-6


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["chat:low", "chat:low/1", "code:high/3"]),
                          st.sampled_from(["gpt-5-nano", "gpt-5"]),
                          st.floats(0.0, 1.0)), max_size=40))
def test_rebuild_equals_live_with_learned_buckets(events):
    """Folding events one commit at a time (live) equals replaying the whole log (rebuild)."""
    log = [_event(i, b, m, q) for i, (b, m, q) in enumerate(events)]
    live = ArmBook(POLICIES)
    for event in log:
        for key, ev in live.learn_all(event):
            live.stage(key, ev)
        live.commit()
    assert live.states() == replay(log, POLICIES)


def test_a_child_without_a_split_still_keys_its_arm():
    split = Split("t", "p", "b", (Child(3, sketch(easy(0)), 1),), 1, 4)
    assert split.nearest(sketch(easy(1))).id == 3
    assert split.nearest(np.zeros_like(sketch(easy(1)))) is None
