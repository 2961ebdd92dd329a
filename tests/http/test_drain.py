"""SIGTERM while answers are being streamed: the server stops accepting, lets the streams
run for `server.shutdown_drain_s`, then ends each cleanly (an error event and the end of
its chunked body), commits everything it acknowledged and exits 0, instead of living on
until the last client leaves."""

from __future__ import annotations

import asyncio
import signal
import sqlite3

import aiohttp

from tests.gateways import Gateway, gateway_config

MESSAGES = [{"role": "user", "content": "Write me a very long story."}]
STREAMS = 3


async def _open_stream(s: aiohttp.ClientSession, url: str) -> aiohttp.ClientResponse:
    r = await s.post(f"{url}/v1/chat/completions",
                     json={"model": "auto", "messages": MESSAGES, "stream": True})
    assert r.status == 200
    assert (await r.content.readline()).startswith(b"data: {")  # it is streaming
    return r


async def test_sigterm_ends_open_streams_cleanly_and_exits_0(upstream, tmp_path):
    text = gateway_config(upstream, {"forever-model": ("up-forever", 0.1)},
                          shutdown_drain_s="1.0", timeout_s="10.0")
    gateway = Gateway(tmp_path, text)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{gateway.url}/v1/route", json={"prompt": "hi"}) as r:
                route_id = (await r.json())["route_id"]
            async with s.post(f"{gateway.url}/v1/feedback",
                              json={"route_id": route_id, "quality": 0.75}) as r:
                assert r.status == 200  # acknowledged: must survive the shutdown
            streams = [await _open_stream(s, gateway.url) for _ in range(STREAMS)]
            gateway.proc.send_signal(signal.SIGTERM)
            # each stream ends by itself: read() completes without a payload error
            bodies = await asyncio.wait_for(asyncio.gather(*(r.read() for r in streams)), 60)
        code = gateway.proc.wait(timeout=60)
    finally:
        if gateway.proc.poll() is None:
            gateway.proc.kill()
    assert code == 0, gateway.log.read_text()[-2000:]
    for body in bodies:
        last = [line for line in body.split(b"\n") if line.startswith(b"data:")][-1]
        assert last.startswith(b'data: {"error":') and b"shutting down" in last
    with sqlite3.connect(gateway.db) as db:
        assert db.execute("SELECT value FROM feedback_facts WHERE route_id = ? AND "
                          "fact = 'quality'", [route_id]).fetchall() == [(0.75,)]
    log = gateway.log.read_text()
    assert '"event":"stopping"' in log and f'"open_streams":{STREAMS}' in log
    assert "Traceback" not in log
