"""Signed route_ids: what is issued reads back; anything else is UnknownRoute, nothing worse."""

from __future__ import annotations

import base64
import string
from dataclasses import replace

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandit_router.core.route_id import RouteIds, UnknownRoute, new_key, new_nonce
from bandit_router.core.types import RouteTicket

B64URL = string.ascii_letters + string.digits + "-_"


@pytest.fixture
def ticket() -> RouteTicket:
    return RouteTicket(policy="default", bucket="code:high", model="claude-sonnet-4-5",
                       created_at=1_800_000_123.456, input_tokens=1234, nonce=new_nonce())


@pytest.fixture
def issued(route_ids: RouteIds, ticket: RouteTicket) -> str:
    return route_ids.issue(ticket)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def test_roundtrip(route_ids: RouteIds, ticket: RouteTicket, issued: str) -> None:
    assert issued.startswith("r3.")
    assert route_ids.read(issued, "default") == ticket


def test_a_fresh_reader_with_the_same_key_reads_it(issued: str, ticket: RouteTicket) -> None:
    assert RouteIds(b"k" * 32).read(issued, "default") == ticket


tickets = st.builds(
    RouteTicket, policy=st.text(max_size=30), bucket=st.text(max_size=30),
    model=st.text(max_size=40),
    created_at=st.integers(0, 4_000_000_000_000).map(lambda ms: ms / 1000.0),
    input_tokens=st.integers(0, 100_000_000), nonce=st.text(alphabet="0123456789abcdef",
                                                            min_size=12, max_size=12))


@given(ticket=tickets)
@settings(max_examples=200)
def test_roundtrip_any_ticket(ticket: RouteTicket) -> None:
    ids = RouteIds(b"k" * 32)
    route_id = ids.issue(ticket)
    assert route_id.isascii()
    assert ids.read(route_id, "default") == ticket


def test_nonces_make_equal_decisions_distinct(route_ids: RouteIds, ticket: RouteTicket) -> None:
    twin = RouteTicket(ticket.policy, ticket.bucket, ticket.model, ticket.created_at,
                       ticket.input_tokens, new_nonce())
    assert route_ids.issue(twin) != route_ids.issue(ticket)


def test_other_key_refuses(issued: str) -> None:
    with pytest.raises(UnknownRoute):
        RouteIds(new_key()).read(issued, "default")


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        RouteIds(b"short")


def test_forged_payload_with_a_copied_mac_is_refused(route_ids: RouteIds, issued: str) -> None:
    prefix, payload, mac = issued.split(".")
    fields = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    fields[3] = "gpt-5-nano"  # claim another model
    with pytest.raises(UnknownRoute):
        route_ids.read(f"{prefix}.{b64(orjson.dumps(fields))}.{mac}", "default")


def _substitutions(part: str) -> list[str]:
    """Every string that differs from `part` in exactly one base64url character."""
    return [part[:i] + c + part[i + 1:] for i in range(len(part)) for c in B64URL if c != part[i]]


def test_every_one_character_change_to_the_payload_is_refused(route_ids: RouteIds,
                                                             issued: str) -> None:
    prefix, payload, mac = issued.split(".")
    for changed in _substitutions(payload):
        with pytest.raises(UnknownRoute):
            route_ids.read(f"{prefix}.{changed}.{mac}", "default")


def test_every_one_character_change_to_the_mac_is_refused(route_ids: RouteIds,
                                                         issued: str) -> None:
    # including the last character, whose low bits base64 decoding would ignore:
    # two spellings of one route_id would let a fact be counted twice
    prefix, payload, mac = issued.split(".")
    for changed in _substitutions(mac):
        with pytest.raises(UnknownRoute):
            route_ids.read(f"{prefix}.{payload}.{changed}", "default")


@pytest.mark.parametrize("spelling", [
    lambda r: r + "==",  # padding
    lambda r: r + "\n",
    lambda r: " " + r,
    lambda r: r[:-3] + "!" + r[-3:],  # a character base64 decoding would skip
    lambda r: r[:-1],
    lambda r: r + "A",
    lambda r: r.upper(),
    lambda r: "r1" + r[2:],
    lambda r: r.split(".")[0] + "." + r.split(".")[1],  # no mac
    lambda r: r.split(".")[0] + ".." + r.split(".")[2],  # no payload
    lambda r: r + "." + r.split(".")[2],  # an extra part
])
def test_other_spellings_of_a_route_id_are_refused(route_ids: RouteIds, issued: str,
                                                   spelling) -> None:
    variant = spelling(issued)
    assert variant != issued
    with pytest.raises(UnknownRoute):
        route_ids.read(variant, "default")


