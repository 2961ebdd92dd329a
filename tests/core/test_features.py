"""Request → Features: token estimates, turns, cue counting and the task hint."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandit_router.config import load
from bandit_router.core.features import (
    CHARS_PER_TOKEN,
    TOKENS_PER_MESSAGE,
    CueMatcher,
    _is_word,
    estimate_tokens,
    extract,
)
from bandit_router.core.settings import BucketRules, Config
from bandit_router.core.types import Message, RouteRequest

# For hypothesis tests, which may not use function-scoped fixtures.
BUNDLED = load(Path(__file__).resolve().parents[2] / "config.toml")


@pytest.fixture
def rules(config: Config) -> BucketRules:
    return config.buckets


def user(text: str) -> Message:
    return Message("user", text)


def cues_of(features, task: str) -> int:
    return dict(features.task_cues)[task]


# --- token estimate -------------------------------------------------------------------------

@pytest.mark.parametrize(("chars", "messages", "expected"), [
    (0, 0, 0),
    (0, 1, 4),
    (1, 1, 5),  # a partial token counts as a whole one
    (4, 1, 5),
    (5, 1, 6),
    (400, 3, 112),
])
def test_estimate_tokens(chars: int, messages: int, expected: int) -> None:
    assert estimate_tokens(chars, messages) == expected


@given(chars=st.integers(0, 10**7), messages=st.integers(0, 10**4))
@settings(max_examples=200)
def test_estimate_tokens_bounds(chars: int, messages: int) -> None:
    n = estimate_tokens(chars, messages)
    framing = TOKENS_PER_MESSAGE * messages
    assert chars / CHARS_PER_TOKEN <= n - framing < chars / CHARS_PER_TOKEN + 1


def test_extract_estimates_tokens_over_all_messages(rules: BucketRules) -> None:
    request = RouteRequest(messages=(Message("system", "a" * 40), user("b" * 40)))
    f = extract(request, rules)
    assert f.chars == 81  # the messages joined by a newline
    assert f.input_tokens == estimate_tokens(81, 2) == 21 + 8


def test_caller_input_tokens_win(rules: BucketRules) -> None:
    messages = (user("x" * 4000),)
    assert extract(RouteRequest(messages), rules).input_tokens == 1004
    f = extract(RouteRequest(messages, input_tokens=7), rules)
    assert f.input_tokens == 7
    assert f.chars == 4000  # the text is still measured
    assert extract(RouteRequest(messages, input_tokens=0), rules).input_tokens == 0


def test_max_output_tokens_is_carried(rules: BucketRules) -> None:
    assert extract(RouteRequest((user("hi"),)), rules).output_tokens is None
    assert extract(RouteRequest((user("hi"),), max_output_tokens=900), rules).output_tokens == 900


# --- turns ----------------------------------------------------------------------------------

def test_turns_count_user_messages(rules: BucketRules) -> None:
    conversation = (Message("system", "be brief"), user("hi"), Message("assistant", "hello"),
                    user("and?"), Message("assistant", "yes"), user("ok"))
    assert extract(RouteRequest(conversation), rules).turns == 3


def test_turns_are_at_least_one(rules: BucketRules) -> None:
    assert extract(RouteRequest((Message("system", "you are terse"),)), rules).turns == 1
    assert extract(RouteRequest(()), rules).turns == 1


# --- cues -----------------------------------------------------------------------------------

def cue_hits(text: str, cues: tuple[str, ...]) -> int:
    return CueMatcher((cues,)).counts(text)[0]


def test_cue_hits_counts_distinct_cues() -> None:
    cues = ("def ", "return ", "bug")
    assert cue_hits("nothing to see", cues) == 0
    assert cue_hits("def f(): return 1", cues) == 2
    assert cue_hits("bug bug bug bug", cues) == 1  # repeats add nothing


def test_word_cues_match_only_at_the_start_of_a_word() -> None:
    assert cue_hits("I trust you to debug it", ("rust", "bug")) == 0
    assert cue_hits("Rust: a bug, (bug) again", ("rust", "bug")) == 2
    assert cue_hits("categories and analysis", ("categor", "analy")) == 2  # stems still work
    assert cue_hits("a javascript question", ("java ",)) == 0  # a trailing space: whole word
    assert cue_hits("javaprogram", ("java ",)) == 0
    assert cue_hits("java\nprogram", ("java ",)) == 1
    assert cue_hits("I write java", ("java ",)) == 1  # the end of the text ends a word


def test_symbol_cues_match_anywhere() -> None:
    assert cue_hits("see```code```", ("```",)) == 1
    assert cue_hits("use c++ or x^2", ("c++", "x^2", "#include")) == 2


def test_cues_are_matched_case_insensitively(rules: BucketRules) -> None:
    f = extract(RouteRequest((user("Please ANALYZE this, Step By Step, In Detail"),)), rules)
    assert f.complexity_cues == 3


def test_task_cues_follow_config_order(rules: BucketRules) -> None:
    f = extract(RouteRequest((user("Solve for x: the equation x^2 = 4"),)), rules)
    assert [name for name, _ in f.task_cues] == [t.name for t in rules.tasks]
    assert cues_of(f, "math") == 3  # "solve for", "equation", "x^2"
    assert cues_of(f, "code") == 0


def test_cues_are_found_across_messages(rules: BucketRules) -> None:
    one = extract(RouteRequest((user("import os"),)), rules)
    two = extract(RouteRequest((user("import os"), user("a stack trace follows"))), rules)
    assert cues_of(one, "code") == 1
    assert cues_of(two, "code") == 2


# --- task hint ------------------------------------------------------------------------------

@pytest.mark.parametrize(("task", "expected"), [
    ("Coding", "coding"),
    ("  math ", "math"),
    (None, None),
    ("", None),
])
def test_task_hint_is_normalised(rules: BucketRules, task: str | None,
                                 expected: str | None) -> None:
    f = extract(RouteRequest((user("hi"),), task=task), rules)
    assert f.task_hint == expected


# --- determinism ----------------------------------------------------------------------------

messages_strategy = st.lists(
    st.builds(Message, st.sampled_from(["system", "user", "assistant"]), st.text(max_size=200)),
    max_size=6).map(tuple)


@given(messages=messages_strategy, task=st.none() | st.text(max_size=20),
       max_out=st.none() | st.integers(1, 10**6))
@settings(max_examples=100)
def test_extract_is_deterministic_and_sane(messages: tuple[Message, ...], task: str | None,
                                           max_out: int | None) -> None:
    rules = BUNDLED.buckets
    a = extract(RouteRequest(messages, task=task, max_output_tokens=max_out), rules)
    copied = tuple(Message(m.role, m.content) for m in messages)
    b = extract(RouteRequest(copied, task=task, max_output_tokens=max_out), rules)
    assert a == b
    assert a.input_tokens >= TOKENS_PER_MESSAGE * len(messages)
    assert a.turns == max(1, sum(m.role == "user" for m in messages))
    assert all(0 <= hits <= len(rule.cues)
               for (_, hits), rule in zip(a.task_cues, rules.tasks, strict=True))
    assert 0 <= a.complexity_cues <= len(rules.complexity.cues)


def test_a_cue_named_by_two_groups_counts_in_both() -> None:
    assert CueMatcher((("python", "bug"), ("python",))).counts("a python bug") == [2, 1]


def test_cues_are_looked_for_in_the_head_and_tail_of_long_prompts(rules: BucketRules) -> None:
    filler = "lorem ipsum " * 2000  # 24,000 characters of pasted material
    middle = extract(RouteRequest((user(f"{filler} summarize {filler}"),)), rules)
    tail = extract(RouteRequest((user(f"{filler} now summarize this"),)), rules)
    summarize = dict(middle.task_cues)["summarize"], dict(tail.task_cues)["summarize"]
    assert summarize == (0, 1)
    assert middle.chars > 48_000 and middle.input_tokens > 12_000  # size counts in full


words = st.sampled_from(["bug", "debug", "python", "step", "by", "in", "detail", "analysis",
                         "c++", "x^2", "an", "```", "trust", "rust", "a"])


@given(text=st.lists(st.one_of(words, st.text(max_size=6)), max_size=30).map(" ".join),
       cues=st.lists(st.one_of(words, st.builds(lambda a, b: f"{a} {b}", words, words)),
                     min_size=1, max_size=8))
@settings(max_examples=300, deadline=None)
def test_the_fast_matcher_agrees_with_the_plain_definition(text: str, cues: list[str]) -> None:
    """Word cues occur where " " + cue is in the text with punctuation turned to spaces;
    symbol cues occur anywhere in the lower-cased text. The prefilter must not change that."""
    lowered = text.lower()
    spaced = " " + lowered.translate(str.maketrans(
        {c: " " for c in string.punctuation + string.whitespace})) + " "
    expected = sum(1 for cue in dict.fromkeys(cues)
                   if (f" {cue}" in spaced if _is_word(cue) else cue in lowered))
    assert CueMatcher((tuple(cues),)).counts(text) == [expected]
