"""The judge's pieces: how often it judges, what it is asked, what of its reply counts, and
what a call costs; driven with a stand-in for its upstream's answers."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bandit_router.core.settings import DEFAULT_JUDGE_PROMPT, JudgeConfig, Model, Upstream
from bandit_router.core.types import Facts, RouteTicket
from bandit_router.engine.judge import (
    Judge,
    conversation_text,
    judge_request,
    parse_verdict,
    sample_rate,
)

MODEL = Model("judge-model", "test", 3.0, 15.0, 200_000, 2000.0, max_output_tokens=8000,
              upstream=Upstream("http://127.0.0.1:9/v1", "judge-there"))
CONFIG = JudgeConfig(model="judge-model", sample_rate=0.1, young_rate=0.6, young_evidence=20)
TICKET = RouteTicket("default", "code:low", "gpt-5-mini", 1.0, 10, "n", "acme")
MESSAGES = [{"role": "user", "content": "What is 6 x 7?"}]


@pytest.mark.parametrize(("evidence", "rate"), [(0, 0.6), (10, 0.35), (20, 0.1), (500, 0.1)])
def test_the_rate_starts_high_while_an_arm_is_young_and_falls_to_the_sample_rate(evidence,
                                                                                   rate):
    assert sample_rate(CONFIG, "code:low", evidence) == pytest.approx(rate)


def test_a_bucket_rate_replaces_the_sample_rate():
    config = replace(CONFIG, bucket_rates={"code:high": 0.3})
    assert sample_rate(config, "code:high", 1e9) == 0.3
    assert sample_rate(config, "code:low", 1e9) == 0.1


@given(evidence=st.floats(0, 1e9), young=st.floats(0, 1), settled=st.floats(0, 1))
def test_the_rate_is_a_probability_and_never_below_the_settled_one(evidence, young, settled):
    config = JudgeConfig(model="m", sample_rate=settled, young_rate=young, young_evidence=30)
    rate = sample_rate(config, "b", evidence)
    assert settled - 1e-12 <= rate <= max(young, settled) + 1e-12


@given(evidence=st.floats(0, 1e9), explore=st.floats(0, 1), settled=st.floats(0, 1))
def test_an_exploration_is_judged_at_least_at_the_explore_rate(evidence, explore, settled):
    config = replace(CONFIG, sample_rate=settled, explore_rate=explore)
    plain = sample_rate(config, "b", evidence)
    assert sample_rate(config, "b", evidence, explored=True) == max(plain, explore)


def test_the_judge_wants_every_exploration_and_no_other_answer_at_rate_zero():
    config = replace(CONFIG, sample_rate=0.0, young_rate=0.0, explore_rate=1.0)
    judge = Judge(config, MODEL, None, None, None, lambda v: None, 1, lambda: 0.0)
    assert all(judge.wants(TICKET, 0.0, explored=True) for _ in range(200))
    assert not any(judge.wants(TICKET, 0.0) for _ in range(200))


@pytest.mark.parametrize(("reply", "score"), [
    ('{"score": 0.8, "reason": "right"}', 0.8),
    ('```json\n{"score": 1, "reason": "ok"}\n```', 1.0),
    ('Here you go: {"score": 0, "reason": "wrong"} thanks', 0.0),
    ('{"score": 1.5}', None), ('{"score": -0.1}', None), ('{"score": "0.8"}', None),
    ('{"score": true}', None), ('{"grade": 0.8}', None), ("0.8", None), ("", None),
    ('{"score": 0.8', None), ("[0.8]", None),
])
def test_only_a_score_in_zero_to_one_counts(reply, score):
    assert parse_verdict(reply)[0] == score


def test_the_request_shows_the_conversation_and_answer_and_asks_for_json():
    body = judge_request(CONFIG, "judge-there", MESSAGES, "42")
    assert body["model"] == "judge-there" and body["response_format"] == {"type": "json_object"}
    prompt = body["messages"][-1]["content"]
    assert "user: What is 6 x 7?" in prompt and "<answer>\n42\n</answer>" in prompt
    assert '"score"' in prompt  # the template's doubled braces came out single
    assert "response_format" not in judge_request(CONFIG, "m", MESSAGES, "42", json_mode=False)


def test_long_conversations_keep_their_end_and_long_answers_their_start():
    long = [{"role": "user", "content": "x" * 50_000 + "THE QUESTION"}]
    assert conversation_text(long, 1000).endswith("THE QUESTION")
    body = judge_request(replace(CONFIG, max_chars=1000), "m", long, "A" * 5000 + "TAIL")
    assert len(body["messages"][-1]["content"]) < 1000 * 2 + len(DEFAULT_JUDGE_PROMPT)
    assert "TAIL" not in body["messages"][-1]["content"]


class Stand:
    """A stand-in for the judge's upstream: answers in order, records what it was sent."""

    def __init__(self, *answers) -> None:
        self.answers, self.sent = list(answers), []

    async def __call__(self, body, timeout_s):
        self.sent.append(body)
        return self.answers.pop(0)


