"""Request → `Features`: cheap, deterministic facts about a request (no model, no network)."""

from __future__ import annotations

from bandit_router.config import BucketRules
from bandit_router.types import Features, RouteRequest

CHARS_PER_TOKEN = 4  # the usual rule of thumb for English text with BPE tokenisers
TOKENS_PER_MESSAGE = 4  # chat formats wrap every message in a few tokens of framing


def estimate_tokens(chars: int, messages: int) -> int:
    return -(-chars // CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * messages


def cue_hits(text: str, cues: tuple[str, ...]) -> int:
    """How many distinct cues occur in (lower-cased) `text`: repeats of one word add nothing."""
    return sum(1 for cue in cues if cue in text)


def extract(request: RouteRequest, rules: BucketRules) -> Features:
    text = "\n".join(m.content for m in request.messages)
    lowered = text.lower()
    estimated = estimate_tokens(len(text), len(request.messages))
    return Features(
        input_tokens=request.input_tokens if request.input_tokens is not None else estimated,
        chars=len(text),
        turns=max(1, sum(1 for m in request.messages if m.role == "user")),
        output_tokens=request.max_output_tokens,
        task_hint=request.task.strip().lower() if request.task else None,
        task_cues=tuple((rule.name, cue_hits(lowered, rule.cues)) for rule in rules.tasks),
        complexity_cues=cue_hits(lowered, rules.complexity.cues),
    )
