"""Prometheus metrics of one app, served at `GET /metrics`.

Two kinds of numbers. What happens on the request path (decisions, feedback, spend, errors,
decision time) is counted as it happens, in plain dicts: the event loop is the only writer,
so an increment is a dict lookup and an addition, with no lock. What the service knows at
any moment (posterior means, budgets, the write queue) is read from the engine and the store
when Prometheus scrapes, so it is never stale and costs nothing between scrapes.

Everything lives in this object, one per app (several apps share a test process): no
metric is registered in prometheus_client's global default registry.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from bandit_router.engine import Engine
from bandit_router.store import SqliteStore
from bandit_router.types import Decision, RouteTicket

PREFIX = "bandit_router"
ARM_LABELS = ("tenant", "policy", "bucket", "model")
ALL = "*"  # a budget's tenant or policy label when it covers every one
# Deciding takes tens of microseconds; the buckets reach 100 ms to show a stalled loop.
DECISION_BUCKETS = (25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3,
                    50e-3, 100e-3)


@dataclass(slots=True)
class _Tally:
    """Counts of one (tenant, policy, bucket, model) since the process started."""

    decisions: int = 0
    feedback: int = 0
    spend_usd: float = 0.0
    spend_corrections_usd: float = 0.0


class Metrics:
    """The app's counters, and the view of its state that a scrape reads."""

    def __init__(self, state: Callable[[], tuple[Engine, SqliteStore] | None]) -> None:
        self._state = state  # None until the app has started
        self._arms: defaultdict[tuple[str, str, str, str], _Tally] = defaultdict(_Tally)
        self.registry = CollectorRegistry(auto_describe=False)
        self.decision_seconds = Histogram(
            f"{PREFIX}_decision_seconds", "Time to make one routing decision (features, "
            "bucket, sampling), in seconds", buckets=DECISION_BUCKETS, registry=self.registry)
        self._errors = Counter(f"{PREFIX}_errors", "Error answers, by error code",
                               ("code",), registry=self.registry)
        self._error_children: dict[str, Counter] = {}

    # --- the request path ---------------------------------------------------------------

    def decided(self, decision: Decision, seconds: float) -> None:
        self._arms[(decision.tenant, decision.policy, decision.bucket,
                    decision.model)].decisions += 1
        self.decision_seconds.observe(seconds)

    def fed_back(self, ticket: RouteTicket, spend_usd: float) -> None:
        """A committed feedback message (not a replay) and the spend it added; a negative
        amount is a correction (a cost_usd that replaced a call's token-priced charge),
        counted apart so that both counters only grow, as Prometheus requires."""
        tally = self._arms[(ticket.tenant, ticket.policy, ticket.bucket, ticket.model)]
        tally.feedback += 1
        if spend_usd >= 0:
            tally.spend_usd += spend_usd
        else:
            tally.spend_corrections_usd -= spend_usd

    def error(self, code: str) -> None:
        child = self._error_children.get(code)
        if child is None:
            child = self._error_children[code] = self._errors.labels(code=code)
        child.inc()

    # --- a scrape ------------------------------------------------------------------------

    def exposition(self, tenant: str | None, accept: str | None) -> tuple[bytes, str]:
        """The metrics as Prometheus (or OpenMetrics, if the scraper asks) text, and its
        content type. `tenant` None shows every tenant; else only that tenant's series."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(_Scrape(self, tenant)), content_type

    def families(self, tenant: str | None) -> Iterator[Metric]:
        yield from self.registry.collect()
        yield from self._counted(tenant)
        state = self._state()
        if state is not None:
            engine, store = state
            yield from _posteriors(engine, tenant)
            yield from _budgets(engine, tenant)
            yield from _storage(store)

    def _counted(self, tenant: str | None) -> Iterator[Metric]:
        families = {
            "decisions": CounterMetricFamily(
                f"{PREFIX}_decisions", "Routing decisions made", labels=ARM_LABELS),
            "feedback": CounterMetricFamily(
                f"{PREFIX}_feedback", "Feedback messages committed (replays of an "
                "idempotency_key not counted)", labels=ARM_LABELS),
            "spend_usd": CounterMetricFamily(
                f"{PREFIX}_spend_usd", "Spend priced from feedback (a reported cost_usd "
                "wins), in USD", labels=ARM_LABELS),
            "spend_corrections_usd": CounterMetricFamily(
                f"{PREFIX}_spend_corrections_usd", "Spend taken back when a later cost_usd "
                "replaced a call's token-priced charge, in USD; net spend = spend - this",
                labels=ARM_LABELS),
        }
        for key, tally in sorted(self._arms.items()):
            if tenant is None or key[0] == tenant:
                for name, family in families.items():
                    family.add_metric(key, getattr(tally, name))
        yield from families.values()


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
    for s in engine.budgets.status(engine.now()):
        b = s.budget
        if tenant is not None and b.tenant not in (None, tenant):
            continue
        key = [b.name, b.tenant or ALL, b.policy or ALL, b.window]
        limit.add_metric(key, b.limit_usd)
        spent.add_metric(key, s.spent_usd)
        remaining.add_metric(key, s.remaining_usd)
        price.add_metric(key, s.price)
    yield from (limit, spent, remaining, price)


def _storage(store: SqliteStore) -> Iterator[Metric]:
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

