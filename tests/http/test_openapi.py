"""The OpenAPI document: in sync with the app and the wire format, valid, served, and the
source of a schemathesis fuzz run of every endpoint on a real loopback port."""

from __future__ import annotations

import asyncio
import json
import threading
import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import hypothesis
import orjson
import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.config import HealthCheck
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bandit_router.config import parse
from bandit_router.core.settings import SCOPES, Config, ServerConfig
from bandit_router.core.types import CLIENT_FACTS
from bandit_router.http import openapi
from bandit_router.http.app import create_app
from bandit_router.http.auth import PUBLIC_PATHS
from bandit_router.http.catalog_wire import ADD_FIELDS, AUDIT_QUERY, PATCH_FIELDS
from bandit_router.http.schemas.bodies import Bodies
from bandit_router.http.wire import (
    ARMS_QUERY,
    CONSTRAINT_FIELDS,
    FEEDBACK_FIELDS,
    RESET_FIELDS,
    ROUTE_FIELDS,
    WEIGHT_FIELDS,
)
from tests.calls import post
from tests.conftest import ROOT

FUZZ_EXAMPLES = 60  # per operation and generation phase; keeps the file well under a minute
STATEFUL_EXAMPLES = 60  # route -> feedback scenarios; derandomized, so which calls are made
# follows the document: at 30, one changed description left 3 feedback calls, all refused
FUZZ_KEY = "fuzz-key-0123456789abcdef"  # configured, never sent by the fuzzer
FUZZED: Counter[str] = Counter()  # cases sent, by run and operation (reported at the end)
STATUSES: Counter[str] = Counter()  # answers, by run, operation and status


def documented_operations(doc: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items() for method in item}


def resolve(doc: dict, schema: dict) -> dict:
    while "$ref" in schema:
        node = doc
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def plain(doc: dict, schema: dict) -> dict:
    """A field's schema, its $ref followed and its null branch dropped (null = absent)."""
    schema = resolve(doc, schema)
    branches = [b for b in schema.get("anyOf", ()) if b != {"type": "null"}]
    return resolve(doc, branches[0]) if len(branches) == 1 else schema


def field(doc: dict, schema: dict, *names: str) -> dict:
    for name in names:
        schema = plain(doc, schema["properties"][name])
    return schema


def body_schema(doc: dict, method: str, path: str) -> dict:
    op = doc["paths"][path][method]
    return resolve(doc, op["requestBody"]["content"]["application/json"]["schema"])


# --- the document is in sync ------------------------------------------------------------

def test_every_app_route_is_documented_and_vice_versa(app_config: Config):
    app = create_app(app_config)
    registered = {(r.method, r.resource.canonical) for r in app.router.routes()
                  if r.method != "HEAD"}  # aiohttp adds HEAD to every GET
    documented = documented_operations(openapi.build(app_config))
    assert not registered - documented, "served but not in bandit_router/http/openapi.py"
    assert not documented - registered, "in bandit_router/http/openapi.py but not served"
    assert {path for _, path in registered} >= PUBLIC_PATHS


def test_every_wire_field_is_documented_and_vice_versa(app_config: Config):
    doc = openapi.build(app_config)
    route = body_schema(doc, "post", "/v1/route")
    assert set(route["properties"]) == ROUTE_FIELDS
    assert set(field(doc, route, "constraints")["properties"]) == CONSTRAINT_FIELDS
    assert set(field(doc, route, "weights")["properties"]) == WEIGHT_FIELDS
    assert set(body_schema(doc, "post", "/v1/feedback")["properties"]) == FEEDBACK_FIELDS
    assert set(body_schema(doc, "post", "/v1/admin/reset")["properties"]) == RESET_FIELDS
    add = body_schema(doc, "post", "/v1/admin/models")
    assert set(add["properties"]) == ADD_FIELDS
    patch = body_schema(doc, "patch", "/v1/admin/models/{name}")
    assert set(patch["properties"]) == PATCH_FIELDS
    audit = doc["paths"]["/v1/admin/audit"]["get"]["parameters"]
    assert {p["name"] for p in audit if p["in"] == "query"} == AUDIT_QUERY
    query = doc["paths"]["/v1/arms"]["get"]["parameters"]
    assert {p["name"] for p in query if p["in"] == "query"} == ARMS_QUERY
    # the server refuses unknown fields in each of these objects, and so does the document
    for schema in (route, field(doc, route, "constraints"), field(doc, route, "weights"),
                   body_schema(doc, "post", "/v1/feedback"),
                   body_schema(doc, "post", "/v1/admin/reset"), add, patch):
        assert schema["additionalProperties"] is False