def _judge(complete, **config) -> tuple[Judge, list, list, list]:
    recorded, accounted, counted = [], [], []

    async def record(route_id, ticket, facts):
        recorded.append((route_id, facts))

    async def account(ticket, at, verdict):
        accounted.append(verdict)

    judge = Judge(replace(CONFIG, **config), MODEL, complete, record, account,
                  counted.append, seed=1, clock=lambda: 1_800_000_000.0)
    return judge, recorded, accounted, counted


def _answer(content: str, prompt_tokens=100, completion_tokens=20) -> dict:
    return {"choices": [{"message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}}


async def test_a_score_becomes_a_judge_fact_and_the_call_is_priced():
    stand = Stand((200, _answer('{"score": 0.9, "reason": "correct"}'), "ok"))
    judge, recorded, accounted, counted = _judge(stand, sample_rate=1.0)
    judge.consider("r1", TICKET, MESSAGES, "42", evidence=100)
    await asyncio.gather(*judge.pending)
    assert recorded == [("r1", Facts(judge_quality=0.9))]
    (verdict,) = accounted
    assert verdict.spend_usd == pytest.approx(100 * 3e-6 + 20 * 15e-6)
    assert [v.outcome for v in counted] == ["scored"]


@pytest.mark.parametrize(("answers", "outcome"), [
    ([(200, _answer("I think it is fine"), "ok")], "unparsed"),
    ([(200, {"unexpected": True}, "ok")], "unparsed"),
    ([(None, None, "timeout")], "timeout"),
    ([(500, None, "HTTP 500")], "error"),
    ([(400, None, "HTTP 400"), (500, None, "HTTP 500")], "error"),
])
async def test_garbage_errors_and_timeouts_are_counted_never_facts(answers, outcome):
    judge, recorded, _, counted = _judge(Stand(*answers), sample_rate=1.0)
    judge.consider("r1", TICKET, MESSAGES, "42", evidence=100)
    await asyncio.gather(*judge.pending)
    assert recorded == [] and [v.outcome for v in counted] == [outcome]


async def test_an_upstream_without_json_mode_is_asked_again_without_it():
    stand = Stand((400, None, "HTTP 400"), (200, _answer('{"score": 0.5}'), "ok"))
    judge, recorded, _, _ = _judge(stand, sample_rate=1.0)
    judge.consider("r1", TICKET, MESSAGES, "42", evidence=100)
    await asyncio.gather(*judge.pending)
    assert "response_format" in stand.sent[0] and "response_format" not in stand.sent[1]
    assert recorded == [("r1", Facts(judge_quality=0.5))]


async def test_a_spent_judge_budget_stops_judging_for_the_window():
    one_call = 100 * 3e-6 + 20 * 15e-6
    stand = Stand(*[(200, _answer('{"score": 1}'), "ok")] * 10)
    judge, recorded, _, counted = _judge(stand, sample_rate=1.0, budget_usd=one_call * 2.5)
    for i in range(6):
        judge.consider(f"r{i}", TICKET, MESSAGES, "42", evidence=100)
        await asyncio.gather(*judge.pending)
    assert len(recorded) == 3  # the third call crossed the budget
    assert [v.outcome for v in counted].count("skipped_budget") == 3


def test_sampling_is_seeded_and_near_its_rate():
    """1,000 draws at rate 0.1: binomial sd is 9.5, so 100 +- 40 is over 4 sd wide."""
    judge, *_ = _judge(Stand(), sample_rate=0.1)
    draws = [judge.wants(TICKET, evidence=1e9) for _ in range(1000)]
    again, *_ = _judge(Stand(), sample_rate=0.1)
    assert draws == [again.wants(TICKET, evidence=1e9) for _ in range(1000)]
    assert 60 <= sum(draws) <= 140


def test_only_the_configured_policies_are_judged():
    judge, *_ = _judge(Stand(), sample_rate=1.0, policies=("cheap",))
    assert not judge.wants(TICKET, 0) and judge.wants(replace(TICKET, policy="cheap"), 0)
