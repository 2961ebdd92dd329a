"""Refinement of learned buckets: pure, deterministic, run off the hot path.

From a bounded sample of recent answers in a rule bucket (each its prompt's sketch, the
model that answered and the quality it got), a `Split` is refined:

- a rule bucket whose requests disagree about a model (two k-means groups of its answers
  differ in that model's quality by at least `min_gap`, with a z-score of at least `z`) is
  split into as many children as its answers support (`per_child` each, at most
  `max_children`); the groups are found by spherical k-means on the sketches, which never
  sees the qualities, so the test is not fitted to their noise;
- while its children still disagree and more answers support more of them, they are
  refined further: k-means starts from the current centroids (which keep their ids, hence
  their arms) and adds new ones;
- otherwise each child's centroid moves to the mean of the answers nearest it.

Pinned children never move. The number of learned buckets stays bounded (`max_children`
per rule bucket, `max_buckets` per tenant and policy). Nothing here touches evidence: see
`bandit_router.core.learned`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from bandit_router.core.learned import Child, Split
from bandit_router.core.settings import LearnedBuckets

EXAMPLE_CHARS = 80
_ITERATIONS = 12
_WORD = re.compile(r"[a-z][a-z+#']{2,}")
_STOP = frozenset((
    "the", "and", "for", "with", "that", "this", "what", "from", "into", "your", "you", "are",
    "was", "were", "can", "how", "why", "when", "which", "who", "will", "would", "could",
    "should", "about", "than", "then", "them", "they", "their", "there", "here", "have",
    "has", "had", "not", "but", "all", "any", "some", "one", "two", "its", "it's", "our",
    "out", "use", "using", "give", "write", "make", "tell", "me", "please", "more", "most",
    "very", "just", "also", "each", "other", "such", "only", "does", "did", "get", "like",
    "over", "under", "between"))


@dataclass(frozen=True, slots=True)
class Sample:
    vector: np.ndarray = field(compare=False, repr=False)
    model: str
    quality: float
    text: str = ""  # the prompt's first characters, for labels


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return (v / n).astype(np.float32) if n > 0 else v.astype(np.float32)


def nearest(centroids: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.argmax(x @ centroids.T, axis=1)


def disagreement(a: Sequence[Sample], b: Sequence[Sample], min_per_model: int) \
        -> tuple[float, float]:
    """The largest z-score over models both groups have enough answers of, and its gap."""
    best = (0.0, 0.0)
    for model in sorted({s.model for s in a} & {s.model for s in b}):
        qa = np.array([s.quality for s in a if s.model == model])
        qb = np.array([s.quality for s in b if s.model == model])
        if min(qa.size, qb.size) < min_per_model:
            continue
        gap = abs(float(qa.mean() - qb.mean()))
        # a floor on the variance: a handful of identical scores is no certainty
        se = np.sqrt(max(qa.var(), 0.01) / qa.size + max(qb.var(), 0.01) / qb.size)
        z = gap / float(se)
        if z > best[0]:
            best = (z, gap)
    return best


def describe(samples: Sequence[Sample], centroid: np.ndarray) -> tuple[str, str]:
    """A child's label (its three most frequent words) and example (nearest sample)."""
    words = Counter(w for s in samples for w in set(_WORD.findall(s.text.lower()))
                    if w not in _STOP)
    label = " ".join(w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))[:3])
    if not samples:
        return label, ""
    x = np.stack([s.vector for s in samples])
    text = samples[int(np.argmax(x @ centroid))].text
    return label, text[:EXAMPLE_CHARS]


def _child(cid: int, members: Sequence[Sample], centroid: np.ndarray) -> Child:
    label, example = describe(members, centroid)
    return Child(cid, centroid.astype(np.float32), len(members), label, example)


def _groups(children: Sequence[Child], samples: Sequence[Sample], x: np.ndarray) \
        -> list[list[Sample]]:
    side = nearest(np.stack([c.centroid for c in children]), x)
    return [[s for s, k in zip(samples, side, strict=True) if k == i]
            for i in range(len(children))]


