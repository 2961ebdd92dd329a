"""Learned buckets: a rule bucket (``task:level``) split into children ``task:level/k``.

A `Split` holds one rule bucket's children for one (tenant, policy): each child a centroid
in sketch space (`bandit_router.core.sketch`), a label and its size. A request goes to its
nearest child; with no children it stays in the rule bucket. Splits only change through
`bandit_router.core.refine` (off the hot path) or an admin's pin or reset, and are stored, one
row per version, so every replica and every restart routes by the same ones.

Evidence never depends on a split: feedback for a child also counts in its rule bucket
(`parent_of`, folded by the learner), and a child's quality prior is its parent's posterior
(shrunk, see `Engine`), so a split, a merge or a reset never throws learning away.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import numpy as np
import orjson

from bandit_router.core.sketch import DIM

SEPARATOR = "/"


def parent_of(bucket: str) -> str:
    """The rule bucket a (possibly learned) bucket belongs to."""
    return bucket.partition(SEPARATOR)[0]


def child_name(bucket: str, child: int) -> str:
    return f"{bucket}{SEPARATOR}{child}"


def is_child(bucket: str) -> bool:
    _, sep, k = bucket.partition(SEPARATOR)
    return bool(sep) and k.isdigit() and len(k) <= 6


@dataclass(frozen=True, slots=True)
class Child:
    id: int  # its bucket is "<rule bucket>/<id>"; ids are never reused within a split
    centroid: np.ndarray = field(compare=False, repr=False)  # unit float32, DIM
    size: int = 0  # samples nearest to it at the last refinement
    label: str = ""  # its most typical words
    example: str = ""  # the sample nearest its centroid, truncated
    pinned: bool = False  # refinement neither moves, splits nor merges it

    def same(self, other: Child) -> bool:
        return self == other and np.array_equal(self.centroid, other.centroid)


@dataclass(frozen=True, slots=True)
class Split:
    tenant: str
    policy: str
    bucket: str  # the rule bucket
    children: tuple[Child, ...] = ()
    version: int = 0  # +1 per change; a replica writes version v+1 only over version v
    next_id: int = 1
    centroids: np.ndarray = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        matrix = np.stack([c.centroid for c in self.children]) if self.children else \
            np.zeros((0, DIM), dtype=np.float32)
        object.__setattr__(self, "centroids", matrix)

    @property
    def key(self) -> tuple[str, str, str]:
        return self.tenant, self.policy, self.bucket

    def same(self, other: Split) -> bool:
        return self == other and all(a.same(b) for a, b in zip(self.children, other.children,
                                                               strict=True))

    def nearest(self, vector: np.ndarray) -> Child | None:
        if not self.children or not vector.any():
            return None
        return self.children[int(np.argmax(self.centroids @ vector))]

    def child(self, child_id: int) -> Child | None:
        return next((c for c in self.children if c.id == child_id), None)


def _vector_b64(v: np.ndarray) -> str:
    return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()


def _vector(text: str) -> np.ndarray:
    v = np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)
    if v.shape != (DIM,) or not np.isfinite(v).all():
        raise ValueError(f"a stored centroid must be {DIM} finite numbers")
    return v


def to_json(split: Split) -> str:
    """The stored form (centroids as little-endian float32, base64)."""
    return orjson.dumps({
        "next_id": split.next_id,
        "children": [{"id": c.id, "centroid": _vector_b64(c.centroid), "size": c.size,
                      "label": c.label, "example": c.example, "pinned": c.pinned}
                     for c in split.children]}).decode()


def from_json(tenant: str, policy: str, bucket: str, version: int, body: str) -> Split:
    data = orjson.loads(body)
    children = tuple(Child(int(c["id"]), _vector(c["centroid"]), int(c["size"]),
                           str(c["label"]), str(c["example"]), bool(c["pinned"]))
                     for c in data["children"])
    return Split(tenant, policy, bucket, children, version, int(data["next_id"]))


def child_json(split: Split, child: Child) -> dict:
    """A learned bucket as the API shows it."""
    return {"bucket": child_name(split.bucket, child.id), "parent": split.bucket,
            "label": child.label, "example": child.example, "size": child.size,
            "pinned": child.pinned, "version": split.version}
