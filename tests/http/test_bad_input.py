"""Bad input by hand, beyond tests/http/test_handlers.py: bytes that are not UTF-8, JSON nested
100,000 deep, numbers past a double, NaN, 10 MB bodies (refused before they are read),
thousands of messages, every kind of unicode, odd content types, chunked and cut-short
bodies. Each answer is a JSON error or a normal answer, and the server keeps serving."""

from __future__ import annotations

import asyncio
import gzip
import io
import json

import orjson
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from bandit_router.http.app import create_app
from tests.calls import JSON, assert_error, error_of, route, still_serves

POSTS = ["/v1/route", "/v1/feedback", "/v1/admin/reset"]
TEN_MB = 10 * 1024 * 1024


async def post_raw(client, path: str, body, headers=JSON) -> tuple[int, dict]:
    resp = await client.post(path, data=body, headers=headers)
    assert resp.content_type == "application/json", await resp.text()
    return resp.status, await resp.json()


async def post_text(client, path: str, text: str) -> tuple[int, dict]:
    """A JSON body written by hand (escapes and number literals exactly as typed)."""
    return await post_raw(client, path, text.encode())


async def raw_http(server, request: bytes,
                   timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Send bytes on a fresh connection to a test client's server or a (host, port), and
    read one response: (status, headers, body). Fails if none arrives within `timeout` s."""
    if not isinstance(server, tuple):
        server = (server.server.host, server.server.port)
    reader, writer = await asyncio.open_connection(*server)
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip()
                   for k, v in (line.split(":", 1) for line in lines if ":" in line)}
        body = await asyncio.wait_for(
            reader.readexactly(int(headers.get("content-length", 0))), timeout)
        return int(status_line.split()[1]), headers, body
    finally:
        writer.close()


def request_head(path: str, *headers: str) -> bytes:
    return "\r\n".join([f"POST {path} HTTP/1.1", "Host: localhost", *headers, "", ""]).encode()


async def decision(client) -> dict:
    return await route(client, prompt="hello")


# --- bytes that are not UTF-8 -----------------------------------------------------------

NOT_UTF8 = [
    pytest.param(b'{"pr\xffompt": "hi"}', id="invalid-byte-in-a-key"),
    pytest.param(b'{"prompt": "\xc0\xaf"}', id="overlong-encoding"),
    pytest.param(b'{"prompt": "\x80"}', id="lone-continuation-byte"),
    pytest.param(b'{"prompt": "\xe2\x82"}', id="truncated-sequence"),
    pytest.param(b'{"prompt": "\xf4\x90\x80\x80"}', id="beyond-U+10FFFF"),
    pytest.param(bytes(range(256)) * 4, id="binary"),
    pytest.param(b"\xef\xbb\xbf" + b'{"prompt": "hi"}', id="utf-8-bom"),
    pytest.param('{"prompt": "hi"}'.encode("utf-32"), id="utf-32"),
    pytest.param('{"prompt": "hi"}'.encode("utf-16-be"), id="utf-16-no-bom"),
]


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize("body", NOT_UTF8)
async def test_bodies_that_are_not_utf8_are_400(client, path, body):
    status, answer = await post_raw(client, path, body)
    assert_error(status, answer, 400, "invalid_json", None)
    await still_serves(client)


async def test_a_declared_latin1_charset_does_not_change_the_decoding(client):
    status, answer = await post_raw(client, "/v1/route", '{"prompt": "café"}'.encode("latin-1"),
                                    headers={"Content-Type": "application/json; charset=latin-1"})
    assert_error(status, answer, 400, "invalid_json", None)  # JSON is UTF-8 (RFC 8259)
    await still_serves(client)


# --- deep nesting -----------------------------------------------------------------------

DEPTH = 100_000


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize("body", [
    pytest.param(b"[" * DEPTH + b"]" * DEPTH, id="arrays"),
    pytest.param(b'{"a":' * DEPTH + b"1" + b"}" * DEPTH, id="objects"),
    pytest.param(b'{"prompt": ' + b"[" * DEPTH + b"]" * DEPTH + b"}", id="in-a-field"),
    pytest.param(b"[" * DEPTH, id="unclosed"),
])
async def test_json_nested_100k_deep_is_400(client, path, body):
    status, answer = await post_raw(client, path, body)
    assert_error(status, answer, 400, "invalid_json", None)
    assert "depth" in answer["error"]["message"] or "EOF" in answer["error"]["message"] or \
        "unexpected" in answer["error"]["message"]
    await still_serves(client)


async def test_moderate_nesting_in_an_ignored_key_is_fine(client):
    deep = "[" * 500 + "]" * 500
    text = '{"messages": [{"role": "user", "content": "hi", "extra": ' + deep + "}]}"
    status, answer = await post_text(client, "/v1/route", text)
    assert status == 200, answer
    status, answer = await post_text(client, "/v1/route", '{"prompt": "hi", "weights": '
                                     + deep + "}")
    assert_error(status, answer, 400, "invalid_field", "weights")


# --- huge, tiny and non-finite numbers ---------------------------------------------------

BIG = "1" + "0" * 400  # 10**400, written out


@pytest.mark.parametrize(("path", "template"), [
    ("/v1/route", '{"prompt": "hi", "input_tokens": %s}'),
    ("/v1/route", '{"prompt": "hi", "max_output_tokens": %s}'),
    ("/v1/route", '{"prompt": "hi", "constraints": {"max_cost_usd": %s}}'),
    ("/v1/route", '{"prompt": "hi", "constraints": {"max_latency_ms": %s}}'),
    ("/v1/route", '{"prompt": "hi", "weights": {"cost": %s}}'),
    ("/v1/feedback", '{"route_id": "r2.x.y", "quality": %s}'),
    ("/v1/feedback", '{"route_id": "r2.x.y", "latency_ms": %s}'),
    ("/v1/feedback", '{"route_id": "r2.x.y", "output_tokens": %s}'),
    ("/v1/admin/reset", '{"model": %s}'),
])
@pytest.mark.parametrize("literal", [
    pytest.param(BIG, id="10**400"), pytest.param("-" + BIG, id="-10**400"),
    pytest.param("1e400", id="1e400"), pytest.param("-1e400", id="-1e400"),
    pytest.param("1" + "0" * 100_000, id="100k-digits"),
    pytest.param("NaN", id="NaN"), pytest.param("-Infinity", id="-Infinity"),
    pytest.param("Infinity", id="Infinity"), pytest.param("nan", id="nan"),
    pytest.param("inf", id="inf"), pytest.param("1e", id="1e"), pytest.param("0x10", id="hex"),
    pytest.param("+1", id="plus"), pytest.param(".5", id="bare-fraction"),
    pytest.param("01", id="leading-zero"),
])
async def test_numbers_json_cannot_hold_are_400(client, path, template, literal):
    status, answer = await post_text(client, path, template % literal)
    assert_error(status, answer, 400, "invalid_json", None)
    await still_serves(client)


@pytest.mark.parametrize(("field", "literal"), [
    ("input_tokens", "18446744073709551616"),  # 2**64: parsed as a float, not an integer
    ("input_tokens", "9223372036854775807"),  # 2**63 - 1: an integer, over the limit
    ("input_tokens", "1.0"),  # integral, but not an integer
    ("input_tokens", "1e2"),
    ("max_output_tokens", "-0"),
    ("input_tokens", '"NaN"'), ("input_tokens", '"Infinity"'),
])
async def test_numbers_that_parse_but_are_not_valid_integers_are_400(client, field, literal):
    status, answer = await post_text(client, "/v1/route",
                                     f'{{"prompt": "hi", "{field}": {literal}}}')
    assert_error(status, answer, 400, "invalid_field", field)
    await still_serves(client)


@pytest.mark.parametrize("literal", ['"NaN"', '"Infinity"', '"1e400"', "1e309", "-1e-400"])
async def test_feedback_numbers_as_strings_or_out_of_range_are_400_or_clamped(client, literal):
    d = await decision(client)
    status, answer = await post_text(
        client, "/v1/feedback", f'{{"route_id": "{d["route_id"]}", "quality": {literal}}}')
    if literal == "-1e-400":  # underflows to -0.0: a valid quality of 0
        assert status == 200 and answer["applied"] == {"quality": 0.0}, answer
    elif literal == "1e309":
        assert_error(status, answer, 400, "invalid_json", None)
    else:
        assert_error(status, answer, 400, "invalid_field", "quality")
    await still_serves(client)


async def test_a_100k_digit_fraction_is_parsed_quickly_and_accepted(client):
    d = await decision(client)
    text = f'{{"route_id": "{d["route_id"]}", "quality": 0.{"0" * 100_000}1}}'
    status, answer = await post_text(client, "/v1/feedback", text)
    assert status == 200 and answer["applied"]["quality"] == pytest.approx(0.0), answer


# --- 10 MB bodies, refused early ---------------------------------------------------------

@pytest.mark.parametrize("path", POSTS)
async def test_a_10mb_body_is_413(client, path, config):
    body = io.BytesIO(b'{"prompt": "' + b"x" * TEN_MB + b'"}')
    status, answer = await post_raw(client, path, body)  # with Content-Length
    assert_error(status, answer, 413, "body_too_large", None)
    assert str(config.server.max_body_bytes) in answer["error"]["message"]

    async def chunks():  # chunked, no Content-Length: refused once the limit is crossed
        for _ in range(10):
            yield b" " * (1024 * 1024)
        yield b'{"prompt": "hi"}'

    status, answer = await post_raw(client, path, chunks())
    assert_error(status, answer, 413, "body_too_large", None)
    await still_serves(client)


@pytest.mark.parametrize("path", POSTS)
async def test_a_large_content_length_is_refused_before_the_body_is_sent(client, path):
    """Only headers go out: the 413 must come back without the server waiting for 10 MB."""
    head = request_head(path, "Content-Type: application/json", f"Content-Length: {TEN_MB}")
    status, headers, body = await raw_http(client, head, timeout=5.0)
    assert status == 413
    assert headers["content-type"].startswith("application/json")
    assert orjson.loads(body)["error"]["code"] == "body_too_large"
    await still_serves(client)


async def test_a_gzip_bomb_is_413(client):
    """10 MB of spaces gzipped to a few KB: the limit applies to the decoded body."""
    bomb = gzip.compress(b" " * TEN_MB + b'{"prompt": "hi"}')
    assert len(bomb) < 64 * 1024
    status, answer = await post_raw(client, "/v1/route", io.BytesIO(bomb),
                                    headers={**JSON, "Content-Encoding": "gzip"})
    assert_error(status, answer, 413, "body_too_large", None)
    await still_serves(client)


async def test_gzip_bodies_within_the_limit_are_read(client):
    status, answer = await post_raw(client, "/v1/route", gzip.compress(b'{"prompt": "hi"}'),
                                    headers={**JSON, "Content-Encoding": "gzip"})
    assert status == 200 and answer["model"], answer


async def test_a_body_that_does_not_match_its_content_encoding_is_a_json_400(client):
    """Was a 500 (and a logged traceback): aiohttp's RequestPayloadError went uncaught."""
    with capture_logs() as events:
        resp = await client.post("/v1/route", data=b'{"prompt": "hi"}',
                                 headers={**JSON, "Content-Encoding": "gzip"})
        error = await error_of(resp, 400, "invalid_json", None)
    assert "Content-Encoding" in error["message"]
    assert resp.headers["Connection"] == "close"  # the body's framing is lost: no keep-alive
    assert not [e for e in events if e["event"] == "internal_error"]
    await still_serves(client)


async def test_a_body_just_under_the_default_limit_is_routed(client, config):
    filler = config.server.max_body_bytes - 100
    body = orjson.dumps({"prompt": "word " * (filler // 5)})
    assert config.server.max_body_bytes - 200 < len(body) <= config.server.max_body_bytes
    status, answer = await post_raw(client, "/v1/route", body)
    assert status == 200, answer


# --- thousands of messages ---------------------------------------------------------------

def _messages(n: int) -> list[dict]:
    return [{"role": ("user", "assistant")[i % 2], "content": [{"type": "text", "text": f"m{i}"}]}
            for i in range(n)]


async def test_thousands_of_messages_up_to_the_limit(client, config):
    limit = config.server.max_messages
    assert limit >= 1000  # "thousands": the default is 4096
    d = await route(client, messages=_messages(limit))
    assert d["model"]
    status, answer = await post_raw(client, "/v1/route",
                                    orjson.dumps({"messages": _messages(limit + 1)}))
    assert_error(status, answer, 400, "invalid_field", "messages")
    assert str(limit) in answer["error"]["message"]
    await still_serves(client)


async def test_many_messages_with_a_bad_one_at_the_end_name_it(client, config):
    messages = [*_messages(config.server.max_messages - 1), {"role": "user", "content": 7}]
    status, answer = await post_raw(client, "/v1/route", orjson.dumps({"messages": messages}))
    assert_error(status, answer, 400, "invalid_field",
                 f"messages[{len(messages) - 1}].content")


# --- unicode ------------------------------------------------------------------------------

UNICODE_PROMPTS = [
    pytest.param("Fix this bug 🐛🔥 in my code 👩‍💻👨‍👩‍👧‍👦🏳️‍🌈🇯🇵 👍🏽", id="emoji-zwj-flags"),
    pytest.param("مرحبا، كيف حالك؟ שלום עולם ‮reversed‬ text", id="rtl-and-overrides"),
    pytest.param("Z" + "\u0301\u0316\u0337" * 300 + "algo", id="combining-marks"),
    pytest.param("İ" * 5000 + " debug the code", id="lower-lengthens"),
    pytest.param("ß ﬃ ǅ ᾏ Σ ς " * 200, id="case-mapping-oddities"),
    pytest.param("\u0000\u0001\u001f\u007f nul and controls", id="control-chars"),
    pytest.param("\ufeff\u200b\u200d\u2028\u2029 invisible", id="invisible"),
    pytest.param("\uffff\ufffe\U0010ffff\U000e0001\ue000 nonchars", id="nonchars-private"),
    pytest.param("𝕮𝖔𝖉𝖊 ＣＯＤＥ ⓒⓞⓓⓔ", id="math-and-fullwidth"),
    pytest.param("中文提示：请总结这篇文章。" * 300, id="cjk"),
]


@pytest.mark.parametrize("prompt", UNICODE_PROMPTS)
async def test_unicode_prompts_are_routed_and_take_feedback(client, prompt):
    d = await route(client, prompt=prompt, task=prompt[:64])
    assert d["model"]
    # the same text as ASCII-only JSON, with \u escapes (astral planes as surrogate pairs)
    status, answer = await post_text(client, "/v1/route",
                                     json.dumps({"messages": [{"role": prompt[:64],
                                                               "content": prompt}]}))
    assert status == 200, answer
    status, answer = await post_raw(client, "/v1/feedback", orjson.dumps(
        {"route_id": d["route_id"], "quality": 0.5, "idempotency_key": prompt[:128]}))
    assert status == 200, answer
    await still_serves(client)


@pytest.mark.parametrize(("path", "text"), [
    ("/v1/route", '{"prompt": "\\ud800"}'),
    ("/v1/route", '{"prompt": "a\\udfffb"}'),
    ("/v1/route", '{"prompt": "\\ude00\\ud83d"}'),  # a pair in the wrong order
    ("/v1/route", '{"prompt": "\\ud83d"}'),
    ("/v1/route", '{"\\ud800": 1, "prompt": "hi"}'),
    ("/v1/route", '{"messages": [{"role": "\\udc00", "content": "hi"}]}'),
    ("/v1/route", '{"messages": [{"role": "user", "content": [{"type": "text", '
                  '"text": "\\ud800"}]}]}'),
    ("/v1/route", '{"prompt": "hi", "policy": "\\ud800"}'),
    ("/v1/feedback", '{"route_id": "\\ud800", "quality": 1}'),
    ("/v1/feedback", '{"route_id": "r2.x.y", "idempotency_key": "\\udbff", "quality": 1}'),
    ("/v1/admin/reset", '{"model": "\\ud800"}'),
])
async def test_lone_surrogates_are_400(client, path, text):
    status, answer = await post_text(client, path, text)
    assert_error(status, answer, 400, "invalid_json", None)
    assert "surrogate" in answer["error"]["message"]
    await still_serves(client)


async def test_an_escaped_surrogate_pair_is_one_character(client):
    status, answer = await post_text(client, "/v1/route", '{"prompt": "\\ud83d\\ude00"}')
    assert status == 200, answer
    d = await decision(client)
    key = "\\ud83d\\ude00" * 128  # 128 characters: the longest idempotency_key
    feedback = '{"route_id": "%s", "quality": 1, "idempotency_key": "%s"}'
    status, answer = await post_text(client, "/v1/feedback", feedback % (d["route_id"], key))
    assert status == 200, answer
    status, answer = await post_text(client, "/v1/feedback",
                                     feedback % (d["route_id"], key + "x"))
    assert_error(status, answer, 400, "invalid_field", "idempotency_key")


@pytest.mark.parametrize(("body", "code", "field"), [
    ({"prompt": "hi", "prömpt": "x"}, "unknown_field", "prömpt"),
    ({"prompt": "hi", "🔥": 1}, "unknown_field", "🔥"),
    ({"prompt": "hi", "\u0000": 1}, "unknown_field", "\u0000"),
    ({"prompt": "hi", "policy": "défault"}, "unknown_policy", "policy"),
    ({"prompt": "hi", "bucket": "code:lów"}, "unknown_bucket", "bucket"),
    ({"prompt": "hi", "constraints": {"models": ["gpt-5\u200b"]}},
     "unknown_model", "constraints.models"),
    ({"prompt": "hi", "task": "😀" * 65}, "invalid_field", "task"),
])
async def test_unicode_names_are_refused_with_the_name_echoed_intact(client, body, code, field):
    status, answer = await post_raw(client, "/v1/route", orjson.dumps(body))
    assert_error(status, answer, 400, code, field)
    await still_serves(client)


async def test_unicode_query_parameters(client):
    resp = await client.get("/v1/arms", params={"policy": "😀"})
    await error_of(resp, 400, "unknown_policy", "policy")
    resp = await client.get("/v1/arms?%ff%fe=1")  # not UTF-8 once decoded
    error = await error_of(resp, 400, "unknown_field", "\ufffd\ufffd")
    assert "allowed" in error["message"]
    resp = await client.get("/v1/arms?bucket=%ED%A0%80")  # an encoded lone surrogate
    await error_of(resp, 400, "unknown_bucket", "bucket")
    await still_serves(client)


# --- content types ------------------------------------------------------------------------

@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/jsonx", "application/json-seq", "text/json", "application/xml", "///", None,
])
async def test_wrong_content_types_on_reset_are_415(client, content_type):
    headers = {} if content_type is None else {"Content-Type": content_type}
    resp = await client.post("/v1/admin/reset", data=b"{}", headers=headers)
    await error_of(resp, 415, "unsupported_media_type", None)
    await still_serves(client)


async def test_a_form_body_with_json_fields_is_still_415(client):
    resp = await client.post("/v1/route", data={"prompt": "hi"})  # a real form post
    await error_of(resp, 415, "unsupported_media_type", None)


async def test_a_body_on_a_get_is_ignored(client):
    resp = await client.get("/v1/arms", data=b"\xff not json", headers={"Content-Type":
                                                                        "text/plain"})
    assert resp.status == 200


# --- chunked, cut-short and empty bodies ----------------------------------------------------

async def test_a_chunked_json_body_in_tiny_chunks_is_read(client):
    body = orjson.dumps({"prompt": "refactor this python function", "explain": True})

    async def one_byte_at_a_time():
        for i in range(len(body)):
            yield body[i:i + 1]

    status, answer = await post_raw(client, "/v1/route", one_byte_at_a_time())
    assert status == 200 and answer["explanation"], answer
    d = answer
    feedback = orjson.dumps({"route_id": d["route_id"], "quality": 0.9})

    async def two_chunks():
        yield feedback[:10]
        yield feedback[10:]

    status, answer = await post_raw(client, "/v1/feedback", two_chunks())
    assert status == 200, answer


async def test_a_raw_chunked_request_is_read(client):
    body = b'{"prompt": "hi"}'
    request = request_head("/v1/route", "Content-Type: application/json",
                           "Transfer-Encoding: chunked", "Connection: close")
    request += b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:5], body[5:]))
    request += b"0\r\n\r\n"
    status, _, answer = await raw_http(client, request)
    assert status == 200 and orjson.loads(answer)["model"]


