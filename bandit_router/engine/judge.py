"""The judge: a model the router asks itself, after a gateway answer was sent, to grade a
sample of the answers; its score becomes a quality fact of that route with source `judge`.

Never on the request path: the gateway hands a finished answer to `Judge.consider`, which
decides (seeded, so replays agree) whether to judge it and does so in a background task.
Judging stops for the rest of a window once `judge.budget_usd` is spent. A reply that does
not parse, an error or a timeout is counted and logged, never a fact. Judge calls are priced
at the judge model's list prices and counted as the judge's own spend, never routed traffic.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import structlog

from bandit_router.core.bounds import clamped_usage
from bandit_router.core.budget import Pacer
from bandit_router.core.settings import BudgetConfig, JudgeConfig, Model
from bandit_router.core.spend import Prices
from bandit_router.core.types import Facts, RouteTicket

log = structlog.get_logger("bandit_router.engine.judge")
JUDGE_SYSTEM = "You are a strict, fair grader. Reply with a JSON object only."
MAX_REPLY_TOKENS = 300
OUTCOMES = ("scored", "unparsed", "error", "timeout", "skipped_budget")
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: str  # one of OUTCOMES
    score: float | None = None
    reason: str = ""
    spend_usd: float = 0.0


def sample_rate(config: JudgeConfig, bucket: str, evidence: float,
                explored: bool = False) -> float:
    """How likely an answer of this bucket's arm is judged: `young_rate` while the arm has
    no quality evidence, falling linearly to the bucket's rate (`bucket_rates`, else
    `sample_rate`) as it reaches `young_evidence` observations, and staying there; at least
    `explore_rate` for an answer from a model the router did not believe best (`explored`).

    Why explorations: the router sends most calls to the model it believes best and tries
    another when that one's quality is in doubt. Scores of the believed-best model mostly
    confirm it; a score of the other is what can move traffic. On routerbench_subset (8
    seeds, experiments/judge.py) judging every exploration, with the rest at 5%, brought a
    0.85 judge from 3.8 to 0.7 quality points of a router told every answer's quality."""
    settled = config.bucket_rates.get(bucket, config.sample_rate)
    if config.young_evidence <= 0 or evidence >= config.young_evidence:
        rate = settled
    else:
        young = max(config.young_rate, settled)
        rate = young + (settled - young) * evidence / config.young_evidence
    return max(rate, config.explore_rate) if explored else rate


def conversation_text(messages: Sequence[dict[str, Any]], max_chars: int) -> str:
    """The conversation as "role: text" lines, its end kept when it is too long (the last
    turns are what the answer answers)."""
    lines = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = "\n".join(str(p.get("text", "")) for p in content
                                if isinstance(p, dict) and p.get("type") == "text")
        lines.append(f"{m.get('role', 'user')}: {content or ''}")
    text = "\n".join(lines)
    return text if len(text) <= max_chars else "…" + text[-max_chars:]


def judge_request(config: JudgeConfig, model: str, messages: Sequence[dict[str, Any]],
                  answer: str, json_mode: bool = True) -> dict[str, Any]:
    """The chat-completions body asking the judge to grade `answer`."""
    shown = answer if len(answer) <= config.max_chars else answer[:config.max_chars] + "…"
    prompt = config.prompt.format(conversation=conversation_text(messages, config.max_chars),
                                  answer=shown)
    body: dict[str, Any] = {"model": model, "temperature": 0, "max_tokens": MAX_REPLY_TOKENS,
                            "messages": [{"role": "system", "content": JUDGE_SYSTEM},
                                         {"role": "user", "content": prompt}]}
    if json_mode:
        body["response_format"] = {"type": "json_object"}
    return body


def parse_verdict(content: str) -> tuple[float | None, str]:
    """(score, reason) from the judge's reply: a JSON object (possibly fenced or with text
    around it) whose `score` is a number in [0, 1]; score None when it is anything else."""
    match = _OBJECT.search(content or "")
    if match is None:
        return None, "no JSON object in the reply"
    try:
        data = orjson.loads(match.group(0))
    except orjson.JSONDecodeError:
        return None, "the reply's JSON does not parse"
    score = data.get("score") if isinstance(data, dict) else None
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
        return None, "no score in [0, 1]"
    reason = data.get("reason")
    return float(score), reason[:500] if isinstance(reason, str) else ""


class Completions(Protocol):
    async def __call__(self, body: dict[str, Any],
                       timeout_s: float) -> tuple[int | None, dict | None, str]:
        """(status, answer, reason) of one non-streamed call to the judge's upstream."""


