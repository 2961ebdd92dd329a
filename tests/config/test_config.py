"""Config loading: the bundled file is valid, and every mistake names its dotted key."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bandit_router.config import ConfigError, load, parse
from bandit_router.core.settings import Config

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "config.toml"


@pytest.fixture(scope="module")
def pristine() -> dict[str, Any]:
    return tomllib.loads(BUNDLED.read_text(encoding="utf-8"))


@pytest.fixture
def doc(pristine: dict[str, Any]) -> dict[str, Any]:
    """A private, editable copy of the bundled config document."""
    return copy.deepcopy(pristine)


def error_for(doc: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(doc)
    return info.value


# --- the bundled config ---------------------------------------------------------------------

def test_bundled_config_loads(config: Config) -> None:
    assert config.source == str(BUNDLED)
    assert config.routing.default_policy in config.policies
    assert set(config.policies) == {"default", "cheap"}
    assert config.policies["cheap"].mode == "cheapest_adequate"
    assert config.policies["cheap"].target_for("code:high") == 0.8
    assert config.policies["cheap"].target_for("chat:low") == 0.7
    default = config.policies["default"]
    assert default.mode == "value" and default.weights.points_per_price_doubling == 2.0
    assert default.pooling == "full" and default.contention_level == pytest.approx(0.9973)
    assert config.policies["cheap"].pooling == "optimistic"  # the older modes' default
    assert config.buckets.levels == ("low", "high")
    assert "code:high" in config.buckets.names


def test_catalog_has_several_models_from_several_providers(config: Config) -> None:
    assert len(config.models) >= 5
    assert len({m.provider for m in config.models}) >= 2
    assert len({m.name for m in config.models}) == len(config.models)
    for m in config.models:
        assert m.input_per_mtok >= 0 and m.output_per_mtok >= 0
        assert m.context_tokens > 0 and m.latency_ms > 0


def test_parse_of_the_document_equals_load(config: Config, doc: dict[str, Any]) -> None:
    assert parse(doc, source=str(BUNDLED)) == config


def test_defaults_fill_optional_tables(doc: dict[str, Any]) -> None:
    for name in ("server", "storage", "logging", "routing"):
        del doc[name]
    config = parse(doc)
    assert config.server.port == 8787
    assert config.routing.seed is None
    assert config.routing.default_policy == "default"


# --- unknown keys ---------------------------------------------------------------------------

UNKNOWN_KEYS: list[tuple[Callable[[dict], dict], str]] = [
    (lambda d: d, "colour"),
    (lambda d: d["server"], "prot"),
    (lambda d: d["storage"], "pth"),
    (lambda d: d["routing"], "seeds"),
    (lambda d: d["models"][2], "price"),
    (lambda d: d["buckets"], "level"),
    (lambda d: d["buckets"]["complexity"], "per_cues"),
    (lambda d: d["buckets"]["tasks"]["code"], "hint"),
    (lambda d: d["policies"]["default"], "halflife_hours"),
    (lambda d: d["policies"]["default"]["prior"], "quality_men"),
    (lambda d: d["policies"]["cheap"].setdefault("weights", {}), "latncy"),
]
UNKNOWN_KEY_NAMES = ["colour", "server.prot", "storage.pth", "routing.seeds", "models[2].price",
                     "buckets.level", "buckets.complexity.per_cues", "buckets.tasks.code.hint",
                     "policies.default.halflife_hours", "policies.default.prior.quality_men",
                     "policies.cheap.weights.latncy"]


@pytest.mark.parametrize(("where", "key", "dotted"),
                         [(w, k, d) for (w, k), d in zip(UNKNOWN_KEYS, UNKNOWN_KEY_NAMES,
                                                         strict=True)],
                         ids=UNKNOWN_KEY_NAMES)
def test_unknown_key_is_named(doc: dict[str, Any], where: Callable[[dict], dict], key: str,
                              dotted: str) -> None:
    where(doc)[key] = 1
    err = error_for(doc)
    assert err.key == dotted
    assert "unknown key" in err.problem
    assert f"'{dotted}'" in str(err)


# --- wrong types and out-of-range values ----------------------------------------------------

def _set(path: str, value: Any) -> Callable[[dict], None]:
    """A mutation that sets the value at a path like 'models.0.latency_ms'."""
    parts = path.split(".")

    def mutate(d: dict) -> None:
        node: Any = d
        for p in parts[:-1]:
            node = node[int(p)] if isinstance(node, list) else node[p]
        node[parts[-1]] = value

    return mutate


BAD_VALUES = [
    # (path in the document, bad value, dotted key expected in the error)
    ("server.port", "8787", "server.port"),
    ("server.port", 8787.0, "server.port"),
    ("server.port", 70000, "server.port"),
    ("server.port", True, "server.port"),
    ("server.host", 127, "server.host"),
    ("server.max_body_bytes", 10, "server.max_body_bytes"),
    ("storage.synchronous", "sometimes", "storage.synchronous"),
    ("storage.decision_ttl_hours", 0, "storage.decision_ttl_hours"),
    ("logging.level", "loud", "logging.level"),
    ("logging.decision_sample_rate", 1.5, "logging.decision_sample_rate"),
    ("logging.decision_sample_rate", float("nan"), "logging.decision_sample_rate"),
    ("routing.seed", "zero", "routing.seed"),
    ("routing.recent_window", 0, "routing.recent_window"),
    ("models.0.latency_ms", 0, "models[0].latency_ms"),
    ("models.1.input_per_mtok", -0.1, "models[1].input_per_mtok"),
    ("models.3.context_tokens", 1.5e6, "models[3].context_tokens"),
    ("models.4.name", 5, "models[4].name"),
    ("buckets.levels", "low", "buckets.levels"),
    ("buckets.complexity.per_cue", -1, "buckets.complexity.per_cue"),
    ("buckets.tasks.code.min_cues", 0, "buckets.tasks.code.min_cues"),
    ("buckets.tasks.code.cues", ["bug", 3], "buckets.tasks.code.cues"),
    ("policies.default.mode", "greedy", "policies.default.mode"),
    ("policies.default.evidence_cap", -1, "policies.default.evidence_cap"),
    ("policies.default.half_life_hours", float("inf"), "policies.default.half_life_hours"),
    ("policies.default.weights.cost", -0.1, "policies.default.weights.cost"),
    ("policies.default.weights.points_per_price_doubling", -1,
     "policies.default.weights.points_per_price_doubling"),
    ("policies.default.weights.points_per_latency_doubling", "fast",
     "policies.default.weights.points_per_latency_doubling"),
    ("policies.default.contention_level", 0.3, "policies.default.contention_level"),
    ("policies.default.contention_level", 1.0, "policies.default.contention_level"),
    ("policies.default.prior.quality_mean", 1.0, "policies.default.prior.quality_mean"),
    ("policies.default.prior.quality_mean", 0.0, "policies.default.prior.quality_mean"),
    ("policies.default.prior.quality_strength", 0, "policies.default.prior.quality_strength"),
    ("policies.default.prior.quality_strength", 0.01,
     "policies.default.prior.quality_strength"),
    ("policies.default.prior.quality_mean", 0.999, "policies.default.prior.quality_mean"),
    ("policies.default.half_life_hours", 1e-9, "policies.default.half_life_hours"),
    ("policies.cheap.quality_target", 1.2, "policies.cheap.quality_target"),
    ("policies.cheap.quality_targets.code:high", -0.5,
     "policies.cheap.quality_targets.code:high"),
    ("policies.cheap.prior", 3, "policies.cheap.prior"),
]


@pytest.mark.parametrize(("path", "value", "dotted"), BAD_VALUES,
                         ids=[f"{p}={v!r}" for p, v, _ in BAD_VALUES])
def test_bad_value_is_named(doc: dict[str, Any], path: str, value: Any, dotted: str) -> None:
    _set(path, value)(doc)
    err = error_for(doc)
    assert err.key == dotted
    assert f"'{dotted}'" in str(err)


def test_missing_required_model_field_is_named(doc: dict[str, Any]) -> None:
    del doc["models"][1]["provider"]
    err = error_for(doc)
    assert err.key == "models[1].provider"
    assert "required" in err.problem


def test_missing_catalog(doc: dict[str, Any]) -> None:
    del doc["models"]
    assert error_for(doc).key == "models"
    doc["models"] = []
    assert error_for(doc).key == "models"


# --- cross-field checks ---------------------------------------------------------------------

def test_default_policy_must_exist(doc: dict[str, Any]) -> None:
    doc["routing"]["default_policy"] = "fastest"
    err = error_for(doc)
    assert err.key == "routing.default_policy"
    assert "fastest" in err.problem


def test_duplicate_model_name(doc: dict[str, Any]) -> None:
    doc["models"].append(dict(doc["models"][1]))
    err = error_for(doc)
    index = len(doc["models"]) - 1
    assert err.key == f"models[{index}].name"
    assert doc["models"][1]["name"] in err.problem


@pytest.mark.parametrize(("levels", "thresholds"), [
    (["low", "high"], []),
    (["low", "high"], [1.0, 2.0]),
    (["low", "mid", "high"], [2.0]),
    (["low", "mid", "high"], [3.0, 1.0]),  # right count, but descending
])
def test_thresholds_must_match_levels(doc: dict[str, Any], levels: list[str],
                                      thresholds: list[float]) -> None:
    doc["buckets"]["levels"] = levels
    doc["buckets"]["thresholds"] = thresholds
    assert error_for(doc).key == "buckets.thresholds"


def test_three_levels_with_two_ascending_thresholds_are_fine(doc: dict[str, Any]) -> None:
    doc["buckets"]["levels"] = ["low", "mid", "high"]
    doc["buckets"]["thresholds"] = [1.0, 3.0]
    doc["policies"]["cheap"]["quality_targets"] = {"code:mid": 0.75}
    config = parse(doc)
    assert "chat:mid" in config.buckets.names
    assert config.policies["cheap"].target_for("code:mid") == 0.75


def test_repeated_level(doc: dict[str, Any]) -> None:
    doc["buckets"]["levels"] = ["low", "low"]
    assert error_for(doc).key == "buckets.levels"


def test_task_names_may_not_hold_a_colon(doc: dict[str, Any]) -> None:
    doc["buckets"]["tasks"]["code:review"] = {"hints": ["review"]}
    assert error_for(doc).key == "buckets.tasks.code:review"


def test_default_task_must_be_a_task(doc: dict[str, Any]) -> None:
    doc["buckets"]["default_task"] = "smalltalk"
    assert error_for(doc).key == "buckets.default_task"


def test_quality_target_for_unknown_bucket(doc: dict[str, Any]) -> None:
    doc["policies"]["cheap"]["quality_targets"]["code:extreme"] = 0.9
    err = error_for(doc)
    assert err.key == "policies.cheap.quality_targets.code:extreme"
    assert "unknown bucket" in err.problem


# --- files ----------------------------------------------------------------------------------

def test_invalid_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[server\nport = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.key == "<file>"
    assert "not valid TOML" in info.value.problem
    assert str(path) in info.value.problem


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.key == "<file>"
    assert str(path) in info.value.problem


def test_load_reports_bad_values_from_a_file(tmp_path: Path) -> None:
    text = BUNDLED.read_text(encoding="utf-8").replace("port = 8787", "prot = 8787")
    path = tmp_path / "typo.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.key == "server.prot"


def test_load_uses_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = BUNDLED.read_text(encoding="utf-8").replace("port = 8787", "port = 9999")
    path = tmp_path / "env.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("BANDIT_ROUTER_CONFIG", str(path))
    config = load()
    assert config.server.port == 9999
    assert config.source == str(path)


# --- every number has a range; names follow one rule (issue 16, item 8) ---------------------

def _numeric_leaves(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """(dotted path as _set takes it, value) of every number in a document."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    out: list[tuple[str, Any]] = []
    for key, value in items:
        here = f"{path}.{key}" if path else str(key)
        if isinstance(value, dict | list):
            out += _numeric_leaves(value, here)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out.append((here, value))
    return out


