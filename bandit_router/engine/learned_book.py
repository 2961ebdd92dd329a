"""The learned buckets an engine routes by, and the recent answers that refine them.

In memory, per engine: the current `Split` of every (tenant, policy, rule bucket); the
sketches of recent decisions, waiting for their feedback (bounded, oldest dropped); and per
rule bucket a bounded sample of answers (sketch, model, quality), kept per model so that
the answers of a model the router rarely picks are not pushed out by the common one's.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable

import numpy as np

from bandit_router.core.learned import Split, child_name
from bandit_router.core.refine import Sample, refine
from bandit_router.core.settings import LearnedBuckets

SplitKey = tuple[str, str, str]  # (tenant, policy, rule bucket)
TEXT_CHARS = 200  # of a prompt, kept with its sample for labels


class LearnedBook:
    def __init__(self, settings: LearnedBuckets, seed: int = 0) -> None:
        self.settings = settings
        self.seed = seed
        self.splits: dict[SplitKey, Split] = {}
        self._pending: OrderedDict[str, tuple[SplitKey, np.ndarray, str]] = OrderedDict()
        self._samples: dict[SplitKey, dict[str, deque[tuple[int, Sample]]]] = {}
        self._fresh: dict[SplitKey, int] = {}  # answers since the bucket's last refinement
        self._seq = 0

    def assign(self, tenant: str, policy: str, bucket: str, vector: np.ndarray) -> str:
        """The bucket a request with this sketch goes to: its nearest child, else `bucket`."""
        split = self.splits.get((tenant, policy, bucket))
        child = split.nearest(vector) if split is not None else None
        return bucket if child is None else child_name(bucket, child.id)

    def decided(self, route_id: str, key: SplitKey, vector: np.ndarray, text: str) -> None:
        self._pending[route_id] = (key, vector.astype(np.float16), text[:TEXT_CHARS])
        if len(self._pending) > self.settings.remember:
            self._pending.popitem(last=False)

    def answered(self, route_id: str, model: str, quality: float) -> bool:
        """Keep the answer to a decision this engine made (False: it did not, or forgot)."""
        found = self._pending.pop(route_id, None)
        if found is None:
            return False
        key, vector, text = found
        self.add(key, Sample(vector.astype(np.float32), model, float(quality), text))
        return True

    def add(self, key: SplitKey, sample: Sample) -> None:
        per_model = self._samples.setdefault(key, {})
        kept = per_model.get(sample.model)
        if kept is None:
            kept = per_model[sample.model] = deque(maxlen=self.settings.samples_per_model)
        self._seq += 1
        kept.append((self._seq, sample))
        self._fresh[key] = self._fresh.get(key, 0) + 1

    def samples(self, key: SplitKey) -> list[Sample]:
        """A rule bucket's kept answers, oldest first."""
        rows = sorted(row for kept in self._samples.get(key, {}).values() for row in kept)
        return [s for _, s in rows]

    def due(self) -> list[SplitKey]:
        """Rule buckets with enough new answers to refine, in a fixed order."""
        every = self.settings.refine_every
        return sorted(k for k, n in self._fresh.items() if n >= every)

    def forget(self, key: SplitKey) -> None:
        """A rule bucket reset by an admin relearns from new answers only: its kept ones
        would split it again at once."""
        self._samples.pop(key, None)
        self._fresh.pop(key, None)

    def refined(self, key: SplitKey) -> None:
        self._fresh[key] = 0

    def room(self, tenant: str, policy: str) -> int:
        used = sum(len(s.children) for (t, p, _), s in self.splits.items()
                   if (t, p) == (tenant, policy))
        return max(0, self.settings.max_buckets - used)

    def split(self, key: SplitKey) -> Split:
        return self.splits.get(key) or Split(*key)

    def install(self, splits: Iterable[Split]) -> None:
        """Take stored or refined splits; an older version never replaces a newer one."""
        for split in splits:
            held = self.splits.get(split.key)
            if held is None or split.version >= held.version:
                self.splits[split.key] = split

    def jobs(self) -> list[tuple[Split, list[Sample], int]]:
        """What is due for refinement: (current split, its samples, room left), each
        bucket marked refined. The work (`run_job`) may then run on another thread."""
        out = []
        for key in self.due():
            self.refined(key)
            out.append((self.split(key), self.samples(key), self.room(key[0], key[1])))
        return out

    def run_job(self, job: tuple[Split, list[Sample], int]) -> Split:
        split, samples, room = job
        return refine(split, samples, self.settings, room, self.seed)

    def refine_now(self) -> list[Split]:
        """Refine every due bucket here and now (offline loops); the splits that changed."""
        changed = []
        for job in self.jobs():
            new = self.run_job(job)
            if new.version != job[0].version:
                self.install([new])
                changed.append(new)
        return changed

    def memory_bytes(self) -> int:
        """Roughly what the learned buckets hold (centroids, samples, waiting sketches)."""
        centroids = sum(s.centroids.nbytes + 300 * len(s.children) for s in self.splits.values())
        samples = sum(len(d) for per in self._samples.values() for d in per.values())
        return centroids + samples * (4 * 256 + TEXT_CHARS + 120) + \
            len(self._pending) * (2 * 256 + TEXT_CHARS + 150)