def _reply(answer: dict | None) -> tuple[str, dict]:
    """The reply's text and usage; empty when the answer is not the expected shape."""
    choices = answer.get("choices") if isinstance(answer, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    usage = answer.get("usage") if isinstance(answer, dict) else None
    return (content if isinstance(content, str) else ""), \
        (usage if isinstance(usage, dict) else {})


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 \
        else None


class Judge:
    """Samples answers, asks the judge model, records its score. One per app."""

    def __init__(self, config: JudgeConfig, model: Model, complete: Completions,
                 record: Callable[[str, RouteTicket, Facts], Awaitable[object]],
                 account: Callable[[RouteTicket, float, Verdict], Awaitable[object]],
                 counted: Callable[[Verdict], None], seed: int | None,
                 clock: Callable[[], float]) -> None:
        self.config, self.model = config, model
        self._complete, self._record, self._account = complete, record, account
        self._counted, self._clock = counted, clock
        self._rng = random.Random(seed)
        budget = config.budget_usd
        self._budget = Pacer(BudgetConfig("judge", budget, config.window, pacing=False),
                             clock()) if budget else None
        self.pending: set[asyncio.Task] = set()

    def spent(self, usd: float, at: float) -> None:
        """Count judge spend against its budget (at start: what the store already holds)."""
        if self._budget is not None:
            self._budget.charge(usd, at)

    def wants(self, ticket: RouteTicket, evidence: float, explored: bool = False) -> bool:
        """Whether to judge this answer (drawn once per answer, seeded)."""
        judged = self.config.policies
        if judged and ticket.policy not in judged:
            return False
        return self._rng.random() < sample_rate(self.config, ticket.bucket, evidence,
                                                explored)

    def consider(self, route_id: str, ticket: RouteTicket, messages: Sequence[dict],
                 answer: str, evidence: float, explored: bool = False) -> None:
        """Maybe judge a sent answer, in the background; `explored`: it came from a model
        the router did not believe best for the request."""
        if not self.wants(ticket, evidence, explored):
            return
        if self._budget is not None and self._budget.exhausted_for(ticket.tenant):
            self._counted(Verdict("skipped_budget"))
            return
        task = asyncio.create_task(self._judge(route_id, ticket, messages, answer))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _judge(self, route_id: str, ticket: RouteTicket, messages: Sequence[dict],
                     answer: str) -> None:
        try:
            verdict = await self.grade(messages, answer)
            self.spent(verdict.spend_usd, self._clock())
            await self._account(ticket, self._clock(), verdict)
            if verdict.score is not None:
                await self._record(route_id, ticket, Facts(judge_quality=verdict.score))
            self._counted(verdict)
            log.info("judged", route_id=route_id, model=ticket.model, outcome=verdict.outcome,
                     score=verdict.score, reason=verdict.reason,
                     spend_usd=round(verdict.spend_usd, 8))
        except Exception as exc:  # a storage fault or a duplicate must not go unnoticed
            self._counted(Verdict("error"))
            log.error("judge_failed", route_id=route_id, error=str(exc))

    async def grade(self, messages: Sequence[dict], answer: str) -> Verdict:
        """Ask the judge; JSON mode first, plain text if the upstream refuses JSON mode."""
        upstream = self.model.upstream.model if self.model.upstream else self.model.name
        status, data, reason = await self._complete(
            judge_request(self.config, upstream, messages, answer), self.config.timeout_s)
        if status == 400:
            status, data, reason = await self._complete(
                judge_request(self.config, upstream, messages, answer, json_mode=False),
                self.config.timeout_s)
        if status != 200:
            return Verdict("timeout" if reason == "timeout" else "error", reason=reason)
        content, usage = _reply(data)
        spend = self._price(usage, messages, answer, content)
        score, why = parse_verdict(content)
        return Verdict("scored" if score is not None else "unparsed", score, why, spend)

    def _price(self, usage: dict, messages: Sequence[dict], answer: str, reply: str) -> float:
        """The call at the judge's list prices: its reported usage (bounded as any
        upstream's), else the text's length at 4 characters a token."""
        shown = len(conversation_text(messages, self.config.max_chars)) + \
            min(len(answer), self.config.max_chars) + len(self.config.prompt)
        inputs = _count(usage.get("prompt_tokens"))
        outputs = _count(usage.get("completion_tokens"))
        inputs, outputs, _ = clamped_usage(self.model, inputs, outputs, MAX_REPLY_TOKENS)
        return Prices.of(self.model).cost(-(-shown // 4) if inputs is None else inputs,
                                          -(-len(reply) // 4) if outputs is None else outputs)
