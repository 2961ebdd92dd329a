"""Running policies on a dataset in the two regimes, in parallel worker processes.

A policy is described by a picklable `Spec`; each worker rebuilds the dataset context once
and turns specs into choosers, so every run of the router goes through the real engine.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from bandit_router.bench import baselines
from bandit_router.bench.dataset import Dataset, load
from bandit_router.bench.metrics import Trace
from bandit_router.bench.world import ReplayWorld
from bandit_router.config import load as load_config
from bandit_router.core.buckets import bucket_of
from bandit_router.core.features import extract
from bandit_router.core.settings import Config
from bandit_router.core.types import Constraints
from bandit_router.engine.simulate import Chooser, Clock, RouterChooser, run, with_catalog


@dataclass(frozen=True)
class Spec:
    """One policy to run. `group` names the curve it belongs to; `param` is its sweep value."""

    name: str
    kind: str
    group: str
    param: float | None = None
    options: tuple[tuple[str, object], ...] = ()

    def option(self, key: str, default=None):
        return dict(self.options).get(key, default)


@dataclass(frozen=True)
class Job:
    spec: Spec
    regime: str  # "cold_start" | "steady_state"
    seed: int
    length: int


@dataclass
class Context:
    """What every policy may know about a dataset (never its task labels)."""

    ds: Dataset
    config: Config
    world: ReplayWorld = field(init=False)

    def __post_init__(self) -> None:
        self.config = with_catalog(self.config, self.ds.models)
        self.world = ReplayWorld(self.ds)

    @cached_property
    def buckets(self) -> list[str]:
        rules = self.config.buckets
        return [bucket_of(extract(self.world.request(i), rules), rules)
                for i in range(len(self.ds))]

    @cached_property
    def cost_ref(self) -> np.ndarray:
        ref = self.ds.cost.max(axis=1)
        return np.where(ref > 0, ref, 1.0)

    @property
    def names(self) -> tuple[str, ...]:
        return self.ds.names

    @cached_property
    def strongest(self) -> str:
        return self.names[int(self.ds.quality.mean(axis=0).argmax())]

    @cached_property
    def cheapest(self) -> str:
        return self.names[int(self.ds.cost.mean(axis=0).argmin())]

    @cached_property
    def middle(self) -> str:
        """The model of median mean cost: what a team picks as its "standard" tier."""
        order = np.argsort(self.ds.cost.mean(axis=0))
        return self.names[int(order[len(order) // 2])]

    @property
    def default_weight(self) -> float:
        return self.config.policies[self.config.routing.default_policy].weights.cost


def _router_config(ctx: Context, spec: Spec) -> Config:
    config = ctx.config
    name = config.routing.default_policy
    policy = config.policies[name]
    if spec.option("prior") is not None:
        policy = replace(policy, prior=replace(policy.prior, **dict(spec.option("prior"))))
    if spec.option("policy") is not None:
        policy = replace(policy, **dict(spec.option("policy")))
    if spec.param is not None:  # the mode's price weight
        field = "points_per_price_doubling" if policy.mode == "value" else "cost"
        policy = replace(policy, weights=replace(policy.weights, **{field: spec.param}))
    policies = dict(config.policies)
    policies[name] = policy
    config = replace(config, policies=type(config.policies)(policies))
    if spec.option("learned") is not None:  # e.g. rules-only buckets (learning off)
        learned = replace(config.buckets.learned, **dict(spec.option("learned")))
        config = replace(config, buckets=replace(config.buckets, learned=learned))
    return config


def hand_map(ctx: Context) -> dict[str, str]:
    """A bucket map a team would write: hard work to the strongest model, routine work to
    the middle tier, chit-chat and labelling to the cheapest."""
    mapping = {}
    for bucket in ctx.config.buckets.names:
        task, level = bucket.split(":")
        if level != ctx.config.buckets.levels[0] or task in ("code", "math"):
            mapping[bucket] = ctx.strongest
        elif task in ("reasoning", "write", "summarize"):
            mapping[bucket] = ctx.middle
        else:
            mapping[bucket] = ctx.cheapest
    return mapping


def build(ctx: Context, spec: Spec, clock: Clock, seed: int) -> Chooser:
    k, names = spec.kind, ctx.names
    weight = ctx.default_weight if spec.param is None else spec.param
    if k == "router":
        pair = spec.option("models")
        constraints = Constraints(models=frozenset(pair)) if pair else None
        return RouterChooser(_router_config(ctx, spec), clock, seed, spec.name,
                             constraints=constraints)
    if k == "fixed":
        return baselines.Fixed(spec.name, spec.option("model"))
    if k == "random":
        return baselines.Uniform(spec.option("models", names), seed, spec.name)
    if k == "length":
        return baselines.LengthRule(spec.name, int(spec.param), ctx.cheapest, ctx.strongest)
    if k == "keyword":
        return baselines.KeywordRule(spec.name, ctx.cheapest, ctx.strongest)
    if k == "hand_map":
        return baselines.BucketMap(spec.name, ctx.buckets, hand_map(ctx), ctx.cheapest)
    if k == "hindsight":
        mapping = baselines.hindsight_map(ctx.buckets, ctx.ds.quality, ctx.ds.cost, names,
                                          weight)
        return baselines.BucketMap(spec.name, ctx.buckets, mapping, ctx.strongest)
    if k == "oracle":
        return baselines.Oracle(ctx.ds.quality, ctx.ds.cost, names)
    if k == "epsilon_greedy":
        return baselines.EpsilonGreedy(spec.name, ctx.buckets, names, weight, ctx.cost_ref,
                                       epsilon=0.1, seed=seed)
    if k == "ucb1":
        return baselines.UCB1(spec.name, ctx.buckets, names, weight, ctx.cost_ref)
    raise ValueError(f"unknown policy kind {k!r}")


def items_for(job: Job, n: int) -> np.ndarray:
    rng = np.random.default_rng(1_000_003 * job.seed + 17)
    if job.regime == "cold_start":
        return rng.permutation(n)
    return rng.integers(0, n, size=job.length)


def trace(ctx: Context, job: Job) -> Trace:
    clock = Clock()
    chooser = build(ctx, job.spec, clock, job.seed)
    items = items_for(job, len(ctx.ds))
    index = {name: j for j, name in enumerate(ctx.names)}
    models = np.empty(len(items), dtype=np.int16)
    quality = np.empty(len(items))
    cost = np.empty(len(items))
    rng = np.random.default_rng(job.seed)
    for step in run(chooser, ctx.world, items, clock, rng):
        models[step.step] = index[step.model]
        quality[step.step] = step.outcome.quality
        cost[step.step] = step.outcome.cost_usd
    return Trace(items=items, models=models, quality=quality, cost=cost)


# --- worker processes ------------------------------------------------------------------------

_CTX: Context | None = None


def _init(dataset_path: str, config_path: str | None, rows: np.ndarray | None) -> None:
    global _CTX
    ds = load(dataset_path)
    if rows is not None:
        ds = ds.subset(rows)
    _CTX = Context(ds, load_config(config_path))


def _work(job: Job) -> tuple[Job, Trace]:
    assert _CTX is not None
    return job, trace(_CTX, job)


def run_all(jobs: Iterable[Job], dataset_path: str, config_path: str | None,
            rows: np.ndarray | None = None, workers: int | None = None,
            progress: Callable[[int, int], None] | None = None) -> dict[Job, Trace]:
    """Run every job, in `workers` processes (default: one per CPU); returns traces by job."""
    jobs = list(jobs)
    workers = workers or os.cpu_count() or 1
    results: dict[Job, Trace] = {}
    if workers == 1:
        _init(dataset_path, config_path, rows)
        for i, job in enumerate(jobs):
            results[job] = _work(job)[1]
            if progress:
                progress(i + 1, len(jobs))
        return results
    # Longest jobs first keeps both cores busy to the end.
    jobs.sort(key=lambda j: -j.length * (3 if j.spec.kind == "router" else 1))
    with ProcessPoolExecutor(workers, initializer=_init,
                             initargs=(dataset_path, config_path, rows)) as pool:
        futures = [pool.submit(_work, job) for job in jobs]
        for i, future in enumerate(as_completed(futures)):
            job, result = future.result()
            results[job] = result
            if progress:
                progress(i + 1, len(jobs))
    return results