def test_the_standard_base64_alphabet_is_refused(route_ids: RouteIds,
                                                ticket: RouteTicket) -> None:
    # base64url's "-" and "_" spelt as "+" and "/" decode to the same bytes
    tried = 0
    for i in range(200):
        issued = route_ids.issue(replace(ticket, nonce=f"{i:012x}"))
        prefix, payload, mac = issued.split(".")
        if "-" in mac or "_" in mac:
            tried += 1
            standard = mac.replace("-", "+").replace("_", "/")
            with pytest.raises(UnknownRoute):
                route_ids.read(f"{prefix}.{payload}.{standard}", "default")
    assert tried > 50


@pytest.mark.parametrize("garbage", [
    "", ".", "..", "r2", "r2.", "r2..", "r2.e30.", "r2..AAAA", "not a route id", "r2.%%%.%%%",
    "r2.W10.AAAAAAAAAAAAAAAAAAAAAA", "r2.ñ.ü", "r2.\x00.\x00", "r2." + "A" * 10_000 + ".AA",
    "r3.W10.AAAAAAAAAAAAAAAAAAAAAA", "r3.e30.", "r3." + "A" * 10_000 + ".AA",
])
def test_garbage_is_refused(route_ids: RouteIds, garbage: str) -> None:
    with pytest.raises(UnknownRoute):
        route_ids.read(garbage, "default")


@given(text=st.text(max_size=300))
@settings(max_examples=300)
def test_any_text_is_unknown_route(text: str) -> None:
    with pytest.raises(UnknownRoute):
        RouteIds(b"k" * 32).read(text, "default")


@given(parts=st.lists(st.text(alphabet=B64URL + "=.!é", max_size=40), min_size=1, max_size=4),
       prefix=st.sampled_from(["r2.", "r3."]))
@settings(max_examples=300)
def test_any_dotted_text_is_unknown_route(parts: list[str], prefix: str) -> None:
    with pytest.raises(UnknownRoute):
        RouteIds(b"k" * 32).read(prefix + ".".join(parts), "default")


@given(cut=st.integers(0, 200))
@settings(max_examples=100)
def test_truncations_are_refused(cut: int) -> None:
    ids = RouteIds(b"k" * 32)
    issued = ids.issue(RouteTicket("default", "chat:low", "gpt-5", 1.5, 10, "abcdef012345"))
    truncated = issued[:cut]
    if truncated != issued:
        with pytest.raises(UnknownRoute):
            ids.read(truncated, "default")


# --- tenants ----------------------------------------------------------------------------------

def test_the_tenant_is_bound_but_not_written(route_ids: RouteIds, ticket: RouteTicket) -> None:
    issued = route_ids.issue(replace(ticket, tenant="acme-corporation"))
    payload = issued.split(".")[1]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert b"acme" not in decoded and "acme" not in issued
    assert route_ids.read(issued, "acme-corporation").tenant == "acme-corporation"


def test_another_tenants_route_id_reads_as_a_forged_one(route_ids: RouteIds,
                                                        ticket: RouteTicket) -> None:
    issued = route_ids.issue(replace(ticket, tenant="acme"))
    with pytest.raises(UnknownRoute) as foreign:
        route_ids.read(issued, "globex")
    prefix, payload, mac = issued.split(".")
    with pytest.raises(UnknownRoute) as forged:
        route_ids.read(f"{prefix}.{payload}.{'A' * len(mac)}", "acme")
    assert str(foreign.value) == str(forged.value)


def _legacy(route_ids: RouteIds, ticket: RouteTicket) -> str:
    """An r2 route_id as the previous version issued it (the tenant in clear)."""
    payload = orjson.dumps([round(ticket.created_at * 1000), ticket.tenant, ticket.policy,
                            ticket.bucket, ticket.model, ticket.input_tokens, ticket.nonce])
    body = f"r2.{b64(payload)}"
    return f"{body}.{route_ids._mac(body, None)}"  # the old MAC: no tenant bound


def test_route_ids_issued_before_the_upgrade_still_read(route_ids: RouteIds,
                                                        ticket: RouteTicket) -> None:
    old = _legacy(route_ids, replace(ticket, tenant="acme"))
    assert route_ids.read(old, "acme") == replace(ticket, tenant="acme")
    with pytest.raises(UnknownRoute):
        route_ids.read(old, "globex")
