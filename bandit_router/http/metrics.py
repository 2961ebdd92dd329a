"""Prometheus metrics of one app, served at `GET /metrics`.

Two kinds of numbers. What happens on the request path (decisions, feedback, spend, errors,
decision time) is counted as it happens, by prometheus-client counters whose labelled
children are looked up once and kept. What the service knows at any moment (posterior
means, budgets, the write queue) is read from the engine and the store when Prometheus
scrapes, so it is never stale and costs nothing between scrapes.

Everything lives in this object, one per app (several apps share a test process): no
metric is registered in prometheus-client's global default registry. Under
`serve --workers N` the kernel hands each scrape to any one of the N processes, so the
counters are kept in files that every worker reads (prometheus-client's multiprocess
mode, `share_between_processes`): any worker answers with the sums over all of them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from bandit_router.core.types import Decision, RouteTicket
from bandit_router.engine.router import Engine
from bandit_router.storage.store import Store

PREFIX = "bandit_router"
ARM_LABELS = ("tenant", "policy", "bucket", "model")
ALL = "*"  # a budget's tenant or policy label when it covers every one
# A decision takes about 20 µs (README, Speed); the buckets reach 100 ms to show a stalled
# loop.
DECISION_BUCKETS = (10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 10e-3, 25e-3,
                    100e-3)
SHARED_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own switch


def share_between_processes() -> str:
    """Make the counters of processes forked from now on shared (for `serve --workers`):
    a fresh directory for their files, named in the environment the children inherit."""
    path = tempfile.mkdtemp(prefix="bandit-router-metrics-")
    os.environ[SHARED_DIR] = path
    return path


_values_for: list[str] = []  # the shared directory prometheus-client's values were set for


def _shared() -> str | None:
    path = os.environ.get(SHARED_DIR)
    if path and path not in _values_for:
        # prometheus-client picks its value class when first imported, which in a worker
        # happened in the parent, before the directory was chosen: pick again, now.
        values.ValueClass = values.get_value_class()
        _values_for.append(path)
    return path


class Metrics:
    """The app's counters, and the view of its state that a scrape reads."""

    def __init__(self, state: Callable[[], tuple[Engine, Store] | None]) -> None:
        self._state = state  # None until the app has started
        self._shared = _shared()
        self.registry = CollectorRegistry(auto_describe=False)

        def counter(name: str, text: str, labels: tuple[str, ...] = ARM_LABELS) -> Counter:
            return Counter(f"{PREFIX}_{name}", text, labels, registry=self.registry)

        self._decisions = counter("decisions", "Routing decisions made")
        self._feedback = counter("feedback", "Feedback messages committed (replays of an "
                                             "idempotency_key not counted)")
        self._spend = counter("spend_usd", "Spend priced from feedback (a reported cost_usd "
                                           "wins), in USD")
        self._corrections = counter("spend_corrections_usd", "Spend taken back when a later "
                                    "cost_usd replaced a call's token-priced charge, in USD; "
                                    "net spend = spend - this")
        self._cached = counter("cached_input_tokens", "Input tokens read from a provider's "
                               "prompt cache (part of the input), from feedback")
        self._cache_saved = counter("cache_savings_usd", "What prompt caching saved against "
                                    "full input price, in USD (net of dearer cache writes, "
                                    "when positive)")
        self._errors = counter("errors", "Error answers, by error code", ("code",))
        self._judged = counter("judge_calls", "Calls to the judge model, by outcome (scored, "
                               "unparsed, error, timeout; skipped_budget: not made)",
                               ("outcome",))
        self._judge_spend = Counter(f"{PREFIX}_judge_spend_usd", "What judge calls cost, in "
                                    "USD (the judge's own spend line, never routed traffic)",
                                    registry=self.registry)
        self._implicit = counter("implicit_facts", "Implicit quality facts the gateway "
                                 "recorded, by signal", ("signal",))
        self._clamped = counter("usage_clamped", "Upstream answers whose reported token "
                                "counts exceeded what the call could use (context window, "
                                "output limit, max_tokens) and were clamped", ("model",))
        self._lost = counter("background_feedback_failed", "Feedback the gateway records "
                             "by itself (its measurements, implicit facts) that storage "
                             "failed to commit, by kind", ("kind",))
        self.decision_seconds = Histogram(
            f"{PREFIX}_decision_seconds", "Time to make one routing decision (features, "
            "bucket, sampling), in seconds", buckets=DECISION_BUCKETS, registry=self.registry)
        # labelled children, looked up once: .labels() validates and locks on every call
        self._children: dict[tuple, Counter] = {}

    def _child(self, counter: Counter, labels: tuple[str, ...]) -> Counter:
        key = (id(counter), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(*labels)
        return child

    # --- the request path ---------------------------------------------------------------

    def decided(self, decision: Decision, seconds: float) -> None:
        labels = (decision.tenant, decision.policy, decision.bucket, decision.model)
        self._child(self._decisions, labels).inc()
        self.decision_seconds.observe(seconds)

    def fed_back(self, ticket: RouteTicket, spend_usd: float, cached_tokens: float = 0.0,
                 cache_savings_usd: float = 0.0) -> None:
        """A committed feedback message (not a replay) and the spend it added; a negative
        amount is a correction (a cost_usd that replaced a call's token-priced charge),
        counted apart so that both counters only grow, as Prometheus requires."""
        labels = (ticket.tenant, ticket.policy, ticket.bucket, ticket.model)
        self._child(self._feedback, labels).inc()
        spend, corrections = self._child(self._spend, labels), self._child(self._corrections,
                                                                            labels)
        if spend_usd >= 0:
            spend.inc(spend_usd)
        else:
            corrections.inc(-spend_usd)
        if cached_tokens > 0:
            self._child(self._cached, labels).inc(cached_tokens)
        if cache_savings_usd > 0:
            self._child(self._cache_saved, labels).inc(cache_savings_usd)

    def error(self, code: str) -> None:
        self._child(self._errors, (code,)).inc()

    def judged(self, outcome: str, spend_usd: float) -> None:
        self._child(self._judged, (outcome,)).inc()
        if spend_usd > 0:
            self._judge_spend.inc(spend_usd)

    def background_failed(self, kind: str) -> None:
        """The gateway's own feedback (`kind`: measured, implicit) that could not be
        committed: no client waits for it, so this counter is where the loss shows."""
        self._child(self._lost, (kind,)).inc()

    def implicit(self, signal: str) -> None:
        self._child(self._implicit, (signal,)).inc()

    def usage_clamped(self, model: str) -> None:
        self._child(self._clamped, (model,)).inc()

    # --- a scrape ------------------------------------------------------------------------

    def exposition(self, tenant: str | None, accept: str | None) -> tuple[bytes, str]:
        """The metrics as Prometheus (or OpenMetrics, if the scraper asks) text, and its
        content type. `tenant` None shows every tenant; else only that tenant's series."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(_Scrape(self, tenant)), content_type

    def families(self, tenant: str | None) -> Iterator[Metric]:
        counted: Iterable[Metric] = self.registry.collect()
        if self._shared is not None:  # every worker's counters, summed
            counted = MultiProcessCollector(None, path=self._shared).collect()
        for family in counted:
            if tenant is not None:  # a tenant's own series only; process-wide ones (errors,
                # decision time, the judge, clamps) count every tenant's traffic
                family.samples = [s for s in family.samples
                                  if s.labels.get("tenant") == tenant]
                if not family.samples:
                    continue
            yield family
        state = self._state()
        if state is not None:
            engine, store = state
            yield from _posteriors(engine, tenant)
            yield from _budgets(engine, tenant)
            if tenant is None:
                yield from _commitments(engine)
                yield from _storage(store)


class _Scrape:
    """What the encoder collects from: the registry plus the live state, for one caller."""

    def __init__(self, metrics: Metrics, tenant: str | None) -> None:
        self._metrics, self._tenant = metrics, tenant

    def collect(self) -> Iterable[Metric]:
        return self._metrics.families(self._tenant)


def _posteriors(engine: Engine, tenant: str | None) -> Iterator[Metric]:
    labels = list(ARM_LABELS)
    mean = GaugeMetricFamily(f"{PREFIX}_posterior_mean", "Posterior mean of an arm's "
                             "quality (0..1), decayed to now", labels=labels)
    low = GaugeMetricFamily(f"{PREFIX}_posterior_lower", "Lower end of the quality "
                            "interval that /v1/arms reports", labels=labels)
    high = GaugeMetricFamily(f"{PREFIX}_posterior_upper", "Upper end of the quality "
                             "interval that /v1/arms reports", labels=labels)
    evidence = GaugeMetricFamily(f"{PREFIX}_posterior_evidence", "Quality observations "
                                 "behind an arm's posterior, after decay", labels=labels)
    for r in engine.report(tenant=tenant):
        key = [r.key.tenant, r.key.policy, r.key.bucket, r.key.model]
        mean.add_metric(key, r.quality_mean)
        low.add_metric(key, r.quality_interval[0])
        high.add_metric(key, r.quality_interval[1])
        evidence.add_metric(key, r.evidence)
    yield from (mean, low, high, evidence)


def _budgets(engine: Engine, tenant: str | None) -> Iterator[Metric]:
    labels = ["budget", "tenant", "policy", "window"]
    limit = GaugeMetricFamily(f"{PREFIX}_budget_limit_usd", "A budget's limit for its "
                              "window, in USD", labels=labels)
    spent = GaugeMetricFamily(f"{PREFIX}_budget_spent_usd", "Spend counted against a "
                              "budget in its current window, in USD", labels=labels)
    remaining = GaugeMetricFamily(f"{PREFIX}_budget_remaining_usd", "What is left of a "
                                  "budget in its current window, in USD", labels=labels)
    price = GaugeMetricFamily(f"{PREFIX}_budget_cost_weight_added", "Cost weight that "
                              "pacing adds to the decisions a budget covers", labels=labels)
    own = GaugeMetricFamily(f"{PREFIX}_budget_tenant_spent_usd", "One tenant's spend counted "
                            "against a budget in its current window, in USD",
                            labels=[*labels, "spender"])
    for s in engine.budgets.status(engine.now()):
        b = s.budget
        if tenant is not None and b.tenant not in (None, tenant):
            continue
        key = [b.name, b.tenant or ALL, b.policy or ALL, b.window]
        limit.add_metric(key, b.limit_usd)
        # a tenant sees a shared budget's total no more than /v1/stats shows it (nor its
        # pacing price, which follows that total): only its own spend
        if tenant is None or b.tenant is not None:
            spent.add_metric(key, s.spent_usd)
            remaining.add_metric(key, s.remaining_usd)
            price.add_metric(key, s.price)
        for spender, usd in sorted(s.by_tenant.items()):
            if tenant is None or spender == tenant:
                own.add_metric([*key, spender], usd)
    yield from (limit, spent, remaining, price, own)


def _commitments(engine: Engine) -> Iterator[Metric]:
    """Each [[commitments]] entry in its current window (operators only: the contracts
    every tenant's traffic fills)."""
    labels = ["commitment", "window"]
    used = GaugeMetricFamily(f"{PREFIX}_commitment_used_usd", "List-price usage of a "
                             "commitment's models in its current window, in USD", labels=labels)
    capacity = GaugeMetricFamily(f"{PREFIX}_commitment_capacity_usd", "List-price usage a "
                                 "prepaid commitment buys per window, in USD", labels=labels)
    factor = GaugeMetricFamily(f"{PREFIX}_commitment_price_factor", "The multiple of list "
                               "price decisions price a commitment's models at now",
                               labels=labels)
    for s in engine.commitments.status(engine.now()):
        key = [s.commitment.name, s.commitment.window]
        used.add_metric(key, s.used_usd)
        if s.capacity_usd is not None:
            capacity.add_metric(key, s.capacity_usd)
        factor.add_metric(key, s.price_factor)
    yield from (used, capacity, factor)


def _storage(store: Store) -> Iterator[Metric]:
    yield GaugeMetricFamily(f"{PREFIX}_write_queue_depth", "Jobs waiting for the database "
                            "writer thread", value=store.queue_depth)
    yield GaugeMetricFamily(f"{PREFIX}_decisions_buffered", "Decisions waiting to be "
                            "handed to the writer (written in batches)",
                            value=store.decisions_buffered)
    yield CounterMetricFamily(f"{PREFIX}_decisions_dropped", "Decisions not logged because "
                              "the writer was too far behind (feedback is never dropped)",
                              value=store.dropped_decisions)
    yield GaugeMetricFamily(f"{PREFIX}_storage_failing", "1 while database writes fail "
                            "(see /healthz), else 0", value=int(store.storage_error is not None))

