"""`Features` + bucket rules → the bucket a request falls in (``task:level``)."""

from __future__ import annotations

from bisect import bisect_right

from bandit_router.core.settings import BucketRules
from bandit_router.core.types import Features


def task_of(features: Features, rules: BucketRules) -> str:
    """The caller's hint when it names a task; else the task with the most cues."""
    hint = features.task_hint
    if hint:
        for rule in rules.tasks:
            if hint == rule.name or hint in rule.hints:
                return rule.name
    best, best_hits = rules.default_task, 0
    for rule, (_, hits) in zip(rules.tasks, features.task_cues, strict=True):
        if hits >= rule.min_cues and hits > best_hits:
            best, best_hits = rule.name, hits
    return best


def complexity(features: Features, rules: BucketRules) -> float:
    c = rules.complexity
    return (c.per_1k_input_tokens * features.input_tokens / 1000.0
            + c.per_1k_output_tokens * (features.output_tokens or 0) / 1000.0
            + c.per_extra_turn * (features.turns - 1)
            + c.per_cue * features.complexity_cues)


def level_of(score: float, rules: BucketRules) -> str:
    return rules.levels[bisect_right(rules.thresholds, score)]


def bucket_of(features: Features, rules: BucketRules) -> str:
    return f"{task_of(features, rules)}:{level_of(complexity(features, rules), rules)}"
