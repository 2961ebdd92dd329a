"""The engine: requests in, decisions out; evidence absorbed; reports of what it learned."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from types import MappingProxyType

import numpy as np
import pytest

from bandit_router.core.errors import (
    InvalidField,
    NoEligibleModel,
    RouterError,
    UnknownBucket,
    UnknownModel,
    UnknownPolicy,
)
from bandit_router.core.posterior import Evidence
from bandit_router.core.route_id import RouteIds
from bandit_router.core.settings import Config, Upstream
from bandit_router.core.types import (
    ArmKey,
    Constraints,
    Decision,
    Message,
    Objective,
    RouteRequest,
    WeightsOverride,
)
from bandit_router.engine.router import Engine

HOUR = 3600.0
CODE = "Why does this python function raise an exception?\n```\ndef f(x):\n    return 1 / x\n```"
REQUESTS = [
    RouteRequest((Message("user", "hello there"),)),
    RouteRequest((Message("user", CODE),)),
    RouteRequest((Message("user", "Prove it, step by step, rigorous and in detail."),)),
    RouteRequest((Message("user", "tl;dr of this"),), policy="cheap"),
    RouteRequest((Message("user", "hi"),), task="math", max_output_tokens=50),
    RouteRequest((Message("user", "lorem ipsum " * 2000),)),
]


def ask(text: str = "hello there", **kw) -> RouteRequest:
    return RouteRequest((Message("user", text),), **kw)


@pytest.fixture
def make_engine(config: Config, route_ids: RouteIds, clock):
    def make(seed: int = 7, cfg: Config = config) -> Engine:
        return Engine(cfg, route_ids, np.random.default_rng(seed), clock)
    return make


def sharp(quality: float, at: float, n: float = 400.0) -> Evidence:
    """Quality evidence worth `n` observations, fresh at time `at`."""
    return Evidence(q_pos=quality * n, q_neg=(1 - quality) * n, updated_at=at)


def signature(d: Decision) -> tuple:
    return (d.model, d.fallbacks, d.bucket, d.policy, d.expected_cost_usd, d.expected_latency_ms)


# --- reproducibility ------------------------------------------------------------------------

def test_same_seed_same_decisions(make_engine, clock) -> None:
    a, b = make_engine(seed=42), make_engine(seed=42)
    learned = {ArmKey("default", "chat:low", "gpt-5-mini"): sharp(0.9, clock()),
               ArmKey("cheap", "summarize:low", "gpt-5"): sharp(0.3, clock())}
    runs: list[list[tuple]] = [[], []]
    for engine, out in zip((a, b), runs, strict=True):
        for round_ in range(30):
            if round_ == 10:
                engine.absorb(learned)
            out.extend(signature(engine.decide(r)) for r in REQUESTS)
    assert runs[0] == runs[1]
    assert len({s[0] for s in runs[0]}) > 2  # and it did route to several models


def test_different_seed_differs(make_engine) -> None:
    a, b = make_engine(seed=1), make_engine(seed=2)
    models_a = [a.decide(r).model for _ in range(20) for r in REQUESTS]
    models_b = [b.decide(r).model for _ in range(20) for r in REQUESTS]
    assert models_a != models_b


# --- the decision ---------------------------------------------------------------------------

def test_decision_fields(engine: Engine, config: Config, route_ids: RouteIds, clock) -> None:
    d = engine.decide(ask())
    assert d.bucket == "chat:low"
    assert d.policy == config.routing.default_policy
    assert d.model in engine.catalog.names
    assert sorted((d.model, *d.fallbacks)) == sorted(engine.catalog.names)
    assert d.created_at == pytest.approx(clock(), abs=1e-3)
    assert d.input_tokens == 7  # ceil(11 / 4) + 4
    assert d.explanation is None
    ticket = route_ids.read(d.route_id, d.tenant)
    assert (ticket.policy, ticket.bucket, ticket.model, ticket.input_tokens) == (
        d.policy, d.bucket, d.model, d.input_tokens)
    assert ticket.created_at == d.created_at
    m = config.model(d.model)
    # prior: 400 output tokens, latency from the catalog times the log-normal's exp(sd²/2)
    assert d.expected_cost_usd == pytest.approx(
        (7 * m.input_per_mtok + 400 * m.output_per_mtok) / 1e6)
    assert d.expected_latency_ms == pytest.approx(m.latency_ms)


def test_route_ids_are_unique(engine: Engine) -> None:
    assert len({engine.decide(ask()).route_id for _ in range(50)}) == 50


def test_feature_based_bucket(engine: Engine) -> None:
    assert engine.decide(ask(CODE)).bucket == "code:low"
    assert engine.decide(ask("hi", task="summary")).bucket == "summarize:low"
    assert engine.decide(ask("lorem ipsum " * 2000)).bucket == "chat:high"


def test_explicit_bucket_overrides_features(engine: Engine) -> None:
    d = engine.decide(ask(CODE, bucket="write:high", task="math"))
    assert d.bucket == "write:high"
    assert engine.report(bucket="write:high")[0].key.bucket == "write:high"


def test_named_policy(engine: Engine) -> None:
    assert engine.decide(ask(policy="cheap")).policy == "cheap"


def test_max_output_tokens_caps_expected_cost(engine: Engine, config: Config) -> None:
    d = engine.decide(ask(max_output_tokens=10, explain=True))
    for arm in d.explanation:
        m = config.model(arm.model)
        assert arm.expected_cost_usd == pytest.approx(
            (d.input_tokens * m.input_per_mtok + 10 * m.output_per_mtok) / 1e6)


# --- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("request_", "error", "field"), [
    (ask(policy="fastest"), UnknownPolicy, "policy"),
    (ask(bucket="code"), UnknownBucket, "bucket"),
    (ask(bucket="code:medium"), UnknownBucket, "bucket"),
    (ask(bucket="poetry:low"), UnknownBucket, "bucket"),
    (ask(constraints=Constraints(models=frozenset({"gpt-5", "gpt-6"}))), UnknownModel,
     "constraints.models"),
    (ask(constraints=Constraints(exclude=frozenset({"llama"}))), UnknownModel,
     "constraints.exclude"),
    (ask(constraints=Constraints(models=frozenset({"gpt-5"}), exclude=frozenset({"llama"}))),
     UnknownModel, "constraints.exclude"),
    (ask(constraints=Constraints(max_cost_usd=0.0)), NoEligibleModel, "constraints"),
], ids=["policy", "bucket-no-level", "bucket-level", "bucket-task", "models", "exclude",
        "exclude-with-models", "no-eligible"])
def test_bad_requests_raise_with_field(engine: Engine, request_: RouteRequest,
                                       error: type[RouterError], field: str) -> None:
    with pytest.raises(error) as info:
        engine.decide(request_)
    assert info.value.field == field
    assert isinstance(info.value, RouterError)


def test_unknown_names_are_named(engine: Engine) -> None:
    with pytest.raises(UnknownModel, match="gpt-6"):
        engine.decide(ask(constraints=Constraints(models=frozenset({"gpt-6"}))))
    with pytest.raises(UnknownPolicy, match="fastest"):
        engine.decide(ask(policy="fastest"))
    with pytest.raises(UnknownBucket, match="code:medium"):
        engine.decide(ask(bucket="code:medium"))


def test_refused_requests_learn_and_record_nothing(engine: Engine) -> None:
    with pytest.raises(NoEligibleModel):
        engine.decide(ask(constraints=Constraints(max_cost_usd=0.0)))
    with pytest.raises(UnknownModel):
        engine.decide(ask(constraints=Constraints(models=frozenset({"gpt-6"}))))
    assert engine.report() == []


# --- constraints ----------------------------------------------------------------------------

def test_allow_list(engine: Engine) -> None:
    allowed = frozenset({"gpt-5-mini", "claude-haiku-4-5"})
    for _ in range(30):
        d = engine.decide(ask(constraints=Constraints(models=allowed)))
        assert {d.model, *d.fallbacks} == allowed
        assert len(d.fallbacks) == 1


def test_exclude(engine: Engine) -> None:
    excluded = frozenset({"gpt-5-nano", "gemini-2.5-flash-lite"})
    for _ in range(30):
        d = engine.decide(ask(constraints=Constraints(exclude=excluded)))
        assert not {d.model, *d.fallbacks} & excluded
        assert len(d.fallbacks) == len(engine.catalog) - 3


def test_max_cost(engine: Engine) -> None:
    costs = {a.model: a.expected_cost_usd for a in engine.decide(ask(explain=True)).explanation}
    limit = sorted(costs.values())[3]  # the four cheapest fit
    cheap = {m for m, c in costs.items() if c <= limit}
    assert len(cheap) == 4
    for _ in range(30):
        d = engine.decide(ask(constraints=Constraints(max_cost_usd=limit), explain=True))
        assert {d.model, *d.fallbacks} == cheap
        for arm in d.explanation:
            assert arm.eligible == (arm.model in cheap)
            assert (arm.reason is None) == arm.eligible
            if not arm.eligible:
                assert "max_cost_usd" in arm.reason


def test_max_latency(engine: Engine, config: Config) -> None:
    fast = {m.name for m in config.models if m.latency_ms <= 3000}
    for _ in range(30):
        # with no feedback, a model's typical latency is the catalog's latency_ms
        d = engine.decide(ask(constraints=Constraints(max_latency_ms=3000.0), explain=True))
        assert {d.model, *d.fallbacks} == fast
        assert all(a.expected_latency_ms <= 3000.0 for a in d.explanation if a.eligible)
        assert all("max_latency_ms" in a.reason for a in d.explanation if not a.eligible)


def test_context_length(engine: Engine, config: Config) -> None:
    def eligible(input_tokens: int) -> set[str]:
        d = engine.decide(ask(input_tokens=input_tokens))
        return {d.model, *d.fallbacks}

    by_context = {m.name: m.context_tokens for m in config.models}
    # without max_output_tokens, only the input must fit: no learned length decides
    assert eligible(200_000) == set(by_context)
    assert eligible(200_001) == {m for m, c in by_context.items() if c > 200_000}
    assert eligible(500_000) == {m for m, c in by_context.items() if c >= 1_000_000}
    with pytest.raises(NoEligibleModel) as info:
        engine.decide(ask(input_tokens=5_000_000))
    for name in by_context:
        assert name in info.value.message
    assert "context" in info.value.message


def test_context_must_hold_the_callers_max_output_tokens(engine: Engine,
                                                         config: Config) -> None:
    # 199k in + up to 8k out does not fit a 200k window, though the expected 400 would
    d = engine.decide(ask(input_tokens=199_000, max_output_tokens=8_000, explain=True))
    assert {d.model, *d.fallbacks} == {m.name for m in config.models
                                       if m.context_tokens >= 207_000}
    reasons = {a.model: a.reason for a in d.explanation if not a.eligible}
    assert reasons == {"claude-haiku-4-5": "needs 207000 tokens, context is 200000",
                       "claude-sonnet-4-5": "needs 207000 tokens, context is 200000"}
    d = engine.decide(ask(input_tokens=199_000, max_output_tokens=1_000))
    assert {d.model, *d.fallbacks} == set(engine.catalog.names)


def test_impossible_constraint_names_each_models_reason(engine: Engine, config: Config) -> None:
    constraints = Constraints(models=frozenset({"gpt-5", "gpt-5-nano", "claude-haiku-4-5"}),
                              exclude=frozenset({"gpt-5"}), max_cost_usd=1e-4)
    with pytest.raises(NoEligibleModel) as info:
        engine.decide(ask(constraints=constraints))
    message = info.value.message
    assert info.value.field == "constraints"
    for m in config.models:
        assert f"{m.name}: " in message
    assert "gpt-5: in constraints.exclude" in message
    assert "gemini-2.5-flash: not in constraints.models" in message
    assert "gpt-5-nano: expected cost" in message
    assert "claude-haiku-4-5: expected cost" in message


# --- explanations ---------------------------------------------------------------------------

def test_explain_covers_every_model(engine: Engine, clock) -> None:
    engine.absorb({ArmKey("default", "chat:low", "gpt-5"): sharp(0.9, clock())})
    d = engine.decide(ask(explain=True, constraints=Constraints(exclude=frozenset({"gpt-5"}))))
    arms = d.explanation
    assert [a.model for a in arms] == list(engine.catalog.names)
    for a in arms:
        lo, hi = a.quality_interval
        assert 0.0 <= lo <= a.quality_mean <= hi <= 1.0
        assert a.expected_cost_usd > 0 and a.expected_latency_ms > 0
        if a.eligible:
            assert a.reason is None
            assert 0.0 <= a.quality_sample <= 1.0 and a.value is not None
            assert a.utility is None and a.contending is not None  # value mode decided
        else:
            assert a.reason is not None and a.quality_sample is None and a.value is None
    by_model = {a.model: a for a in arms}
    assert not by_model["gpt-5"].eligible
    prior = engine.config.policies["default"].prior
    assert by_model["gpt-5"].quality_mean == pytest.approx(
        (prior.alpha + 360) / (prior.quality_strength + 400))
    assert by_model["gpt-5"].quality_interval[1] - by_model["gpt-5"].quality_interval[0] < 0.1
    # untried here: the configured prior, at most raised by what the bucket shows (pooling)
    assert prior.quality_mean <= by_model["gpt-5-mini"].quality_mean < prior.quality_mean + 0.1
    chosen = by_model[d.model]
    assert chosen.value == max(a.value for a in arms if a.eligible and a.contending)
    assert chosen.value == pytest.approx(chosen.quality_sample)  # counted from its price
    assert chosen.expected_cost_usd == d.expected_cost_usd
    assert d.objective == Objective("value", points_per_price_doubling=2.0,
                                    points_per_latency_doubling=0.0)


def test_explained_values_are_quality_net_of_price_doublings(engine: Engine, clock) -> None:
    engine.absorb({ArmKey("default", "chat:low", m): sharp(0.9, clock())
                   for m in engine.catalog.names})
    d = engine.decide(ask(explain=True))
    by_model = {a.model: a for a in d.explanation}
    chosen = by_model[d.model]
    for a in d.explanation:
        doublings = np.log2(a.expected_cost_usd / chosen.expected_cost_usd)
        assert a.value == pytest.approx(a.quality_sample - 0.02 * doublings, abs=1e-9)


# --- learning -------------------------------------------------------------------------------

def share_of(engine: Engine, model: str, request: RouteRequest, n: int = 400) -> float:
    return Counter(engine.decide(request).model for _ in range(n))[model] / n


def test_absorbed_evidence_shifts_traffic(engine: Engine, clock) -> None:
    model = "claude-haiku-4-5"
    before = share_of(engine, model, ask())
    engine.absorb({ArmKey("default", "chat:low", model): sharp(0.98, clock())})
    after = share_of(engine, model, ask())
    assert after > before + 0.2
    picks = Counter(engine.decide(ask()).model for _ in range(400))
    assert picks.most_common(1)[0][0] == model
    # another policy learned nothing
    assert share_of(engine, model, ask(policy="cheap")) < 0.25


def test_other_buckets_borrow_a_few_observations_as_their_prior(engine: Engine, clock,
                                                                 config: Config) -> None:
    model = "claude-haiku-4-5"
    engine.absorb({ArmKey("default", "chat:low", model): sharp(0.98, clock())})
    engine.decide(ask(CODE))  # the code bucket's arms exist from its first decision
    code = {r.key.model: r for r in engine.report(bucket="code:low")}
    pooled, other = code[model], code["gpt-5-mini"]
    assert pooled.evidence == 0.0  # nothing observed in this bucket
    assert pooled.quality_mean > 0.9  # but the model did well elsewhere
    assert other.quality_mean == pytest.approx(config.policies["default"].prior.quality_mean)
    # worth at most pool_strength observations, not the 400 seen elsewhere
    lo, hi = pooled.quality_interval
    chat = {r.key.model: r for r in engine.report(bucket="chat:low")}[model]
    assert chat.quality_interval[1] - chat.quality_interval[0] < (hi - lo) / 2


def test_optimistic_pooling_never_lowers_a_prior(make_engine, config: Config, clock) -> None:
    def code_prior(pooling: str) -> float:
        policies = dict(config.policies)
        policies["default"] = replace(policies["default"], pooling=pooling)
        engine = make_engine(cfg=replace(config, policies=MappingProxyType(policies)))
        engine.absorb({ArmKey("default", "chat:low", "gpt-5-nano"): sharp(0.1, clock())})
        engine.decide(ask(CODE))
        return {r.key.model: r for r in engine.report(bucket="code:low")}[
            "gpt-5-nano"].quality_mean

    base = config.policies["default"].prior.quality_mean
    assert code_prior("optimistic") == pytest.approx(base)  # still gets its chance here
    assert code_prior("full") < base - 0.2  # full pooling carries the bad record over
    assert code_prior("off") == pytest.approx(base)


def test_no_pooling_keeps_buckets_apart(make_engine, config: Config, clock) -> None:
    policies = dict(config.policies)
    policies["default"] = replace(policies["default"], pool_strength=0.0)
    engine = make_engine(cfg=replace(config, policies=MappingProxyType(policies)))
    model = "claude-haiku-4-5"
    engine.absorb({ArmKey("default", "chat:low", model): sharp(0.98, clock())})
    engine.decide(ask(CODE))
    code = {r.key.model: r for r in engine.report(bucket="code:low")}
    assert code[model].quality_mean == pytest.approx(config.policies["default"].prior.quality_mean)


def test_poor_evidence_steers_traffic_away(engine: Engine, clock) -> None:
    model = "gpt-5-nano"
    engine.absorb({ArmKey("default", "chat:low", model): sharp(0.05, clock())})
    assert share_of(engine, model, ask()) < 0.02


def test_evidence_fades_with_time(engine: Engine, clock, config: Config) -> None:
    key = ArmKey("default", "chat:low", "gpt-5-mini")
    engine.absorb({key: sharp(0.95, clock())})
    engine.decide(ask())
    fresh = next(r for r in engine.report() if r.key == key)
    assert fresh.evidence == pytest.approx(400.0)
    clock.advance(config.policies["default"].half_life_hours * HOUR)
    halved = next(r for r in engine.report() if r.key == key)
    assert halved.evidence == pytest.approx(200.0)
    assert 0.6 < halved.quality_mean < fresh.quality_mean


def test_absorbing_unknown_models_or_policies_keeps_them_aside(engine: Engine, clock) -> None:
    gone = {ArmKey("default", "chat:low", "gpt-4"): sharp(0.9, clock()),
            ArmKey("retired", "chat:low", "gpt-5"): sharp(0.9, clock())}
    engine.absorb(gone)
    assert engine.orphans == gone
    assert engine.report() == []


def test_points_per_doubling_zero_picks_the_best_quality(engine: Engine, clock) -> None:
    now = clock()
    engine.absorb({ArmKey("default", "chat:low", m): sharp(0.97 if m == "claude-sonnet-4-5"
                                                          else 0.8, now)
                   for m in engine.catalog.names})
    # sonnet is 17 points better for ~37x nano's price (5.2 doublings)
    dear = Counter(engine.decide(ask(weights=WeightsOverride(points_per_price_doubling=5)))
                   .model for _ in range(100))
    assert dear["claude-sonnet-4-5"] == 0  # too dear at 5 points per doubling (26 points)
    # worth it at the default 2 (10.4 points): 6.6 points clear, about 3 sd of the draws
    assert Counter(engine.decide(ask()).model for _ in range(100))["claude-sonnet-4-5"] >= 95
    free = ask(weights=WeightsOverride(points_per_price_doubling=0.0))
    assert Counter(engine.decide(free).model for _ in range(100)) == {"claude-sonnet-4-5": 100}


def test_a_weight_the_policy_does_not_read_is_refused(engine: Engine) -> None:
    with pytest.raises(InvalidField) as info:
        engine.decide(ask(weights=WeightsOverride(cost=0.5)))
    assert info.value.field == "weights.cost" and "value mode" in str(info.value)
    with pytest.raises(InvalidField) as info:
        engine.decide(ask(policy="cheap", weights=WeightsOverride(points_per_price_doubling=3)))
    assert info.value.field == "weights.points_per_price_doubling"


def test_utility_mode_keeps_its_cost_weight(config: Config, route_ids, clock) -> None:
    legacy = replace(config.policies["default"], mode="utility")
    engine = Engine(replace(config, policies=MappingProxyType({**config.policies,
                                                               "default": legacy})),
                    route_ids, np.random.default_rng(7), clock)
    now = clock()
    engine.absorb({ArmKey("default", "chat:low", m): sharp(0.97 if m == "claude-sonnet-4-5"
                                                          else 0.8, now)
                   for m in engine.catalog.names})
    dear = Counter(engine.decide(ask(weights=WeightsOverride(cost=0.5))).model
                   for _ in range(100))
    assert dear["claude-sonnet-4-5"] == 0  # too dear at that cost weight
    free = ask(weights=WeightsOverride(cost=0.0), explain=True)
    decisions = [engine.decide(free) for _ in range(100)]
    assert Counter(d.model for d in decisions) == {"claude-sonnet-4-5": 100}
    assert all(a.utility is not None and a.value is None
               for a in decisions[0].explanation if a.eligible)
    assert decisions[0].objective == Objective("utility", cost_weight=0.0, latency_weight=0.0)


def test_cheap_policy_picks_the_cheapest_adequate_model(engine: Engine, clock) -> None:
    now = clock()
    quality = {"gpt-5-nano": 0.5, "gemini-2.5-flash-lite": 0.6, "gpt-5-mini": 0.9,
               "gemini-2.5-flash": 0.9, "claude-haiku-4-5": 0.95, "gpt-5": 0.97,
               "claude-sonnet-4-5": 0.97}
    engine.absorb({ArmKey("cheap", "chat:low", m): sharp(q, now) for m, q in quality.items()})
    d = engine.decide(ask(policy="cheap"))
    assert d.model == "gpt-5-mini"  # the cheapest with quality >= 0.7
    assert d.fallbacks[:4] == ("gemini-2.5-flash", "claude-haiku-4-5", "gpt-5",
                               "claude-sonnet-4-5")
    assert d.fallbacks[4:] == ("gemini-2.5-flash-lite", "gpt-5-nano")


# --- reports --------------------------------------------------------------------------------

def test_report_shares_come_from_recent_decisions(make_engine, config: Config) -> None:
    engine = make_engine(cfg=replace(config, routing=replace(config.routing, recent_window=10)))
    only = {m: ask(constraints=Constraints(models=frozenset({m})))
            for m in ("gpt-5", "gpt-5-nano")}
    for _ in range(20):
        engine.decide(only["gpt-5"])
    for _ in range(7):
        engine.decide(only["gpt-5-nano"])
    report = {r.key.model: r for r in engine.report(policy="default", bucket="chat:low")}
    assert list(report) == list(engine.catalog.names)
    # the window holds the last 10 decisions: 3 for gpt-5, 7 for gpt-5-nano
    assert report["gpt-5"].recent_decisions == 3
    assert report["gpt-5-nano"].recent_decisions == 7
    assert report["gpt-5"].share == pytest.approx(0.3)
    assert report["gpt-5-nano"].share == pytest.approx(0.7)
    assert sum(r.share for r in report.values()) == pytest.approx(1.0)


def test_report_filters(engine: Engine) -> None:
    engine.decide(ask())
    engine.decide(ask(CODE))
    engine.decide(ask(policy="cheap"))
    n = len(engine.catalog)
    everything = engine.report()
    assert len(everything) == 3 * n
    assert {(r.key.policy, r.key.bucket) for r in everything} == {
        ("default", "chat:low"), ("default", "code:low"), ("cheap", "chat:low")}
    assert {r.key.bucket for r in engine.report(policy="default")} == {"chat:low", "code:low"}
    assert {r.key.policy for r in engine.report(bucket="chat:low")} == {"default", "cheap"}
    only = engine.report(policy="cheap", bucket="chat:low")
    assert len(only) == n and sum(r.recent_decisions for r in only) == 1
    assert engine.report(policy="cheap", bucket="code:low") == []
    with pytest.raises(UnknownPolicy):
        engine.report(policy="fastest")
    with pytest.raises(UnknownBucket):
        engine.report(bucket="code:medium")


def test_report_costs_need_token_evidence(engine: Engine, clock, config: Config) -> None:
    key = ArmKey("default", "chat:low", "gpt-5")
    engine.absorb({key: Evidence(in_n=2, in_sum=2000, out_n=2, out_sum=1000, lat_n=0,
                                 updated_at=clock())})
    engine.absorb({ArmKey("default", "chat:low", "gpt-5-mini"):
                   Evidence(in_n=2, in_sum=2000, updated_at=clock())})
    report = {r.key.model: r for r in engine.report()}
    m = config.model("gpt-5")
    assert report["gpt-5"].mean_cost_usd == pytest.approx(
        (1000 * m.input_per_mtok + 500 * m.output_per_mtok) / 1e6)
    assert report["gpt-5-mini"].mean_cost_usd is None
    assert report["gpt-5"].share == 0.0


def test_remember_replays_recent_decisions(engine: Engine) -> None:
    engine.remember([("default", "default", "chat:low", "gpt-5")] * 3
                    + [("default", "default", "chat:low", "gpt-4")]
                    + [("default", "retired", "chat:low", "gpt-5")])
    report = {r.key.model: r for r in engine.report()}
    assert report["gpt-5"].recent_decisions == 3
    assert report["gpt-5"].share == 1.0


def test_a_gateway_call_is_decided_among_models_it_can_call(config: Config, route_ids,
                                                             clock) -> None:
    callable_ = {"gpt-5-mini", "claude-haiku-4-5"}
    upstream = Upstream("http://127.0.0.1:9/v1", "m")
    models = tuple(replace(m, upstream=upstream if m.name in callable_ else None)
                   for m in config.models)
    engine = Engine(replace(config, models=models), route_ids, np.random.default_rng(7), clock)
    for _ in range(30):
        d = engine.decide(ask(needs_upstream=True, explain=True))
        assert {d.model, *d.fallbacks} == callable_
        reasons = {a.model: a.reason for a in d.explanation if not a.eligible}
        assert set(reasons) == set(engine.catalog.names) - callable_
        assert all("no upstream" in r for r in reasons.values())
    # /v1/route answers for the caller to call: every model stays eligible there
    assert {m for _ in range(60) for m in [engine.decide(ask()).model]} - callable_
    # none callable: refused with the reason for each model
    bare = Engine(config, route_ids, np.random.default_rng(7), clock)
    with pytest.raises(NoEligibleModel, match="gpt-5-nano: no upstream"):
        bare.decide(ask(needs_upstream=True))


def test_a_free_model_is_weighed_at_the_floor_price(config: Config, route_ids, clock) -> None:
    """A self-hosted model listed at price 0 is neither infinitely good nor an error: it is
    weighed as if it cost a thousandth of a dollar per million tokens."""
    models = (*config.models, replace(config.models[0], name="local", input_per_mtok=0.0,
                                      output_per_mtok=0.0))
    engine = Engine(replace(config, models=models), route_ids, np.random.default_rng(7), clock)
    now = clock()
    # local is 30 points worse than nano, and nano is ~400 times its floor price (8.6
    # doublings, 17 points): nano
    engine.absorb({ArmKey("default", "chat:low", "local"): sharp(0.5, now),
                   ArmKey("default", "chat:low", "gpt-5-nano"): sharp(0.8, now)})
    d = engine.decide(ask(explain=True, constraints=Constraints(
        models=frozenset({"local", "gpt-5-nano"}))))
    by_model = {a.model: a for a in d.explanation}
    assert by_model["local"].expected_cost_usd == 0.0
    assert np.isfinite(by_model["local"].value) and d.model == "gpt-5-nano"
    # equally good: the free model wins
    engine.absorb({ArmKey("default", "chat:low", "local"): sharp(0.8, now)})
    picks = Counter(engine.decide(ask(constraints=Constraints(
        models=frozenset({"local", "gpt-5-nano"})))).model for _ in range(50))
    assert picks["local"] >= 48