@pytest.fixture
async def served(app_config, clock):
    """The app served with aiohttp's defaults (as `web.run_app(create_app(...))` serves it):
    unlike in aiohttp's TestServer (or `bandit-router serve`, which turns handler
    cancellation on), a handler is not cancelled when its client hangs up mid-body, so it
    meets the broken connection while reading."""
    runner = web.AppRunner(create_app(app_config, clock=clock), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner.addresses[0][:2]
    await runner.cleanup()


@pytest.mark.parametrize("cut", [
    pytest.param(("Transfer-Encoding: chunked", b'10\r\n{"prompt"\r\n0\r\n\r\n'),
                 id="chunked-then-eof"),
    pytest.param(("Transfer-Encoding: chunked", b'20\r\n{"prompt": '), id="mid-chunk"),
    pytest.param(("Content-Length: 100", b'{"prompt": '), id="short-of-content-length"),
])
async def test_a_client_that_hangs_up_mid_body_is_no_internal_error(served, cut):
    """Was an "internal_error" with a traceback in the log for every upload cut short."""
    header, body = cut
    with capture_logs() as events:
        reader, writer = await asyncio.open_connection(*served)
        writer.write(request_head("/v1/route", "Content-Type: application/json", header) + body)
        await writer.drain()
        writer.write_eof()
        await asyncio.wait_for(reader.read(), 5)  # the server ends the connection
        writer.close()
        status, _, health = await raw_http(served, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200 and orjson.loads(health)["status"] == "ok"
    assert not [e for e in events if e["event"] == "internal_error"], events


@pytest.mark.parametrize(("headers", "body"), [
    pytest.param(("Transfer-Encoding: chunked",), b"ZZ\r\nabc\r\n0\r\n\r\n", id="bad-chunk-size"),
    pytest.param(("Transfer-Encoding: chunked", "Content-Length: 5"), b"0\r\n\r\n",
                 id="chunked-and-content-length"),
    pytest.param(("Content-Length: -1",), b"{}", id="negative-content-length"),
    pytest.param(("Content-Length: 99999999999999999999999",), b"{}", id="overflowing-length"),
])
async def test_broken_http_framing_is_400_and_the_server_keeps_serving(client, headers, body):
    """Refused by aiohttp's HTTP parser before the app sees a request, so this 400 is
    aiohttp's plain-text one (it closes the connection); the app is not involved."""
    status, _, _ = await raw_http(client, request_head(
        "/v1/route", "Content-Type: application/json", *headers) + body)
    assert status == 400
    await still_serves(client)


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize("body", [b"", b"   \r\n\t ", b"\x00"], ids=["empty", "blank", "nul"])
async def test_empty_and_blank_bodies_are_400(client, path, body):
    status, answer = await post_raw(client, path, body)
    assert_error(status, answer, 400, "invalid_json", None)
    await still_serves(client)


async def test_an_empty_body_without_a_content_type_is_415(client):
    for path in POSTS:
        status, _, body = await raw_http(client, request_head(path, "Content-Length: 0"))
        assert status == 415 and orjson.loads(body)["error"]["code"] == "unsupported_media_type"
    await still_serves(client)


# --- content parts are bounded before they are examined (issue 16, item 3) ----------------

async def test_a_body_of_tens_of_thousands_of_parts_is_refused_naming_the_message(client,
                                                                                   config):
    """Each part cost event-loop time: 35,000 in a megabyte took ~30 ms per request."""
    parts = [{"type": "text", "text": "w"} for _ in range(35_000)]
    status, answer = await post_raw(client, "/v1/route", orjson.dumps(
        {"messages": [{"role": "user", "content": parts}]}))
    assert_error(status, answer, 400, "invalid_field", "messages[0].content")
    assert "server.max_content_parts" in answer["error"]["message"]
    # the limit counts the parts of all messages together
    limit = config.server.max_content_parts
    half = [{"type": "text", "text": "w"}] * (limit // 2 + 1)
    status, answer = await post_raw(client, "/v1/route", orjson.dumps(
        {"messages": [{"role": "user", "content": half}, {"role": "user", "content": half}]}))
    assert_error(status, answer, 400, "invalid_field", "messages[1].content")
    d = await route(client, messages=[{"role": "user", "content": half[:-1]},
                                      {"role": "user", "content": half[:-1]}])
    assert d["model"]


async def test_the_fast_path_for_text_parts_keeps_every_check(client):
    for part, field in [({"type": "text", "text": 7}, "messages[0].content[1].text"),
                        ({"type": "text"}, "messages[0].content[1].text"),
                        ("text", "messages[0].content[1]"),
                        ({"type": 3}, "messages[0].content[1].type")]:
        content = [{"type": "text", "text": "ok"}, part]
        status, answer = await post_raw(client, "/v1/route", orjson.dumps(
            {"messages": [{"role": "user", "content": content}]}))
        assert status == 400 and answer["error"]["field"] == field, (part, answer)
    d = await route(client, messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "hi"}]}])
    assert d["model"]