def _recentred(children: Sequence[Child], groups: list[list[Sample]]) -> list[Child]:
    out = []
    for c, members in zip(children, groups, strict=True):
        if c.pinned or not members:
            out.append(c)
            continue
        centroid = _unit(np.stack([s.vector for s in members]).mean(axis=0))
        out.append(_child(c.id, members, centroid))
    return out


def kmeans(x: np.ndarray, start: np.ndarray, k: int, fixed: int, rng: np.random.Generator) \
        -> np.ndarray:
    """Spherical k-means from the `start` centroids, completed to `k` by k-means++ draws
    from `rng`; the first `fixed` centroids (pinned children) never move."""
    centroids = list(start)
    while len(centroids) < k:
        far = np.maximum(0.0, 1.0 - (x @ np.stack(centroids).T).max(axis=1)) if centroids \
            else np.ones(len(x))
        if far.sum() <= 0:
            break
        centroids.append(x[int(rng.choice(len(x), p=far / far.sum()))])
    c = np.stack(centroids)
    for _ in range(_ITERATIONS):
        side = nearest(c, x)
        moved = [c[i] if i < fixed or not (side == i).any() else _unit(x[side == i].mean(axis=0))
                 for i in range(len(c))]
        c = np.stack(moved)
    return c


def disagree(groups: Sequence[Sequence[Sample]], settings: LearnedBuckets) -> bool:
    """Whether two of the groups differ about some model (`min_gap`, `z`)."""
    for i in range(len(groups)):
        for j in range(i + 1, len(groups)):
            z, gap = disagreement(groups[i], groups[j], settings.min_per_model)
            if z >= settings.z and gap >= settings.min_gap:
                return True
    return False


def _target(split: Split, n: int, settings: LearnedBuckets, room: int) -> int:
    """How many children the samples can support (`per_child` each), within the bounds."""
    return min(settings.max_children, len(split.children) + room, n // settings.per_child)


def _clustered(split: Split, samples: Sequence[Sample], x: np.ndarray,
               settings: LearnedBuckets, room: int, seed: int) -> list[Child] | None:
    """The children k-means gives, the current ones (pinned first) as its start; None when
    the samples cannot support more children than there are, or the groups agree."""
    k = _target(split, len(samples), settings, room)
    current = sorted(split.children, key=lambda c: (not c.pinned, c.id))
    if k <= len(current) or k < 2 or len(samples) < settings.min_samples:
        return None
    if current and not disagree(_groups(current, samples, x), settings):
        return None  # the children agree: finer ones would only thin their evidence
    rng = np.random.default_rng([seed, split.version, len(samples)])
    start = np.stack([c.centroid for c in current]) if current else np.zeros((0, x.shape[1]))
    c = kmeans(x, start, k, sum(ch.pinned for ch in current), rng)
    side = nearest(c, x)
    groups = [[s for s, g in zip(samples, side, strict=True) if g == i] for i in range(len(c))]
    if not current and not disagree([g for g in groups if g], settings):
        return None  # the rule bucket's requests agree: it stays whole
    out, next_id = [], split.next_id
    for i, members in enumerate(groups):
        if i < len(current):
            old = current[i]
            out.append(old if old.pinned else _child(old.id, members, c[i]))
        elif members:
            out.append(_child(next_id, members, c[i]))
            next_id += 1
    return out


def refine(split: Split, samples: Sequence[Sample], settings: LearnedBuckets,
           room: int, seed: int = 0) -> Split:
    """`split` refined by `samples` (in arrival order); `room`: learned buckets this tenant
    and policy may still add; `seed`: k-means++ draws (the same seed, split and samples
    always give the same result). The version moves on only if something changed."""
    if not samples:
        return split
    x = np.stack([s.vector for s in samples])
    children = _clustered(split, samples, x, settings, room, seed)
    if children is None:
        if not split.children:
            return split  # the rule bucket stays whole
        children = _recentred(split.children, _groups(split.children, samples, x))
    next_id = max([split.next_id - 1, *(c.id for c in children)]) + 1
    new = replace(split, children=tuple(sorted(children, key=lambda c: c.id)), next_id=next_id)
    if new.same(split):
        return split
    return replace(new, version=split.version + 1)