def _with_budget(doc: dict[str, Any]) -> dict[str, Any]:
    doc["budgets"] = [{"name": "team", "limit_usd": 5.0, "max_cost_weight": 2.0}]
    return doc


def test_every_numeric_setting_refuses_an_absurd_value(doc: dict[str, Any]) -> None:
    leaves = _numeric_leaves(_with_budget(doc))
    assert len(leaves) > 60  # the whole bundled file, every model and policy
    accepted = []
    for path, value in leaves:
        if path.startswith("buckets.thresholds") or path == "routing.seed":
            continue  # checked below: any seed >= 0 is sane; thresholds are a list
        trial = _with_budget(copy.deepcopy(doc))
        _set(path, 10**18 if isinstance(value, int) else 1e200)(trial)
        try:
            parse(trial)
        except ConfigError as err:
            assert err.key.replace("[", ".").replace("]", "") == path, (path, err)
        else:
            accepted.append(path)
    assert not accepted, f"accepted an absurd value for {accepted}"


@pytest.mark.parametrize(("path", "value", "dotted"), [
    ("policies.default.prior.latency_log_sd", 1e200, "policies.default.prior.latency_log_sd"),
    ("routing.seed", -1, "routing.seed"),
    ("buckets.thresholds", [1e300], "buckets.thresholds"),
    ("gateway.timeout_s", 1e9, "gateway.timeout_s"),
])
def test_out_of_range_values_are_named(doc: dict[str, Any], path: str, value: Any,
                                       dotted: str) -> None:
    _set(path, value)(doc)
    assert error_for(doc).key == dotted


