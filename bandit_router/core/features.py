"""Request → `Features`: cheap, deterministic facts about a request (no model, no network)."""

from __future__ import annotations

import string
from functools import lru_cache

from bandit_router.core.settings import BucketRules
from bandit_router.core.sketch import sketch
from bandit_router.core.types import Features, RouteRequest

CHARS_PER_TOKEN = 4  # the usual rule of thumb for English text with BPE tokenisers
TOKENS_PER_MESSAGE = 4  # chat formats wrap every message in a few tokens of framing
# Cues are looked for where a request says what it wants: its first and last characters.
# A long prompt's middle is mostly pasted material, and scanning it costs time on every request.
HEAD_CHARS, TAIL_CHARS = 2500, 1000

_WORD_CHARS = frozenset(string.ascii_lowercase + string.digits + " ")
_PREFIX = 3  # letters of a cue checked against the text's word starts before scanning
# Punctuation and whitespace become spaces, so " " + cue finds a cue at the start of a word.
_TO_SPACES = str.maketrans({c: " " for c in string.punctuation + string.whitespace})


def estimate_tokens(chars: int, messages: int) -> int:
    return -(-chars // CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * messages


def _is_word(cue: str) -> bool:
    return cue[:1].isalnum() and set(cue) <= _WORD_CHARS


class CueMatcher:
    """Counts, for each group of cues (one per task, then the complexity cues), how many
    distinct cues occur. Word cues (letters, digits, spaces) match at the start of a word,
    so "bug" does not fire on "debug"; symbol cues (e.g. "```") match anywhere. Each
    distinct cue is looked for once, however many groups name it."""

    def __init__(self, groups: tuple[tuple[str, ...], ...]) -> None:
        slots: dict[str, list[int]] = {}
        for g, cues in enumerate(groups):
            for cue in dict.fromkeys(cues):
                slots.setdefault(cue, []).append(g)
        self.groups = len(groups)
        # A word cue can only occur if some word of the text starts with its first letters:
        # cues are grouped by those letters, and a set intersection picks the few groups
        # worth scanning the text for.
        self.by_head: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
        self.short: list[tuple[str, tuple[int, ...]]] = []  # first word too short to index
        for cue, s in slots.items():
            if _is_word(cue):
                head = cue.split()[0][:_PREFIX]
                entry = (" " + cue, tuple(s))
                if len(head) < _PREFIX:
                    self.short.append(entry)
                else:
                    self.by_head.setdefault(head, []).append(entry)
        self.heads = frozenset(self.by_head)
        self.symbols = [(cue, tuple(s)) for cue, s in slots.items() if not _is_word(cue)]

    def counts(self, text: str) -> list[int]:
        lowered = text.lower()
        spaced = f" {lowered.translate(_TO_SPACES)} "
        hits = [0] * self.groups
        present = self.heads.intersection({word[:_PREFIX] for word in set(spaced.split())})
        for head in present:
            for cue, groups in self.by_head[head]:
                if cue in spaced:
                    for g in groups:
                        hits[g] += 1
        for cue, groups in self.short:
            if cue in spaced:
                for g in groups:
                    hits[g] += 1
        for cue, groups in self.symbols:
            if cue in lowered:
                for g in groups:
                    hits[g] += 1
        return hits


@lru_cache(maxsize=32)
def matcher(rules: BucketRules) -> CueMatcher:
    return CueMatcher((*(rule.cues for rule in rules.tasks), rules.complexity.cues))


def window(text: str) -> str:
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return f"{text[:HEAD_CHARS]}\n{text[-TAIL_CHARS:]}"


def extract(request: RouteRequest, rules: BucketRules,
            cues: CueMatcher | None = None) -> Features:
    """`cues`: the rules' matcher, when the caller keeps one (saves hashing the rules)."""
    raw = "\n".join([m.content for m in request.messages])
    hits = (cues or matcher(rules)).counts(window(raw))
    estimated = estimate_tokens(len(raw), len(request.messages))
    return Features(
        input_tokens=request.input_tokens if request.input_tokens is not None else estimated,
        chars=len(raw),
        turns=max(1, sum(1 for m in request.messages if m.role == "user")),
        output_tokens=request.max_output_tokens,
        task_hint=request.task.strip().lower() if request.task else None,
        task_cues=tuple(zip((rule.name for rule in rules.tasks), hits, strict=False)),
        complexity_cues=hits[-1],
        sketch=sketch(raw) if rules.learned.enabled and not request.task and
        not request.bucket else None,
    )
