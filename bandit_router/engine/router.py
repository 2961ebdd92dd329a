"""The engine: arms in memory, a request in, a decision out.

It never touches storage. Learned evidence arrives through `absorb` (from the storage
writer once a feedback is committed, or straight from an `ArmBook` offline), so the
service, the benchmarks and the experiments decide with exactly this code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from bandit_router.core import objective, posterior
from bandit_router.core.buckets import bucket_of
from bandit_router.core.budget import NO_PACING, Budgets, Pacing, window_bounds
from bandit_router.core.catalog import Catalog
from bandit_router.core.catalog_changes import Entry
from bandit_router.core.commitments import Commitments
from bandit_router.core.errors import (
    BudgetExhausted,
    NoEligibleModel,
    UnknownBucket,
    UnknownModel,
    UnknownPolicy,
)
from bandit_router.core.features import extract, matcher
from bandit_router.core.learned import is_child, parent_of
from bandit_router.core.policy import ArmPosteriors, thompson
from bandit_router.core.pooling import Pool
from bandit_router.core.posterior import Evidence
from bandit_router.core.route_id import RouteIds, new_nonce
from bandit_router.core.settings import Config, Model, PolicyConfig, Prior
from bandit_router.core.types import (
    NO_CONSTRAINTS,
    ArmExplanation,
    ArmKey,
    ArmReport,
    Decision,
    Features,
    RouteRequest,
    RouteTicket,
    SessionView,
)
from bandit_router.engine.arm_rows import arm_reports
from bandit_router.engine.arms import QUALITY_ROWS, BucketArms, Reading, quality_counts
from bandit_router.engine.learned_book import LearnedBook
from bandit_router.engine.sessions import Sessions


class _Scored(NamedTuple):
    """A bucket's reading, priced for the request at hand."""

    arms: ArmPosteriors
    reading: Reading
    output_tokens: np.ndarray  # expected, capped by the caller's max_output_tokens


def _needed(features: Features) -> int:
    """Tokens a model's context window must hold for the request: its input and the output
    the caller reserved (providers refuse input + max_tokens beyond the window). Decided from
    the request alone: no learned length, which one wild claim could inflate, may make a
    model ineligible."""
    return features.input_tokens + (features.output_tokens or 0)


def base_quality(prior: Prior, models: tuple[Model, ...]) -> np.ndarray:
    """Each model's prior mean quality: its own `quality_prior` if the catalog gives one,
    else the policy's mean, tilted by `price_slope` along the catalog's log-price range
    (the priciest model gets mean + slope/2, the cheapest mean - slope/2)."""
    log_price = np.log([m.input_per_mtok + m.output_per_mtok + 1e-9 for m in models])
    span = log_price.max() - log_price.min()
    tilt = (log_price - log_price.min()) / span - 0.5 if span > 0 else np.zeros(len(models))
    tilted = np.clip(prior.quality_mean + prior.price_slope * tilt, 0.01, 0.99)
    own = np.array([np.nan if m.quality_prior is None else m.quality_prior for m in models])
    return np.where(np.isnan(own), tilted, own)


def _refusal(pacing: Pacing, now: float) -> BudgetExhausted:
    budget = pacing.exhausted
    end = window_bounds(budget.window, now)[1]
    what = f"your tenant's share ({budget.max_tenant_share:g}) of budget {budget.name!r}" \
        if pacing.share_spent else f"budget {budget.name!r}"
    return BudgetExhausted(
        f"{what} ({budget.limit_usd:g} USD per {budget.window}) is spent; "
        f"it renews in {end - now:.0f} s", retry_after_s=end - now)