BAD_NAMES = ["", "a\x00b", "line\nbreak", "x" * 65, "has space", "-dash-first", "é-accent"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_model_policy_task_level_and_tenant_names_follow_the_rule(
        doc: dict[str, Any], name: str) -> None:
    model = copy.deepcopy(doc)
    model["models"][2]["name"] = name
    assert error_for(model).key == "models[2].name"
    policy = copy.deepcopy(doc)
    policy["policies"][name] = policy["policies"].pop("cheap")
    assert error_for(policy).key == f"policies.{name}"
    task = copy.deepcopy(doc)
    task["buckets"]["tasks"][name] = task["buckets"]["tasks"].pop("write")
    assert error_for(task).key == f"buckets.tasks.{name}"
    level = copy.deepcopy(doc)
    level["buckets"]["levels"] = ["low", name]
    assert error_for(level).key == "buckets.levels[1]"
    tenant = copy.deepcopy(doc)
    tenant["auth"] = {"keys": [{"name": "k", "tenant": name, "scopes": ["route"],
                                "key": "k" * 32}]}
    assert error_for(tenant).key == "auth.keys[0].tenant"


def test_a_task_or_level_is_at_most_32_characters_without_a_colon(doc: dict[str, Any]) -> None:
    doc["buckets"]["levels"] = ["low", "h" * 33]
    assert "at most 32" in error_for(doc).problem
    doc["buckets"]["levels"] = ["low", "hi:gh"]
    assert error_for(doc).key == "buckets.levels[1]"


def test_names_at_their_longest_give_route_ids_that_feedback_accepts(
        doc: dict[str, Any]) -> None:
    import numpy as np

    from bandit_router.core.route_id import RouteIds
    from bandit_router.core.types import Message, RouteRequest
    from bandit_router.engine.router import Engine
    from bandit_router.http.schemas.bodies import MAX_ROUTE_ID
    from bandit_router.http.wire import parse_feedback

    doc["models"] = [dict(doc["models"][0], name="m" * 64, context_tokens=100_000_000)]
    doc["policies"] = {"p" * 64: doc["policies"]["default"]}
    doc["routing"]["default_policy"] = "p" * 64
    doc["buckets"]["levels"] = ["l" * 32, "h" * 32]
    doc["buckets"]["tasks"] = {"t" * 32: {"hints": ["x"]}}
    doc["buckets"]["default_task"] = "t" * 32
    config = parse(doc)
    engine = Engine(config, RouteIds(b"k" * 32), np.random.default_rng(0), lambda: 4e9)
    request = RouteRequest(messages=(Message("user", "hi"),), input_tokens=99_999_000,
                           tenant="n" * 64)
    route_id = engine.decide(request).route_id
    assert len(route_id) <= 450 < MAX_ROUTE_ID
    assert parse_feedback({"route_id": route_id, "quality": 1.0})[0] == route_id


def test_numbers_at_the_edges_of_their_ranges_route_and_learn(doc: dict[str, Any]) -> None:
    import numpy as np

    from bandit_router.core.learner import ArmBook
    from bandit_router.core.route_id import RouteIds
    from bandit_router.core.types import FeedbackEvent, Message, RouteRequest, RouteTicket
    from bandit_router.engine.router import Engine

    prior = doc["policies"]["default"]["prior"]
    prior.update(latency_log_sd=5.0, latency_strength=1e6, output_tokens_strength=1e6,
                 quality_strength=1e6)
    doc["policies"]["default"]["weights"] = {"cost": 1000.0, "latency": 1000.0}
    doc["policies"]["default"].update(half_life_hours=87_600.0, pool_strength=1e6)
    doc["models"][0].update(input_per_mtok=100_000.0, latency_ms=86_400_000.0)
    config = parse(doc)
    engine = Engine(config, RouteIds(b"k" * 32), np.random.default_rng(0), lambda: 4e9)
    book = ArmBook(config.policies)
    for _ in range(20):
        d = engine.decide(RouteRequest(messages=(Message("user", "hi"),), explain=True))
        ticket = RouteTicket(d.policy, d.bucket, d.model, d.created_at, d.input_tokens, "")
        facts = (("quality", 1.0), ("latency_ms", 86_400_000.0), ("output_tokens", 1e8))
        engine.absorb(book.apply(FeedbackEvent(d.route_id, ticket, facts, 4e9)))
    assert engine.report()
