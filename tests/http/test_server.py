"""Slow, many and hostile peers against the real `bandit-router serve` process: header and
body deadlines, the connection cap and its refusal, accept errors that do not flood the
log, and a busy port that is one line and exit 2."""

from __future__ import annotations

import asyncio
import resource
import socket
import subprocess
from pathlib import Path

import aiohttp
import orjson
import pytest

from bandit_router.bench.launch import Service, command, free_port, wait_healthy
from tests.gateways import ROOT, set_key
from tests.waiting import eventually

HEAD = b"POST /v1/route HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


def _config(tmp_path: Path, **server: str) -> Path:
    text = (ROOT / "config.toml").read_text()
    for key, value in server.items():
        text = set_key(text, key, value)
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """What the server sent before it closed the connection (b"" when nothing)."""
    return await asyncio.wait_for(reader.read(), 60)


async def _route(url: str) -> int:
    async with aiohttp.ClientSession() as s, s.post(f"{url}/v1/route",
                                                     json={"prompt": "hi"}) as r:
        return r.status


@pytest.fixture
async def service(tmp_path):
    services: list[Service] = []

    async def start(**server: str) -> Service:
        svc = Service(_config(tmp_path, **server), tmp_path / f"s{len(services)}.db")
        services.append(svc)
        await svc.start()
        return svc

    yield start
    for svc in services:
        if svc.running:
            assert svc.stop() == 0
        assert "Traceback" not in svc.log.read_text()


async def _trickle(writers: list[asyncio.StreamWriter], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for w in writers:
            if not w.is_closing():
                w.write(b"X-Slow: 1\r\n")
        await asyncio.sleep(0.1)


async def test_peers_trickling_headers_are_cut_off_while_others_are_served(service):
    svc = await service(header_timeout_s="1.0")
    slow = [await _connect(svc.port) for _ in range(50)]
    for _, w in slow:
        w.write(HEAD)
    stop = asyncio.Event()

    async def honest_then_slow_closed() -> None:
        try:
            assert [await _route(svc.url) for _ in range(20)] == [200] * 20
            # every slow peer is closed by the server (no answer: no request came)
            closed = await asyncio.gather(*(_closed_by_server(r) for r, _ in slow))
            assert closed == [b""] * 50
        finally:
            stop.set()
    await asyncio.gather(honest_then_slow_closed(), _trickle([w for _, w in slow], stop))
    for _, w in slow:
        w.close()
    assert await _route(svc.url) == 200


async def test_a_body_that_does_not_arrive_in_time_is_a_408(service):
    svc = await service(body_timeout_s="1.0")
    reader, writer = await _connect(svc.port)
    writer.write(HEAD + b"Content-Length: 100\r\n\r\n" + b'{"prompt": ')
    answer = await _closed_by_server(reader)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert orjson.loads(body)["error"]["code"] == "request_timeout"
    writer.close()
    assert await _route(svc.url) == 200


async def test_past_the_connection_cap_a_new_connection_gets_a_clear_503(service):
    svc = await service(max_connections="8", header_timeout_s="60.0")
    held = []
    for _ in range(8):  # admitted and kept alive: each has had an answer
        reader, writer = await _connect(svc.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        held.append((reader, writer))
    reader, writer = await _connect(svc.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = (await _closed_by_server(reader)).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in head
    error = orjson.loads(body)["error"]
    assert error["code"] == "too_many_connections" and "server.max_connections" in \
        error["message"]
    writer.close()
    for _, w in held[:2]:
        w.close()

    async def served() -> bool:
        try:
            return await _route(svc.url) == 200
        except aiohttp.ClientError:
            return False
    await eventually(served, "a connection admitted once two were closed")
    for _, w in held[2:]:
        w.close()

    async def logged() -> bool:  # the log thread writes every 50 ms
        return '"event":"connection_refused"' in svc.log.read_text()
    await eventually(logged, "the refusal logged")


def _low_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


async def test_out_of_file_descriptors_is_a_few_log_lines_not_a_flood(tmp_path):
    """Past the open-file limit, asyncio's accept fails in a loop; with its default handler
    each failure printed a traceback (365 MB of them in 90 s in a review)."""
    port, log = free_port(), tmp_path / "serve.log"
    config = _config(tmp_path, port=str(port))
    with log.open("wb") as out:
        proc = subprocess.Popen([*command(), "serve", "--config", str(config), "--db",
                                 str(tmp_path / "s.db")], stdout=out,
                                stderr=subprocess.STDOUT, preexec_fn=_low_file_limit)
    url, flood = f"http://127.0.0.1:{port}", []
    try:
        await wait_healthy(url, proc, log)
        for _ in range(150):  # far past 64 descriptors; the kernel queues them
            flood.append(socket.create_connection(("127.0.0.1", port)))

        async def refused_accepts_logged() -> bool:
            return '"event":"accept_failed"' in log.read_text()
        await eventually(refused_accepts_logged, "the accept errors logged")
        while flood:
            flood.pop().close()

        async def serves() -> bool:
            try:
                return await _route(url) == 200
            except aiohttp.ClientError:
                return False
        await eventually(serves, "serving again once the flood left")
    finally:
        for sock in flood:
            sock.close()
        proc.terminate()
        assert proc.wait(timeout=60) == 0
    text = log.read_text()
    assert '"event":"file_limit_low"' in text  # said at start, naming the setting
    assert "Traceback" not in text and "out of system resource" not in text
    assert text.count('"event":"accept_failed"') <= 3  # at most one per 10 s


def test_a_busy_port_is_one_line_and_exit_2(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([*command(), "serve", "--port", str(port), "--db",
                               str(tmp_path / "s.db")], capture_output=True, text=True,
                              timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"bandit-router: error: config key 'server.port': cannot listen on "
        f"127.0.0.1:{port}: address already in use (or --port)"]
    assert "started" not in done.stdout  # nothing was started, nothing to stop
