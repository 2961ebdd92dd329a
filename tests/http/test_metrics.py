"""GET /metrics on the real app and a real port: the Prometheus exposition counts exactly the
decisions, feedback, spend and errors that were sent, and its state gauges (posteriors,
budgets, the write queue) agree with /v1/arms, /v1/stats and /healthz."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from bandit_router.core.settings import BudgetConfig, Config
from bandit_router.http.app import create_app
from tests.calls import applied, auth, route
from tests.conftest import ROOT, FakeClock

PROMPTS = ["Write a friendly haiku about the sea.",
           "Fix this bug:\n```python\ndef f(x):\n    return x +\n```",
           "Prove that the square root of 2 is irrational, step by step."]
ARM = ("tenant", "policy", "bucket", "model")


async def scrape(client, headers=None) -> dict[str, dict[tuple, float]]:
    """{sample name: {sorted label items: value}}, from the served text."""
    r = await client.get("/metrics", headers=headers)
    assert r.status == 200, await r.text()
    assert r.content_type == "text/plain"
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(await r.text()):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def by_arm(samples: dict[tuple, float]) -> dict[tuple, float]:
    return {tuple(dict(k)[n] for n in ARM): v for k, v in samples.items()}


async def test_counts_match_what_was_sent(client):
    decisions = [await route(client, prompt=PROMPTS[i % 3]) for i in range(12)]
    fed = decisions[::2]
    for i, d in enumerate(fed):
        await applied(client, route_id=d["route_id"], quality=0.5 + 0.05 * i,
                        input_tokens=1000 + 100 * i, output_tokens=300)
    # an idempotent resend is answered from the log: not a second feedback
    await applied(client, route_id=decisions[1]["route_id"], latency_ms=900.0, idempotency_key="k1")
    await applied(client, route_id=decisions[1]["route_id"], latency_ms=900.0, idempotency_key="k1")
    fed.append(decisions[1])
    errors = Counter()
    for body, code in (("{not json", "invalid_json"),
                       ('{"route_id": "r2.nope", "quality": 1}', "unknown_route_id"),
                       ('{"route_id": "' + decisions[0]["route_id"] + '", "quality": 1}',
                        "duplicate_fact")):
        r = await client.post("/v1/feedback", data=body,
                              headers={"Content-Type": "application/json"})
        assert (await r.json())["error"]["code"] == code
        errors[code] += 1
    r = await client.get("/no/such/path")
    assert r.status == 404
    errors["not_found"] += 1
    r = await client.post("/v1/route", json={"prompt": "hi", "policy": "nope"})
    assert (await r.json())["error"]["code"] == "unknown_policy"
    errors["unknown_policy"] += 1

    m = await scrape(client)
    sent = Counter(("default", d["policy"], d["bucket"], d["model"]) for d in decisions)
    assert len({d["bucket"] for d in decisions}) >= 2  # several label sets, not one
    assert by_arm(m["bandit_router_decisions_total"]) == sent
    fed_arms = Counter(("default", d["policy"], d["bucket"], d["model"]) for d in fed)
    assert by_arm(m["bandit_router_feedback_total"]) == fed_arms
    assert {dict(k)["code"]: v for k, v in m["bandit_router_errors_total"].items()} == errors
    assert m["bandit_router_decision_seconds_count"][()] == len(decisions)
    assert 0 < m["bandit_router_decision_seconds_sum"][()] < 5.0
    stats = await (await client.get("/v1/stats")).json()
    spend = sum(m["bandit_router_spend_usd_total"].values())
    assert spend > 0 and spend == pytest.approx(stats["totals"]["spend_usd"])
    assert sum(m["bandit_router_spend_corrections_usd_total"].values()) == 0
    health = await (await client.get("/healthz")).json()
    assert m["bandit_router_write_queue_depth"][()] >= 0
    assert m["bandit_router_decisions_dropped_total"][()] == health["decisions_dropped"] == 0
    assert m["bandit_router_storage_failing"][()] == 0


async def test_posterior_gauges_equal_what_arms_reports(client):
    for i in range(9):
        d = await route(client, prompt=PROMPTS[i % 3])
        await applied(client, route_id=d["route_id"], quality=[0.2, 0.9, 0.6][i % 3])
    arms = (await (await client.get("/v1/arms")).json())["arms"]
    m = await scrape(client)
    mean, low, high = (by_arm(m[f"bandit_router_posterior_{n}"])
                       for n in ("mean", "lower", "upper"))
    evidence = by_arm(m["bandit_router_posterior_evidence"])
    assert len(mean) == len(arms) > 3
    for arm in arms:  # the fake clock stands still: no decay between the two reads
        key = tuple(arm[n] for n in ARM)
        assert mean[key] == pytest.approx(arm["quality_mean"], abs=1e-12)
        assert (low[key], high[key]) == pytest.approx(tuple(arm["quality_interval"]), abs=1e-12)
        assert evidence[key] == pytest.approx(arm["evidence"], abs=1e-9)
    assert sum(evidence.values()) == pytest.approx(9)


async def test_budget_gauges_equal_stats_and_a_late_cost_is_a_correction(app_config: Config,
                                                                          clock: FakeClock):
    config = replace(app_config, budgets=(BudgetConfig("daily", 2.0),
                                          BudgetConfig("acme-hourly", 1.0, window="hour",
                                                       tenant="acme")))
    async with TestClient(TestServer(create_app(config, clock=clock))) as c:
        for i in range(4):
            d = await route(c, prompt=PROMPTS[i % 3])
            await applied(c, route_id=d["route_id"], input_tokens=20_000, output_tokens=2_000)
        clock.advance(60)
        await applied(c, route_id=d["route_id"], quality=0.7)
        # the call's own cost, reported late, replaces its token price: spend goes down
        await applied(c, route_id=d["route_id"], cost_usd=0.0)
        stats = await (await c.get("/v1/stats")).json()
        m = await scrape(c)
    # an open service is its own operator: every budget shows, acme's too
    budget = {b["name"]: b for b in stats["budgets"]}["daily"]
    key = (("budget", "daily"), ("policy", "*"), ("tenant", "*"), ("window", "day"))
    acme = (("budget", "acme-hourly"), ("policy", "*"), ("tenant", "acme"), ("window", "hour"))
    # without keys /metrics shows every tenant's budgets; acme has spent nothing
    assert set(m["bandit_router_budget_remaining_usd"]) == {key, acme}
    assert m["bandit_router_budget_remaining_usd"][acme] == 1.0
    assert m["bandit_router_budget_remaining_usd"][key] == pytest.approx(budget["remaining_usd"])
    assert m["bandit_router_budget_spent_usd"][key] == pytest.approx(budget["spent_usd"])
    assert m["bandit_router_budget_limit_usd"][key] == 2.0
    assert m["bandit_router_budget_cost_weight_added"][key] == pytest.approx(
        budget["cost_weight_added"])
    gross = sum(m["bandit_router_spend_usd_total"].values())
    corrected = sum(m["bandit_router_spend_corrections_usd_total"].values())
    assert corrected > 0
    assert gross - corrected == pytest.approx(stats["totals"]["spend_usd"])
    assert budget["spent_usd"] == pytest.approx(stats["totals"]["spend_usd"])


async def test_with_keys_metrics_need_admin_and_show_one_tenant(keyed):
    r = await keyed.get("/metrics")
    assert r.status == 401 and (await r.json())["error"]["code"] == "unauthorized"
    r = await keyed.get("/metrics", headers=auth("acme-app"))
    assert r.status == 403 and (await r.json())["error"]["code"] == "forbidden"
    acme = [await route(keyed, auth("acme-app"), prompt=PROMPTS[0]) for _ in range(3)]
    globex = [await route(keyed, auth("globex-app"), prompt=PROMPTS[1]) for _ in range(2)]
    await applied(keyed, auth("globex-app"), route_id=globex[0]["route_id"], quality=1.0)
    m = await scrape(keyed, auth("acme-admin"))
    tenants = {dict(k)["tenant"] for name, samples in m.items() for k in samples
               if "tenant" in dict(k)}
    assert tenants == {"acme"}
    assert sum(m["bandit_router_decisions_total"].values()) == len(acme)
    assert {dict(k)["tenant"] for k in m["bandit_router_posterior_mean"]} == {"acme"}
    # process-wide series count every tenant's traffic: an operator's scrape only
    assert "bandit_router_decision_seconds_count" not in m
    assert "bandit_router_errors_total" not in m
    ops = await scrape(keyed, auth("ops"))
    assert ops["bandit_router_decision_seconds_count"][()] == len(acme) + len(globex)
    codes = {dict(k)["code"]: v for k, v in ops["bandit_router_errors_total"].items()}
    assert codes == {"unauthorized": 1, "forbidden": 1}
    assert {dict(k)["tenant"] for k in ops["bandit_router_decisions_total"]} == \
        {"acme", "globex"}


async def test_each_app_counts_only_its_own_traffic(app_config: Config, tmp_path,
                                                    clock: FakeClock):
    other = replace(app_config, storage=replace(app_config.storage,
                                                url=str(tmp_path / "other.db")))
    async with TestClient(TestServer(create_app(app_config, clock=clock))) as a, \
            TestClient(TestServer(create_app(other, clock=clock))) as b:
        for _ in range(3):
            await route(a, prompt=PROMPTS[0])
        await route(b, prompt=PROMPTS[0])
        ma, mb = await scrape(a), await scrape(b)
    assert sum(ma["bandit_router_decisions_total"].values()) == 3
    assert sum(mb["bandit_router_decisions_total"].values()) == 1
    assert mb["bandit_router_decision_seconds_count"][()] == 1


async def test_openmetrics_is_served_when_asked(client):
    await route(client, prompt=PROMPTS[0])
    r = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; "
                                                        "version=1.0.0"})
    assert r.status == 200 and r.content_type == "application/openmetrics-text"
    text = await r.text()
    assert text.rstrip().endswith("# EOF")
    assert "bandit_router_decisions_total{" in text


async def test_the_metrics_page_documents_every_metric(app_config: Config, clock: FakeClock):
    config = replace(app_config, budgets=(BudgetConfig("daily", 2.0),))
    async with TestClient(TestServer(create_app(config, clock=clock))) as c:
        d = await route(c, prompt=PROMPTS[0])
        await applied(c, route_id=d["route_id"], quality=0.5)
        await c.get("/nowhere")
        r = await c.get("/metrics")
        families = {f.name for f in text_string_to_metric_families(await r.text())}
    page = (ROOT / "docs" / "metrics.md").read_text()
    # the parser names a counter without its _total; the page uses the exposed name
    exposed = {f"{name}_total" if f"{name}_total" in page else name for name in families}
    # prometheus-client's own: when each counter and histogram was created
    exposed = {name for name in exposed if not name.endswith("_created")}
    assert len(exposed) >= 17
    assert not {name for name in exposed if f"`{name}`" not in page}