def test_limits_and_names_come_from_the_config(app_config: Config):
    config = replace(app_config, server=replace(app_config.server, max_messages=7,
                                                max_body_bytes=5000))
    doc = openapi.build(config)
    route = body_schema(doc, "post", "/v1/route")
    assert field(doc, route, "messages")["maxItems"] == 7
    assert field(doc, route, "policy")["enum"] == list(config.policies)
    assert field(doc, route, "bucket")["enum"] == list(config.buckets.names)
    models = field(doc, route, "constraints", "models")["items"]["enum"]
    assert models == [m.name for m in config.models]
    assert "5000" in openapi.build(config)["paths"]["/v1/route"]["post"]["description"]


def test_every_error_status_has_the_error_shape(app_config: Config):
    doc = openapi.build(app_config)
    statuses = set()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert "default" in op["responses"], (method, path)
            for status, response in op["responses"].items():
                if status in ("200", "default") or path == "/healthz":
                    continue
                if status == "502":  # the gateway's, in OpenAI's error shape (a superset)
                    assert path == "/v1/chat/completions"
                    continue
                statuses.add(int(status))
                schema = response["content"]["application/json"]["schema"]
                assert schema["allOf"][0] == {"$ref": "#/components/schemas/Error"}
                codes = schema["allOf"][1]["properties"]["error"]["properties"]["code"]["enum"]
                assert codes and set(codes) <= set(openapi.error_codes()[int(status)])
    assert statuses == {400, 401, 403, 404, 408, 409, 413, 415, 422, 429, 503}
    error = doc["components"]["schemas"]["Error"]["properties"]["error"]
    assert error["required"] == ["code", "message", "field"]


def test_the_document_is_valid_openapi(app_config: Config, keyed_config: Config):
    for doc in (openapi.build(), openapi.build(app_config), openapi.build(keyed_config)):
        validate(doc)
    assert {} in openapi.build(app_config)["paths"]["/v1/route"]["post"]["security"]
    assert {} not in openapi.build(keyed_config)["paths"]["/v1/route"]["post"]["security"]


def boundaries(doc: dict, schema: dict, path: str = ""):
    """(dotted field, value, refused?) just past and just at each documented limit."""
    for name in schema.get("properties", {}):
        prop = field(doc, schema, name)
        field_ = f"{path}.{name}" if path else name
        if prop.get("type") == "object":
            yield from boundaries(doc, prop, field_)
        elif "maxLength" in prop and prop["maxLength"] <= 100_000:
            prefix = "http://" if prop.get("format") == "uri" else ""  # a URL must look like one
            yield field_, prefix + "x" * (prop["maxLength"] + 1 - len(prefix)), True
            yield field_, prefix + "x" * (prop["maxLength"] - len(prefix)), False
        if prop.get("minLength"):
            yield field_, "", True
        if prop.get("type") in ("integer", "number"):
            step = 1 if prop["type"] == "integer" else prop.get("maximum", 1) * 1e-6
            if "maximum" in prop:
                yield field_, prop["maximum"] + step, True
                yield field_, prop["maximum"], False
            if "minimum" in prop:
                yield field_, prop["minimum"] - step, True
                yield field_, prop["minimum"], False
            if "exclusiveMinimum" in prop:
                yield field_, prop["exclusiveMinimum"], True
        if prop.get("type") == "array":
            item = prop["items"].get("enum", ["x"])[0] if "enum" in prop["items"] else \
                {"role": "user", "content": "hi"}
            if "maxItems" in prop:
                yield field_, [item] * (prop["maxItems"] + 1), True
                yield field_, [item] * prop["maxItems"], False
            if prop.get("minItems"):
                yield field_, [], True