class Engine:
    def __init__(self, config: Config, route_ids: RouteIds, rng: np.random.Generator,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.catalog = Catalog(config.models)
        self._route_ids = route_ids
        self._rng = rng
        self._clock = clock
        # Arms live per (tenant, policy, bucket); pools per (tenant, policy).
        self._tables: dict[tuple[str, str, str], BucketArms] = {}
        self._pools: dict[tuple[str, str], Pool] = {}  # refitted after new evidence
        self._unfitted: dict[tuple[str, str], float] = {}  # evidence since the last fit
        # Readings by (policy, bucket): (reading, pool it used, table version, time read).
        self._readings: dict[tuple[str, str, str], tuple[Reading, Pool | None, int, float]] = {}
        self._base_quality = {name: base_quality(p.prior, config.models)
                              for name, p in config.policies.items()}
        self.orphans: dict[ArmKey, Evidence] = {}
        self._buckets = frozenset(config.buckets.names)
        self._cues = matcher(config.buckets)
        self.learned = LearnedBook(config.buckets.learned, config.routing.seed or 0)
        self.budgets = Budgets(config.budgets, clock())
        self.commitments = Commitments(config.commitments, clock())
        self.sessions = Sessions(config.sessions)
        # route_ids must be unique: a random prefix per engine, then a counter
        self._nonce_prefix, self._issued = new_nonce()[:8], 0

    def now(self) -> float:
        return self._clock()

    # --- learning arrives here ---------------------------------------------------------

    def _table(self, tenant: str, policy: str, bucket: str) -> BucketArms:
        table = self._tables.get((tenant, policy, bucket))
        if table is None:
            table = BucketArms(len(self.catalog), self.config.routing.recent_window)
            self._tables[(tenant, policy, bucket)] = table
        return table

    def _usable(self, policy: str, bucket: str, model: str) -> int | None:
        """The model's column if the config still has its model, policy and bucket."""
        if policy not in self.config.policies or parent_of(bucket) not in self._buckets or \
                (bucket not in self._buckets and not is_child(bucket)):
            return None
        return self.catalog.index.get(model)

    def absorb(self, changes: Mapping[ArmKey, Evidence]) -> None:
        """Install new evidence. Arms whose model, policy or bucket the config no longer has
        are kept aside (`orphans`): stored and shown, never used."""
        for key, ev in changes.items():
            if not posterior.sound(ev):  # never let a damaged value reach a posterior
                ev = posterior.repaired(ev)
            i = self._usable(key.policy, key.bucket, key.model)
            if i is None:
                self.orphans[key] = ev
                continue
            table = self._table(key.tenant, key.policy, key.bucket)
            before = table.evidence[QUALITY_ROWS, i].sum()
            table.set(i, ev)
            pool = (key.tenant, key.policy)
            after = ev.quality_n + ev.judge_n
            self._unfitted[pool] = self._unfitted.get(pool, 0.0) + abs(after - before) + 1e-9

    def set_catalog(self, entries: Sequence[Entry]) -> None:
        """Serve a changed catalog from the next decision on. Everything is built first and
        swapped in one synchronous step on the event loop, so no decision sees half of it.
        A model may only be added (at the end) or change: its arms keep their evidence
        while it is disabled; a new model's arms start from the prior (pooled, as for any
        untried arm), which Thompson sampling explores. Orphaned arms of a model that is
        back are adopted."""
        models = tuple(e.model for e in entries)
        catalog = Catalog(models, [e.enabled for e in entries])
        missing = [n for n in self.catalog.names if n not in catalog.index]
        if missing:
            raise ValueError(f"a catalog change may not remove models: {', '.join(missing)}")
        columns = np.array([catalog.index[n] for n in self.catalog.names], dtype=int)
        tables = {key: t.widened(columns, len(catalog)) for key, t in self._tables.items()}
        base = {name: base_quality(p.prior, models) for name, p in self.config.policies.items()}
        self.config, self.catalog = replace(self.config, models=models), catalog
        self._tables, self._base_quality = tables, base
        # cached readings and pools are per column: recomputed on the next decision
        self._pools, self._unfitted, self._readings = {}, {}, {}
        adopted = {k: ev for k, ev in self.orphans.items()
                   if self._usable(k.policy, k.bucket, k.model) is not None}
        for key in adopted:
            del self.orphans[key]
        self.absorb(adopted)

    def spent(self, tenant: str, policy: str, usd: float, at: float,
              model: str | None = None) -> None:
        """Count list-price spend (committed feedback, priced) against the commitment
        covering its model, and its effective spend (at the commitment's prices) against
        the budgets covering it."""
        if model is not None and self.commitments:
            i = self.catalog.index.get(model)
            usd = self.commitments.charge(None if i is None else self.catalog.models[i],
                                          usd, at)
        self.budgets.charge(tenant, policy, usd, at)

    def replay_spent(self, spent: Sequence[tuple[str, str, float, float, str]]) -> None:
        """Count spend recorded before a start, oldest first. The commitments start from
        the oldest hour, so a window before the current one is priced by its own usage."""
        if spent and self.commitments:
            self.commitments = Commitments(self.config.commitments, min(s[3] for s in spent))
        for tenant, policy, usd, at, model in spent:
            self.spent(tenant, policy, usd, at, model)

    def evidence(self, tenant: str, policy: str, bucket: str, model: str) -> float:
        """Quality observations behind an arm (undecayed): how sure the router is of it."""
        table = self._tables.get((tenant, policy, bucket))
        i = self.catalog.index.get(model)
        if table is None or i is None:
            return 0.0
        return float(sum(quality_counts(table.evidence[:, i:i + 1],
                                        self.config.judge.accuracy)).sum())

    def remember(self, decisions: Iterable[tuple[str, str, str, str]]) -> None:
        """Replay earlier (tenant, policy, bucket, model) decisions into the recent-traffic
        windows."""
        for tenant, policy, bucket, model in decisions:
            i = self._usable(policy, bucket, model)
            if i is not None:
                self._table(tenant, policy, bucket).record(i)

    # --- deciding ----------------------------------------------------------------------

    def policy(self, name: str | None) -> PolicyConfig:
        name = name or self.config.routing.default_policy
        found = self.config.policies.get(name)
        if found is None:
            known = ", ".join(self.config.policies)
            raise UnknownPolicy(f"unknown policy {name!r}; known: {known}", "policy")
        return found

    def check_bucket(self, bucket: str, learned: bool = False) -> str:
        """`learned`: a learned bucket (``task:level/k``) is a known one too."""
        if bucket not in self._buckets and not (
                learned and is_child(bucket) and parent_of(bucket) in self._buckets):
            raise UnknownBucket(f"unknown bucket {bucket!r}; buckets are task:level with "
                                f"levels {', '.join(self.config.buckets.levels)}", "bucket")
        return bucket

    def features(self, request: RouteRequest) -> Features:
        return extract(request, self.config.buckets, self._cues)

    def decide(self, request: RouteRequest, features: Features | None = None) -> Decision:
        """The decision for `request`; pass its `features` if already computed."""
        now = self._clock()
        policy = self.policy(request.policy)
        features = features or self.features(request)
        bucket = (self.check_bucket(request.bucket) if request.bucket
                  else bucket_of(features, self.config.buckets))
        rule_bucket = bucket
        if features.sketch is not None:
            bucket = self.learned.assign(request.tenant, policy.name, bucket, features.sketch)
        # Not registered until a decision is made: a refused request (422, unknown model)
        # must not add empty arms to /v1/arms that a restart would not bring back.
        tenant = request.tenant
        pacing = self.budgets.pacing(tenant, policy.name, now)
        if pacing.exhausted is not None and pacing.exhausted.when_spent == "refuse":
            raise _refusal(pacing, now)
        table = self._tables.get((tenant, policy.name, bucket)) or BucketArms(
            len(self.catalog), self.config.routing.recent_window)
        session = self._session(request, features, now)
        scored = self._score(table, tenant, policy, bucket, features, now,
                             None if session is None else session[3])
        eligible = self._eligible(request, features, scored.arms)
        weights = objective.weights_for(policy, request.weights)
        choice = thompson(self._rng, scored.arms, eligible, weights, policy.mode,
                          policy.target_for(bucket), pacing.price)
        order = choice.order.tolist()
        if pacing.exhausted is not None:  # spent: the cheapest eligible model, then the next
            order = sorted(order, key=lambda i: scored.arms.expected_cost[i])
        best = order[0]
        self._tables.setdefault((tenant, policy.name, bucket), table).record(best)
        created = round(now * 1000) / 1000
        model = self.catalog.names[best]
        self._issued += 1
        ticket = RouteTicket(policy.name, bucket, model, created, features.input_tokens,
                             f"{self._nonce_prefix}{self._issued:x}", tenant, request.measured)
        explanation = optimised = None
        if request.explain:
            explanation = self._explain(request, features, scored, choice, best, policy.mode,
                                        None if session is None else session[1])
            optimised = objective.objective(policy, weights, pacing.price, bucket)
        route_id = self._route_ids.issue(ticket)
        view = None
        if session is not None:
            view = session[0]
            self.turn(tenant, request.session_id, model, features.input_tokens, now)
            self.sessions.expect(route_id, tenant, model, float(session[2][best]))
        if features.sketch is not None:
            self.learned.decided(route_id, (tenant, policy.name, rule_bucket), features.sketch,
                                 request.messages[-1].content if request.messages else "")
        return Decision(
            route_id=route_id, model=model, bucket=bucket,
            policy=policy.name, expected_cost_usd=float(scored.arms.expected_cost[best]),
            expected_latency_ms=float(scored.arms.expected_latency[best]),
            fallbacks=tuple([self.catalog.names[i] for i in order[1:]]),
            input_tokens=features.input_tokens, created_at=created, explanation=explanation,
            tenant=tenant, budget=objective.effect(policy, pacing, weights)
            if pacing is not NO_PACING else None, objective=optimised,
            session=view if request.explain else None,
            favourite=None if choice.favourite is None else self.catalog.names[choice.favourite])

    def turn(self, tenant: str, session: str, model: str, prompt_tokens: int,
             now: float | None = None) -> None:
        """A session's turn went to `model` (the gateway calls this again when a fallback
        answered instead)."""
        i = self.catalog.index.get(model)
        if i is not None:
            self.sessions.turn(tenant, session, model, self.catalog.models[i].provider,
                               prompt_tokens, self._clock() if now is None else now)

    def _session(self, request: RouteRequest, features: Features, now: float
                 ) -> tuple[SessionView, np.ndarray, np.ndarray, np.ndarray] | None:
        """A session turn: what was remembered, each arm's expected cached input, the
        prefix its cache could hold at most, and what the cache changes its price by (USD:
        cached input read at the cached price, less the rest of the prompt written to the
        cache where a provider charges writes, as often as that model caches)."""
        if request.session_id is None:
            return None
        state = self.sessions.get(request.tenant, request.session_id, now)
        cached = np.zeros(len(self.catalog))
        cacheable = np.zeros(len(self.catalog))
        rate = None
        i = None if state is None else self.catalog.index.get(state.model)
        if i is not None:
            # a provider caches a prompt's prefix: at most what this turn sends again
            cacheable[i] = min(state.prefix_tokens, features.input_tokens)
            rate = self.sessions.hit_rate(request.tenant, state.model)
            cached[i] = cacheable[i] * rate
        view = SessionView(request.session_id, None if i is None else state.model,
                           int(cacheable.max()), rate,
                           None if i is None else state.expires_at - now)
        saving = cached * (self.catalog.price_in - self.catalog.price_cached)
        if self.catalog.write_surcharge.any():
            caches = np.array([self.sessions.hit_rate(request.tenant, n)
                               for n in self.catalog.names])
            saving -= caches * (features.input_tokens - cached) * self.catalog.write_surcharge
        return view, cached, cacheable, saving

    def _pool(self, tenant: str, policy: PolicyConfig, exact: bool = False) -> Pool:
        """A tenant's pooled view of a policy's models. Refitted (in a fixed order, so the
        same evidence always gives the same fit) once new evidence reaches 1% of what the fit
        saw, or at once when `exact`: a prior needs no refit per observation."""
        key = (tenant, policy.name)
        pool = self._pools.get(key)
        unfitted = self._unfitted.get(key, 0.0)
        stale = unfitted > 0 and (exact or pool is None or unfitted >= 0.01 * pool.seen + 1.0)
        if pool is None or stale:
            evidence = {b: np.array(quality_counts(table.evidence, self.config.judge.accuracy))
                        for (t, p, b), table in self._tables.items() if (t, p) == key}
            pool = Pool(evidence, self._base_quality[policy.name], policy.prior.quality_strength)
            self._pools[key] = pool
            self._unfitted[key] = 0.0
        return pool

    def _pooled(self, policy: PolicyConfig) -> bool:
        return policy.pooling != "off" and policy.pool_strength > 0

    def _cached_read(self, tenant: str, policy: PolicyConfig, bucket: str, table: BucketArms,
                     now: float) -> Reading:
        """`_read`, reused until the bucket's evidence or the pool changes, or decay has
        moved it by about 0.07% (a thousandth of a half-life): deciding reads, it rarely
        needs to recompute."""
        pool = self._pool(tenant, policy) if self._pooled(policy) else None
        key = (tenant, policy.name, bucket)
        hit = self._readings.get(key)
        if hit is not None:
            reading, used, version, at = hit
            if used is pool and version == self._version(key, table) and \
                    0.0 <= now - at <= policy.half_life_hours * 3.6:
                return reading
        reading = self._read(tenant, policy, bucket, table, now)
        self._readings[key] = (reading, pool, self._version(key, table), now)
        return reading

    def _version(self, key: tuple[str, str, str], table: BucketArms) -> object:
        """What a cached reading depends on: its table, and a learned bucket's parent too."""
        if key[2] in self._buckets:
            return table.version
        parent = self._tables.get((key[0], key[1], parent_of(key[2])))
        return table.version, -1 if parent is None else parent.version

    def _read(self, tenant: str, policy: PolicyConfig, bucket: str, table: BucketArms,
              now: float, exact: bool = False) -> Reading:
        """A bucket's posteriors; its quality prior borrows from the policy's other buckets
        (a learned bucket's, from its rule bucket: see `_inherited`)."""
        if bucket not in self._buckets:
            alpha0, beta0 = self._inherited(tenant, policy, bucket, now, exact)
        elif self._pooled(policy):
            alpha0, beta0 = self._pool(tenant, policy, exact).prior(
                bucket, policy.prior, policy.pool_strength, policy.pooling == "optimistic")
        else:
            base = self._base_quality[policy.name]
            alpha0 = base * policy.prior.quality_strength
            beta0 = (1.0 - base) * policy.prior.quality_strength
        return table.read(policy, self.catalog.prior_latency_ms, now, alpha0, beta0,
                          self.catalog.price_out, self.config.judge.accuracy)

    def _inherited(self, tenant: str, policy: PolicyConfig, bucket: str, now: float,
                   exact: bool) -> tuple[np.ndarray, np.ndarray]:
        """A learned bucket's prior: its rule bucket's posterior (which holds every answer
        its children had too), worth at most `inherit` answers: a new child starts from what
        its parent learned, yet weakly, since it was split off for being different, and its
        own answers soon outweigh it."""
        parent = parent_of(bucket)
        table = self._tables.get((tenant, policy.name, parent)) or BucketArms(
            len(self.catalog), self.config.routing.recent_window)
        reading = self._read(tenant, policy, parent, table, now, exact) if exact else \
            self._cached_read(tenant, policy, parent, table, now)
        total = reading.alpha + reading.beta
        strength = np.minimum(total, self.config.buckets.learned.inherit)
        return reading.alpha / total * strength, reading.beta / total * strength

    def _score(self, table: BucketArms, tenant: str, policy: PolicyConfig, bucket: str,
               features: Features, now: float, saving: np.ndarray | None = None) -> _Scored:
        reading = self._cached_read(tenant, policy, bucket, table, now)
        out = reading.output_tokens
        if features.output_tokens is None:
            cost = features.input_tokens * self.catalog.price_in + reading.output_cost
        else:
            out = np.minimum(out, features.output_tokens)
            cost = self.catalog.cost(features.input_tokens, out)
        if saving is not None:  # a session turn: what its cache changes its price by
            cost = np.maximum(cost - saving, 0.0)
        if self.commitments:  # a committed provider's calls at their marginal price
            cost = cost * np.array(self.commitments.factors(self.catalog.models, now))
        floor = objective.cost_floor(features.input_tokens + reading.longest_answer) \
            if self.catalog.has_free or self.commitments else 0.0
        arms = ArmPosteriors(reading.alpha, reading.beta, reading.latency_mean,
                             reading.latency_var, reading.latency_count, cost,
                             reading.typical_latency_ms, reading.sampler, reading.quality_low,
                             reading.quality_high, floor)
        return _Scored(arms=arms, reading=reading, output_tokens=out)

    def _eligible(self, request: RouteRequest, features: Features,
                  arms: ArmPosteriors) -> np.ndarray:
        c = request.constraints
        need = _needed(features)
        if (c is NO_CONSTRAINTS or c == NO_CONSTRAINTS) and need <= self.catalog.smallest_context \
                and (self.catalog.all_callable or not request.needs_upstream):
            return self.catalog.every  # the usual request: every model qualifies
        named = (c.models or frozenset()) | c.exclude
        unknown = self.catalog.unknown(named)
        if unknown:
            field = "constraints.models" if c.models and unknown[0] in c.models else \
                "constraints.exclude"
            raise UnknownModel(f"unknown model {unknown[0]!r}; the catalog has "
                               f"{', '.join(self.catalog.names)}", field)
        mask = (need <= self.catalog.context) & self.catalog.enabled
        if request.needs_upstream:
            mask &= self.catalog.callable
        if c.models is not None:
            mask &= self.catalog.mask(c.models)
        if c.exclude:
            mask &= ~self.catalog.mask(c.exclude)
        if c.max_cost_usd is not None:
            mask &= arms.expected_cost <= c.max_cost_usd
        if c.max_latency_ms is not None:
            mask &= arms.expected_latency <= c.max_latency_ms
        eligible = np.flatnonzero(mask)
        if eligible.size == 0:
            reasons = self._reasons(request, features, arms)
            detail = "; ".join(f"{m}: {r}" for m, r in reasons.items())
            raise NoEligibleModel(f"no model satisfies the request's constraints ({detail})",
                                  "constraints")
        return eligible

    def _reasons(self, request: RouteRequest, features: Features,
                 arms: ArmPosteriors) -> dict[str, str]:
        """Why each model is ineligible (models that are eligible are absent)."""
        c = request.constraints
        out: dict[str, str] = {}
        need = _needed(features)
        for i, name in enumerate(self.catalog.names):
            if not self.catalog.enabled[i]:
                out[name] = "disabled"
            elif request.needs_upstream and not self.catalog.callable[i]:
                out[name] = "no upstream to call (models[].upstream)"
            elif c.models is not None and name not in c.models:
                out[name] = "not in constraints.models"
            elif name in c.exclude:
                out[name] = "in constraints.exclude"
            elif need > self.catalog.context[i]:
                out[name] = (f"needs {need:.0f} tokens, context is "
                             f"{self.catalog.context[i]:.0f}")
            elif c.max_cost_usd is not None and arms.expected_cost[i] > c.max_cost_usd:
                out[name] = (f"expected cost {arms.expected_cost[i]:.3g} USD > max_cost_usd "
                             f"{c.max_cost_usd:.3g}")
            elif c.max_latency_ms is not None and arms.expected_latency[i] > c.max_latency_ms:
                out[name] = (f"expected latency {arms.expected_latency[i]:.0f} ms > "
                             f"max_latency_ms {c.max_latency_ms:.0f}")
        return out

    def _explain(self, request, features, scored: _Scored, choice, chosen: int, mode: str,
                 cached: np.ndarray | None = None) -> tuple[ArmExplanation, ...]:
        arms = scored.arms
        lo, hi = posterior.quality_interval(arms.alpha, arms.beta)
        reasons = self._reasons(request, features, arms)
        at = {int(i): k for k, i in enumerate(choice.eligible)}
        value = choice.contending is not None
        # value mode: counted from the chosen model's price (its value = its own draw)
        shift = float(choice.quality_sample[at[chosen]] - choice.score[at[chosen]])

        def arm(i: int, name: str) -> ArmExplanation:
            k = at.get(i)
            drawn = k is not None
            return ArmExplanation(
                model=name, eligible=drawn, reason=reasons.get(name),
                quality_mean=float(scored.reading.quality_mean[i]),
                quality_interval=(float(lo[i]), float(hi[i])),
                quality_sample=min(1.0, max(0.0, float(choice.quality_sample[k])))
                if drawn else None,
                expected_cost_usd=float(arms.expected_cost[i]),
                expected_latency_ms=float(arms.expected_latency[i]),
                utility=float(choice.score[k]) if drawn and mode == "utility"
                else None,
                value=float(choice.score[k] + shift) if drawn and value else None,
                contending=bool(choice.contending[k]) if drawn and value else None,
                cached_input_tokens=None if cached is None else float(cached[i]))

        return tuple(arm(i, name) for i, name in enumerate(self.catalog.names))

    # --- reporting ---------------------------------------------------------------------

    def report(self, policy: str | None = None, bucket: str | None = None,
               tenant: str | None = None) -> list[ArmReport]:
        """What the arms have learned, decayed to now, in (tenant, policy, bucket, catalog)
        order; `tenant`, `policy`, `bucket` filter."""
        if policy is not None:
            self.policy(policy)
        if bucket is not None:
            self.check_bucket(bucket, learned=True)
        now = self._clock()
        out = []
        for (t, p, b), table in sorted(self._tables.items()):
            if (tenant is None or t == tenant) and (policy is None or p == policy) and \
                    (bucket is None or b == bucket):
                reading = self._read(t, self.config.policies[p], b, table, now, exact=True)
                out.extend(arm_reports(t, p, b, table, reading, self.catalog,
                                       self.config.judge.accuracy))
        return out
