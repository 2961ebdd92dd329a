"""Request → `Features`: cheap, deterministic facts about a request (no model, no network)."""

from __future__ import annotations

import string
from functools import lru_cache

from bandit_router.config import BucketRules
from bandit_router.types import Features, RouteRequest

CHARS_PER_TOKEN = 4  # the usual rule of thumb for English text with BPE tokenisers
TOKENS_PER_MESSAGE = 4  # chat formats wrap every message in a few tokens of framing

_WORD_CHARS = frozenset(string.ascii_lowercase + string.digits + " ")
# Punctuation and whitespace become spaces, so " " + cue finds a cue at the start of a word.
_TO_SPACES = str.maketrans({c: " " for c in string.punctuation + string.whitespace})


def estimate_tokens(chars: int, messages: int) -> int:
    return -(-chars // CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * messages


@lru_cache(maxsize=256)
def _patterns(cues: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split cues into word cues (letters, digits, spaces: matched at the start of a word,
    so "bug" does not fire on "debug") and symbol cues (matched anywhere, e.g. "```")."""
    words = tuple(" " + c for c in cues if c[:1].isalnum() and set(c) <= _WORD_CHARS)
    symbols = tuple(c for c in cues if not (c[:1].isalnum() and set(c) <= _WORD_CHARS))
    return words, symbols


class Text:
    """A request's text, lower-cased, in the two forms cue matching needs."""

    __slots__ = ("lowered", "spaced")

    def __init__(self, text: str) -> None:
        self.lowered = text.lower()
        self.spaced = f" {self.lowered.translate(_TO_SPACES)} "

    def cue_hits(self, cues: tuple[str, ...]) -> int:
        """How many distinct cues occur: repeats of one cue add nothing."""
        words, symbols = _patterns(cues)
        return (sum(1 for cue in words if cue in self.spaced)
                + sum(1 for cue in symbols if cue in self.lowered))


def extract(request: RouteRequest, rules: BucketRules) -> Features:
    raw = "\n".join(m.content for m in request.messages)
    text = Text(raw)
    estimated = estimate_tokens(len(raw), len(request.messages))
    return Features(
        input_tokens=request.input_tokens if request.input_tokens is not None else estimated,
        chars=len(raw),
        turns=max(1, sum(1 for m in request.messages if m.role == "user")),
        output_tokens=request.max_output_tokens,
        task_hint=request.task.strip().lower() if request.task else None,
        task_cues=tuple((rule.name, text.cue_hits(rule.cues)) for rule in rules.tasks),
        complexity_cues=text.cue_hits(rules.complexity.cues),
    )