def with_value(body: dict, field: str, value) -> dict:
    body = json.loads(json.dumps(body))
    *parents, leaf = field.split(".")
    node = body
    for parent in parents:
        node = node.setdefault(parent, {})
    node[leaf] = value
    return body


MODEL_BOUND = {"input_tokens", "output_tokens", "cost_usd", "cached_input_tokens",
               "cache_write_tokens"}


async def test_every_documented_limit_is_the_servers(client, app_config: Config):
    """Just past each documented limit the server refuses that field; at it, it does not:
    the numbers in the document are the ones the server checks."""
    doc = openapi.build(app_config)
    decision = await (await client.post("/v1/route", json={"prompt": "hi"})).json()
    bases = {"/v1/route": {"prompt": "hi"},
             "/v1/feedback": {"route_id": decision["route_id"], "latency_ms": 5.0},
             "/v1/admin/reset": {},
             "/v1/admin/buckets": {"action": "reset", "bucket": "chat:low"},
             "/v1/admin/models": {"name": "limits-model", "input_per_mtok": 1.0,
                                  "output_per_mtok": 2.0, "context_tokens": 1000},
             "/v1/chat/completions": {"model": "auto",
                                      "messages": [{"role": "user", "content": "hi"}]}}
    assert set(bases) == {p for p, item in doc["paths"].items() if "post" in item}
    checked = 0
    for path, base in bases.items():
        for field, value, refused in boundaries(doc, body_schema(doc, "post", path)):
            if path == "/v1/feedback" and field in MODEL_BOUND:
                continue  # bounded by the routed model's limits too (tests/http/test_trust.py)
            if path == "/v1/admin/models" and field in ("upstream_model", "max_output_tokens",
                                                        "cached_input_per_mtok",
                                                        "cache_write_per_mtok"):
                # goes with an upstream (none declared here); at most context_tokens; the
                # cache prices are bounded by input_per_mtok too (tests/http/test_admin_models)
                continue
            body = with_value(base, field, value)
            if field == "messages":
                body.pop("prompt", None)
            if field in ("weights.cost", "weights.latency"):
                body["policy"] = "cheap"  # the older modes' weights; "default" decides by value
            resp = await client.post(path, json=body)
            answer = await resp.json()
            hit = resp.status == 400 and answer["error"]["field"] == field and \
                answer["error"]["code"] in ("invalid_field", "missing_field")
            assert hit == refused, (path, field, str(value)[:40], resp.status, answer)
            checked += 1
    assert checked > 40


