"""What the load runs send and how: realistic prompts, valid route_ids signed with a running
router's key, feedback and chat bodies, and the wrk driver (one thread, a Lua script that
cycles through a file of bodies and reports percentiles as one JSON line)."""

from __future__ import annotations

import json
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bandit_router.bench.launch import Process, pinned
from bandit_router.config import load as load_config
from bandit_router.core.route_id import RouteIds
from bandit_router.core.types import RouteTicket
from bandit_router.storage.store import connect

LUA = r"""
local bodies = {}
local path_ = "/"
local i = 0
ok = 0
other = 0
local threads = {}

function setup(thread) table.insert(threads, thread) end

function init(args)
  path_ = args[1]
  for line in io.lines(args[2]) do bodies[#bodies + 1] = line end
end

function request()
  i = i + 1
  if i > #bodies then i = 1 end
  return wrk.format("POST", path_, {["Content-Type"] = "application/json"}, bodies[i])
end

function response(status, headers, body)
  if status == 200 then ok = ok + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local acked, refused = 0, 0
  for _, t in ipairs(threads) do acked = acked + t:get("ok"); refused = refused + t:get("other") end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "socket_errors": %d, "ok": %d, "not_ok": %d, ' ..
    '"p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, acked,
    refused, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean))
end
"""

KINDS = {
    "code": "Here is a function from our billing service. Find the bug and fix it, "
            "explaining the change.\n```python\ndef total(items):\n    return sum(i.price for "
            "i in items) * 1.2\n```\n",
    "chat": "Hi! Could you suggest a friendly subject line for our team newsletter? ",
    "summarize": "Summarize the key points of the following support thread for the "
                 "on-call engineer. ",
    "math": "Solve for x and show the steps: 3x^2 - 12x + 9 = 0. Then compute the "
            "derivative. ",
    "classify": "Classify the sentiment of this review as positive, negative or neutral. ",
}
FILLER = ("The customer reported that the dashboard loads slowly after the last release; "
          "logs show retries against the pricing service and a cache miss rate near 40%. ")


def prompts(n: int, seed: int) -> list[str]:
    """Realistic prompts: a task instruction plus pasted material, 50 to 8,000 characters
    long, lengths spread log-uniformly."""
    rng = np.random.default_rng(seed)
    kinds = list(KINDS)
    out = []
    for i in range(n):
        length = int(np.exp(rng.uniform(np.log(50), np.log(8000))))
        head = KINDS[kinds[i % len(kinds)]]
        text = head + FILLER * (length // len(FILLER) + 1)
        out.append(text[:max(length, 50)])
    return out


def drive(server: Process, path: str, bodies: Path, script: Path, connections: int,
          settings: Any) -> dict:
    """wrk against `server` for settings.duration_s, pinned to CPU 1 when settings.pin."""
    seconds = max(1, round(settings.duration_s))  # wrk takes whole seconds
    cmd = pinned(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
                  "--timeout", "10s", "-s", str(script), server.url, "--", path, str(bodies)],
                 1, settings.pin)
    cpu_before = server.cpu_seconds()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = server.cpu_seconds() - cpu_before
    line = next(x for x in proc.stdout.splitlines() if x.startswith("{"))
    r = json.loads(line)
    seconds = r["duration_us"] / 1e6
    r.update(throughput=r["ok"] / seconds, server_cpu_us_per_request=1e6 * cpu / max(r["ok"], 1),
             server_cpu_share=cpu / seconds,
             generator_cpu_share=((after.ru_utime - children.ru_utime)
                                  + (after.ru_stime - children.ru_stime)) / seconds)
    return r


def write_lines(path: Path, bodies: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(bodies) + b"\n")
    return path


def route_key(store_url: str) -> bytes:
    """The router's route_id key, from its store (a SQLite file or a PostgreSQL URL)."""
    db = connect(store_url)
    try:
        return bytes(db.execute("SELECT value FROM meta WHERE key = 'route_key'").fetchone()[0])
    finally:
        db.conn.close()


def mint_route_ids(store_url: Path | str, n: int, config_path: str | None,
                   seed: int) -> list[str]:
    """Valid route_ids for `n` decisions, signed with the router's key from its store."""
    ids = RouteIds(route_key(str(store_url)))
    config = load_config(config_path)
    policy = config.routing.default_policy
    buckets, models = config.buckets.names, [m.name for m in config.models]
    now = time.time()
    return [ids.issue(RouteTicket(policy, buckets[i % len(buckets)], models[i % len(models)],
                                  now, 100, f"{seed:04x}{i:08x}")) for i in range(n)]


def feedback_bodies(route_ids: list[str], seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [orjson.dumps({"route_id": r, "quality": round(float(rng.random()), 3),
                          "latency_ms": round(float(rng.uniform(300, 9000)), 1),
                          "input_tokens": int(rng.integers(20, 2000)),
                          "output_tokens": int(rng.integers(10, 800))}) for r in route_ids]


def chat_bodies(texts: list[str], model: str) -> list[bytes]:
    return [orjson.dumps({"model": model, "max_tokens": 256,
                          "messages": [{"role": "user", "content": t}]}) for t in texts]
