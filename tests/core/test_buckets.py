"""Features + rules → bucket: task from hint or cues, level from the complexity score."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bandit_router.core.buckets import bucket_of, complexity, level_of, task_of
from bandit_router.core.features import extract
from bandit_router.core.settings import BucketRules, Config
from bandit_router.core.types import Message, RouteRequest


@pytest.fixture
def rules(config: Config) -> BucketRules:
    return config.buckets


def bucket(rules: BucketRules, *texts: str, **kw) -> str:
    request = RouteRequest(tuple(Message("user", t) for t in texts), **kw)
    return bucket_of(extract(request, rules), rules)


CODE_PROMPT = ("I get a traceback from this python function:\n```\ndef mean(xs):\n"
               "    return sum(xs) / len(xs)\n```")


# --- task -----------------------------------------------------------------------------------

def test_short_chat_is_chat_low(rules: BucketRules) -> None:
    assert bucket(rules, "hello, how are you today?") == "chat:low"


def test_code_prompt_goes_to_code(rules: BucketRules) -> None:
    assert bucket(rules, CODE_PROMPT) == "code:low"


def test_a_single_cue_does_not_reach_min_cues(rules: BucketRules) -> None:
    # code needs 2 cues; "python" alone is one
    assert bucket(rules, "what do pythons eat?") == "chat:low"
    assert bucket(rules, "what do pythons eat, and is that a bug?") == "code:low"


def test_summarize_needs_only_one_cue(rules: BucketRules) -> None:
    assert bucket(rules, "tl;dr of the meeting please") == "summarize:low"


def test_most_cues_wins(rules: BucketRules) -> None:
    # two math cues, three code cues
    text = "calculate the probability in python with a regex and a unit test"
    f = extract(RouteRequest((Message("user", text),)), rules)
    assert dict(f.task_cues)["math"] == 2
    assert dict(f.task_cues)["code"] == 3
    assert task_of(f, rules) == "code"


def test_a_tie_goes_to_the_first_task_in_config_order(rules: BucketRules) -> None:
    text = "calculate the probability; write a regex in python"  # 2 math, 2 code, 1 write
    f = extract(RouteRequest((Message("user", text),)), rules)
    assert dict(f.task_cues)["math"] == dict(f.task_cues)["code"] == 2
    order = [t.name for t in rules.tasks]
    assert order.index("code") < order.index("math")
    assert task_of(f, rules) == "code"


@pytest.mark.parametrize(("task", "expected"), [
    ("math", "math"),  # the task's own name
    ("arithmetic", "math"),  # an alias from hints
    ("Programming", "code"),
    (" summary ", "summarize"),
    ("multiple-choice", "classify"),
])
def test_task_hint_picks_the_task(rules: BucketRules, task: str, expected: str) -> None:
    assert bucket(rules, "hello there", task=task) == f"{expected}:low"


def test_task_hint_beats_cues(rules: BucketRules) -> None:
    assert bucket(rules, CODE_PROMPT, task="summary") == "summarize:low"


def test_unknown_task_hint_falls_back_to_cues(rules: BucketRules) -> None:
    assert bucket(rules, CODE_PROMPT, task="astrology") == "code:low"
    assert bucket(rules, "hello", task="astrology") == "chat:low"


def test_default_task_is_configurable(rules: BucketRules) -> None:
    other = replace(rules, default_task="write")
    assert bucket(other, "hello there") == "write:low"


# --- level ----------------------------------------------------------------------------------

def test_long_prompt_is_high(rules: BucketRules) -> None:
    # 0.5 points per 1k input tokens, threshold 2.0 → ~4k tokens (16k chars) lifts the level
    assert bucket(rules, "lorem ipsum " * 1000) == "chat:low"
    assert bucket(rules, "lorem ipsum " * 1400) == "chat:high"


def test_caller_input_tokens_set_the_level(rules: BucketRules) -> None:
    assert bucket(rules, "hi", input_tokens=3_999) == "chat:low"
    assert bucket(rules, "hi", input_tokens=4_000) == "chat:high"


def test_complex_prompt_is_high(rules: BucketRules) -> None:
    # 0.75 points per complexity cue: three cues reach the threshold of 2.0
    assert bucket(rules, "Analyze this, step by step.") == "chat:low"
    assert bucket(rules, "Analyze this, step by step, in detail.") == "chat:high"
    assert bucket(rules, CODE_PROMPT + "\nThink carefully, analyze the trade-off.") == "code:high"


def test_max_output_tokens_raises_complexity(rules: BucketRules) -> None:
    base = extract(RouteRequest((Message("user", "hi"),)), rules)
    more = extract(RouteRequest((Message("user", "hi"),), max_output_tokens=1000), rules)
    assert complexity(more, rules) == pytest.approx(complexity(base, rules) + 1.0)
    assert bucket(rules, "hi", max_output_tokens=1_500) == "chat:low"
    assert bucket(rules, "hi", max_output_tokens=2_000) == "chat:high"


def test_extra_turns_raise_complexity(rules: BucketRules) -> None:
    one = extract(RouteRequest((Message("user", "hi"),)), rules)
    six = extract(RouteRequest(tuple(Message("user", "hi") for _ in range(6))), rules)
    assert complexity(six, rules) - complexity(one, rules) == pytest.approx(
        5 * 0.2 + 0.5 * (six.input_tokens - one.input_tokens) / 1000)


@pytest.mark.parametrize(("score", "level"), [
    (0.0, "low"), (1.999, "low"), (2.0, "high"), (100.0, "high")])
def test_level_thresholds(rules: BucketRules, score: float, level: str) -> None:
    assert level_of(score, rules) == level


def test_three_levels(rules: BucketRules) -> None:
    three = replace(rules, levels=("low", "mid", "high"), thresholds=(1.0, 3.0))
    assert [level_of(s, three) for s in (0.5, 1.0, 2.9, 3.0)] == ["low", "mid", "mid", "high"]


def test_bucket_is_deterministic(rules: BucketRules) -> None:
    texts = [CODE_PROMPT, "hello", "lorem ipsum " * 1400, "tl;dr please"]
    first = [bucket(rules, t) for t in texts]
    assert [bucket(rules, t) for t in texts] == first
    assert all(b in rules.names for b in first)