async def test_openapi_json_serves_the_built_document(client, app_config: Config):
    resp = await client.get("/openapi.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    assert await resp.json() == orjson.loads(orjson.dumps(openapi.build(app_config)))


async def test_the_served_document_follows_the_live_catalog(client):
    """Built once at start; a model added at run time is in the next document's enums."""
    before = await (await client.get("/openapi.json")).read()
    assert await (await client.get("/openapi.json")).read() == before  # nothing changed
    status, _ = await post(client, "/v1/admin/models", {
        "name": "added-at-run-time", "input_per_mtok": 1.0, "output_per_mtok": 2.0,
        "context_tokens": 1000})
    assert status == 200
    doc = await (await client.get("/openapi.json")).json()
    route = body_schema(doc, "post", "/v1/route")
    assert "added-at-run-time" in field(doc, route, "constraints", "models")["items"]["enum"]
    assert "added-at-run-time" not in orjson.loads(before).__repr__()


def test_the_documents_parts_agree():
    """What the document's builder once asserted (and `python -O` skipped)."""
    doc = openapi.build()
    assert {s for s in openapi.SCOPE_OF.values() if s} <= set(SCOPES)
    assert set(CLIENT_FACTS) <= FEEDBACK_FIELDS
    assert {f for rule in body_schema(doc, "post", "/v1/feedback")["anyOf"]
            for f in rule["required"]} == set(CLIENT_FACTS)
    # request and response components share one namespace: no name is used twice
    requests = openapi._request_schemas(Bodies.build(ServerConfig()), None)[1]
    assert not set(requests) & set(openapi._response_schemas())


# --- fuzzing ----------------------------------------------------------------------------

class LiveServer:
    """The real app on a free loopback port, served from its own thread and event loop (the
    fuzzer's HTTP client is synchronous)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="live-server", daemon=True)
        self.url = ""
        self.error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        runner = web.AppRunner(create_app(self.config), access_log=None)
        try:
            self.loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            host, port = runner.addresses[0][:2]
            self.url = f"http://{host}:{port}"
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())
        self.loop.close()

    def __enter__(self) -> LiveServer:
        self.thread.start()
        assert self.ready.wait(30) and self.error is None, self.error
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        assert not self.thread.is_alive()


def _fuzz_config(keys: bool) -> Config:
    """The bundled config, with API keys (secrets written inline) if asked."""
    document = tomllib.loads((ROOT / "config.toml").read_text())
    # no model has an upstream: the gateway never calls out (nothing leaves the machine)
    assert not any("upstream" in model for model in document["models"])
    if keys:
        document["auth"] = {"keys": [{"name": "app", "tenant": "acme", "key": FUZZ_KEY,
                                      "scopes": ["route", "feedback", "admin"]}]}
    return parse(document)


def _schema(config: Config, sessions: bool = True) -> schemathesis.BaseSchema:
    document = openapi.build(config)
    if not sessions:
        # drawn in the stateful fuzz, session_id changed what its 60 derandomized scenarios
        # reached: none got as far as an applied feedback; sessions have tests of their own
        # (tests/http/test_sessions.py)
        body_schema(document, "post", "/v1/route")["properties"].pop("session_id")
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(suppress_health_check=[HealthCheck.all])
    schema.config.generation.update(max_examples=FUZZ_EXAMPLES, deterministic=True,
                                    database="none")
    return schema


OPEN, KEYED = _fuzz_config(keys=False), _fuzz_config(keys=True)
fuzz_open, fuzz_keyed = _schema(OPEN), _schema(KEYED)


def _live(config: Config, tmp_path_factory) -> LiveServer:
    db = str(tmp_path_factory.mktemp("fuzz") / "router.db")
    server = LiveServer(replace(config, storage=replace(config.storage, url=db)))
    with server:
        # the fuzzer works from the document this server serves
        served = requests.get(f"{server.url}/openapi.json", timeout=10).json()
        assert served == orjson.loads(orjson.dumps(openapi.build(server.config)))
        yield server


@pytest.fixture(scope="module")
def open_server(tmp_path_factory) -> LiveServer:
    yield from _live(OPEN, tmp_path_factory)
    print(f"\nfuzz cases sent: {dict(FUZZED)}, {sum(FUZZED.values())} in all; "
          f"answers: {dict(sorted(STATUSES.items()))}")


@pytest.fixture
def new_server(tmp_path_factory) -> Callable[[], LiveServer]:
    """Servers of their own, each on a new database. The stateful fuzz draws from the
    answers it gets (a rule runs only once a call has filled its bundle), so each of its
    scenarios needs a server in the same state: on a server that earlier scenarios changed
    (a model added, a 409 where a 200 was), hypothesis replaying a recorded scenario meets
    other answers and fails with FlakyStrategyDefinition (seen in full runs)."""
    def new() -> LiveServer:
        db = str(tmp_path_factory.mktemp("stateful") / "router.db")
        return LiveServer(replace(OPEN, storage=replace(OPEN.storage, url=db)))
    return new


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory) -> LiveServer:
    yield from _live(KEYED, tmp_path_factory)


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


def check_error_shape(response: schemathesis.Response) -> None:
    """Every 4xx/5xx is {"error": {"code": str, "message": str, "field": str | None}}."""
    if response.status_code < 400:
        return
    (content_type,) = response.headers["content-type"]  # lower-case keys, lists of values
    assert content_type.startswith("application/json"), response.content[:200]
    body = orjson.loads(response.content)
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) >= {"code", "message", "field"}, body  # the gateway's 502 adds OpenAI's
    assert isinstance(err["code"], str) and err["code"], body
    assert isinstance(err["message"], str) and err["message"], body
    assert err["field"] is None or isinstance(err["field"], str), body


def _fuzz(case: schemathesis.Case, server: LiveServer, label: str) -> schemathesis.Response:
    response = case.call(base_url=server.url)
    FUZZED[f"{label} {case.operation.label}"] += 1
    STATUSES[f"{label} {case.operation.label} {response.status_code}"] += 1
    case.validate_response(response, checks=CHECKS)
    if case.path != "/healthz":
        check_error_shape(response)
    return response


@fuzz_open.parametrize()
def test_fuzz_every_endpoint_without_keys(case, open_server):
    response = _fuzz(case, open_server, "open")
    assert response.status_code not in (401, 403)


@fuzz_keyed.parametrize()
def test_fuzz_every_endpoint_with_keys(case, keyed_server):
    response = _fuzz(case, keyed_server, "keyed")
    # the fuzzer has no key: every /v1 call is a JSON 401 (bar a method the path lacks: 405,
    # and a path parameter "." or "..", which the client resolves into another path: 404)
    dot_segment = {".", ".."} & {str(v) for v in (case.path_parameters or {}).values()}
    if case.path not in PUBLIC_PATHS and case.method.lower() == case.operation.method.lower() \
            and not dot_segment:
        assert response.status_code == 401, response.content[:200]
        assert orjson.loads(response.content)["error"]["code"] == "unauthorized"


def test_the_server_is_healthy_after_fuzzing(open_server):
    response = requests.get(f"{open_server.url}/healthz", timeout=10)
    assert response.status_code == 200 and response.json()["status"] == "ok"
    ops = {key.split(" ", 1)[1] for key in FUZZED if key.startswith("open ")}
    if ops:  # the fuzz run above ran in this session: it reached every operation
        assert ops == {f"{m} {p}" for m, p in documented_operations(
            openapi.build(open_server.config))}


def test_fuzz_route_then_feedback_statefully(new_server):
    """Schemathesis follows the document's link from a decision to feedback on it, so the
    fuzzed feedback carries real route_ids too (and meets 200s and 409s, not only 404s).
    Each scenario runs on a new server (see new_server)."""
    base = _schema(OPEN, sessions=False).as_state_machine()

    class Machine(base):
        def setup(self):
            self.server = new_server().__enter__()

        def teardown(self):
            self.server.__exit__(None, None, None)

        def get_call_kwargs(self, case):
            return {"base_url": self.server.url}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            FUZZED[f"stateful {case.operation.label}"] += 1
            STATUSES[f"stateful {case.operation.label} {response.status_code}"] += 1
            case.validate_response(response, checks=CHECKS)
            if case.path != "/healthz":
                check_error_shape(response)

    Machine.run(settings=settings(max_examples=STATEFUL_EXAMPLES, stateful_step_count=6,
                                  deadline=None, database=None, derandomize=True,
                                  suppress_health_check=list(hypothesis.HealthCheck)))
    # feedback met real route_ids: applied (200) or already counted (409), not only 404s
    assert STATUSES["stateful POST /v1/feedback 200"] > 0
