"""Load benchmark: the real service against a bare aiohttp baseline, driven by wrk.

Both servers run as separate processes pinned to CPU 0; wrk (one thread) is pinned to CPU 1,
so the generator never competes with the server it measures, and its own CPU use is
reported. For each endpoint and concurrency, the baseline and then the router get the same
keep-alive load for the same time, with the same request bodies (prompts of 50 to 8,000
characters). Feedback goes to route_ids minted with the router's own key (read from its
database), one fresh route_id per message, so every message is a new fact that must be
committed before it is acknowledged; afterwards the database must hold at least every
acknowledged feedback.

The gateway run measures what `POST /v1/chat/completions` adds to a provider call: wrk sends
the same chat requests once straight to a fast local OpenAI-compatible upstream and once to
a second router process whose models all forward to that upstream (`model: "auto"`). The
upstream and wrk share CPU 1 in both runs; the gateway alone has CPU 0.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import orjson

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


@dataclass(frozen=True)
class LoadSettings:
    concurrencies: tuple[int, ...] = (1, 8, 32, 128)
    duration_s: float = 5.0
    prompts: int = 200
    config: str | None = None
    pin: bool = True
    seed: int = 0
    gateway: bool = True
    scaleout: bool = True
    postgres: str | None = "postgresql://postgres@127.0.0.1:5432/postgres"  # None: skip it
    staleness_samples: int = 40


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pinned(cmd: list[str], cpu: int, pin: bool) -> list[str]:
    if pin and shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu), *cmd]
    return cmd


class Server:
    def __init__(self, name: str, cmd: list[str], port: int, log: Path) -> None:
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        self._wait_healthy(log)

    def _wait_healthy(self, log: Path) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def _wrk(server: Server, path: str, bodies: Path, script: Path, connections: int,
         settings: LoadSettings) -> dict:
    seconds = max(1, round(settings.duration_s))  # wrk takes whole seconds
    cmd = _pinned(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
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


def _write_lines(path: Path, bodies: list[bytes]) -> Path:
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


def _feedback_bodies(route_ids: list[str], seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [orjson.dumps({"route_id": r, "quality": round(float(rng.random()), 3),
                          "latency_ms": round(float(rng.uniform(300, 9000)), 1),
                          "input_tokens": int(rng.integers(20, 2000)),
                          "output_tokens": int(rng.integers(10, 800))}) for r in route_ids]


def gateway_config(config_path: str | None, upstream_url: str) -> str:
    """The router config with every catalog model forwarded to `upstream_url`."""
    text = Path(config_path or Path(__file__).parents[2] / "config.toml").read_text()
    line = f'upstream = {{ base_url = "{upstream_url}/v1" }}\n'
    return re.sub(r"(?m)^\[\[models\]\]\n", lambda m: m.group(0) + line, text)


def _chat_bodies(texts: list[str], model: str) -> list[bytes]:
    return [orjson.dumps({"model": model, "max_tokens": 256,
                          "messages": [{"role": "user", "content": t}]}) for t in texts]


def _server(name: str, args: list[str], cpu: int, work: Path, pin: bool) -> Server:
    port = _free_port()
    return Server(name, _pinned([sys.executable, "-m", *args, "--port", str(port)], cpu, pin),
                  port, work / f"{name}.log")


def run_gateway(settings: LoadSettings, work: Path, script: Path, progress=print) -> dict:
    """wrk → upstream directly, then wrk → gateway (`auto`) → the same upstream."""
    upstream = _server("upstream", ["bandit_router.bench.baseline_server"], 1, work,
                       settings.pin)
    config = work / "gateway.toml"
    config.write_text(gateway_config(settings.config, upstream.url))
    db = work / "gateway.db"
    gateway = _server("gateway", ["bandit_router", "serve", "--config", str(config),
                                  "--db", str(db)], 0, work, settings.pin)
    texts = prompts(settings.prompts, settings.seed)
    first_model = load_config(str(config)).models[0].name
    bodies = {"direct": _write_lines(work / "chat-direct.jsonl", _chat_bodies(texts, first_model)),
              "gateway": _write_lines(work / "chat-auto.jsonl", _chat_bodies(texts, "auto"))}
    rows: dict = {}
    try:
        for c in settings.concurrencies:
            row = {name: _wrk(server, "/v1/chat/completions", bodies[name], script, c, settings)
                   for name, server in (("direct", upstream), ("gateway", gateway))}
            row.update(added_p50_ms=(row["gateway"]["p50_us"] - row["direct"]["p50_us"]) / 1000,
                       added_p99_ms=(row["gateway"]["p99_us"] - row["direct"]["p99_us"]) / 1000,
                       throughput_ratio=row["gateway"]["throughput"]
                       / row["direct"]["throughput"])
            rows[str(c)] = row
            progress(f"gateway c={c}: {row['gateway']['throughput']:.0f} req/s "
                     f"(direct {row['direct']['throughput']:.0f}); added p50 "
                     f"{row['added_p50_ms']:.2f} ms, p99 {row['added_p99_ms']:.2f} ms")
    finally:
        upstream.stop()
        code = gateway.stop()
    with sqlite3.connect(db) as conn:
        learned = conn.execute("SELECT count(*) FROM feedback").fetchone()[0]
    return {"by_connections": rows, "exit_code": code, "answered": sum(
        r["gateway"]["ok"] for r in rows.values()), "automatic_feedback_committed": learned}


def run(settings: LoadSettings, work: Path | None = None, progress=print) -> dict:
    if not shutil.which("wrk"):
        raise RuntimeError("wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
    work = Path(work or tempfile.mkdtemp(prefix="bandit-router-load-"))
    work.mkdir(parents=True, exist_ok=True)
    script = work / "load.lua"
    script.write_text(LUA)
    route_bodies = _write_lines(work / "route.jsonl", [
        orjson.dumps({"prompt": p}) for p in prompts(settings.prompts, settings.seed)])
    db = work / "router.db"
    config_args = ["--config", settings.config] if settings.config else []
    router = Server("router", _pinned([sys.executable, "-m", "bandit_router", "serve",
                                       *config_args, "--db", str(db), "--port",
                                       str(port := _free_port())], 0, settings.pin), port,
                    work / "router.log")
    baseline = Server("baseline", _pinned([sys.executable, "-m",
                                           "bandit_router.bench.baseline_server", "--port",
                                           str(bport := _free_port())], 0, settings.pin),
                      bport, work / "baseline.log")
    memory = {"router_rss_mb_start": router.rss_mb(), "baseline_rss_mb_start": baseline.rss_mb()}
    per_run = int(settings.duration_s * 15_000) + 1000  # more fresh feedback than can be sent
    results: dict = {"route": {}, "feedback": {}}
    acked = 0
    try:
        for endpoint, path in (("route", "/v1/route"), ("feedback", "/v1/feedback")):
            for c in settings.concurrencies:
                row = {}
                for server in (baseline, router):
                    bodies = route_bodies
                    if endpoint == "feedback":
                        ids = mint_route_ids(db, per_run, settings.config, settings.seed + c)
                        bodies = _write_lines(work / f"feedback-{server.name}-{c}.jsonl",
                                              _feedback_bodies(ids, c))
                    row[server.name] = _wrk(server, path, bodies, script, c, settings)
                    if endpoint == "feedback" and server is router:
                        acked += row["router"]["ok"]
                    progress(f"{endpoint} c={c} {server.name}: "
                             f"{row[server.name]['throughput']:.0f} req/s, "
                             f"p99 {row[server.name]['p99_us'] / 1000:.2f} ms")
                row["throughput_ratio"] = (row["router"]["throughput"]
                                           / row["baseline"]["throughput"])
                results[endpoint][str(c)] = row
        memory.update(router_rss_mb_end=router.rss_mb(), baseline_rss_mb_end=baseline.rss_mb())
    finally:
        baseline.stop()
        code = router.stop()
    with sqlite3.connect(db) as conn:
        committed = conn.execute("SELECT count(*) FROM feedback").fetchone()[0]
    results.update(
        memory=memory, router_exit_code=code,
        durability={"acknowledged": acked, "committed": committed,
                    "acknowledged_all_committed": committed >= acked,
                    "in_flight_at_stop_bound": sum(settings.concurrencies)},
        settings=asdict(settings), machine={"cpus": os.cpu_count(), "pinned": settings.pin},
        generator="wrk 4 (one thread, Lua script), pinned to CPU 1; servers pinned to CPU 0")
    if settings.gateway:
        results["gateway"] = run_gateway(settings, work, script, progress)
    if settings.scaleout:
        from bandit_router.bench import scaleout

        results["scaleout"] = scaleout.run(settings, work, script, settings.postgres, progress)
    return results


# --- the report --------------------------------------------------------------------------

def _ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def markdown(results: dict) -> str:
    lines = ["# Load benchmark: router vs a bare aiohttp app", "",
             f"{results['generator']}; {results['settings']['duration_s']:g} s per cell; "
             "prompts of 50 to 8,000 characters. Router: `bandit-router serve` with the "
             "bundled config and a real SQLite file (feedback acknowledged after commit, "
             "`synchronous = full`).", ""]
    for endpoint in ("route", "feedback"):
        lines += [f"## POST /v1/{endpoint}", "",
                  "| connections | baseline req/s | router req/s | router / baseline | "
                  "router p50 ms | p95 ms | p99 ms | max ms | baseline p99 ms | "
                  "router CPU µs/req | wrk CPU |", "|---:|---:|---:|---:|---:|---:|---:|"
                  "---:|---:|---:|---:|"]
        for c, row in results[endpoint].items():
            r, b = row["router"], row["baseline"]
            lines.append(
                f"| {c} | {b['throughput']:.0f} | {r['throughput']:.0f} | "
                f"{row['throughput_ratio']:.0%} | {_ms(r['p50_us'])} | {_ms(r['p95_us'])} | "
                f"{_ms(r['p99_us'])} | {_ms(r['max_us'])} | {_ms(b['p99_us'])} | "
                f"{r['server_cpu_us_per_request']:.0f} | {r['generator_cpu_share']:.0%} |")
        lines.append("")
    d, m = results["durability"], results["memory"]
    lines += ["## Durability and memory", "",
              f"- Feedback acknowledged by the router: {d['acknowledged']}; in the database "
              f"after shutdown: {d['committed']} (at most {d['in_flight_at_stop_bound']} more, "
              "in flight when wrk stopped). Every acknowledged feedback committed: "
              f"**{d['acknowledged_all_committed']}**.",
              f"- Router resident memory: {m['router_rss_mb_start']:.1f} MB at start, "
              f"{m['router_rss_mb_end']:.1f} MB at the end (baseline "
              f"{m['baseline_rss_mb_start']:.1f} → {m['baseline_rss_mb_end']:.1f} MB)."]
    if "long_run" in results:
        lr = results["long_run"]
        lines.append(f"- {lr['decisions']:,} decisions in process (validate, decide, log, "
                     f"store): resident memory {lr['rss_mb_after_warmup']:.1f} → "
                     f"{lr['rss_mb_end']:.1f} MB (**{lr['rss_growth_mb']:+.1f} MB**); "
                     f"{lr['decisions_kept_in_db']:,} decisions left in the database with a "
                     f"{lr['ttl_s_simulated']:g} s time-to-live (the rest pruned). Resident "
                     "memory along the run (MB): " + ", ".join(
                         f"{n // 1000}k: {mb:.0f}" for n, mb in lr["rss_mb_samples"][1::2]))
    if "gateway" in results:
        lines += ["", *_gateway_markdown(results["gateway"])]
    if "scaleout" in results:
        from bandit_router.bench import scaleout

        lines += ["", *scaleout.markdown(results["scaleout"])]
    if "micro" in results:
        lines += ["", "## In-process microbenchmark (µs)", "",
                  "| what | p50 | p99 |", "|---|---:|---:|"]
        for group, rows in results["micro"].items():
            for name, r in rows.items():
                lines.append(f"| {group}: {name} | {r['p50_us']:.1f} | {r['p99_us']:.1f} |")
    return "\n".join([*lines, "", "![latency](latency.png)", ""])


def _gateway_markdown(g: dict) -> list[str]:
    lines = ["## POST /v1/chat/completions: what the gateway adds", "",
             "The same chat requests sent straight to a fast local OpenAI-compatible upstream "
             "(direct) and through the gateway with `model: \"auto\"` (route, forward over "
             "the pooled session, learn from the answer). Added latency = gateway − direct at "
             "the same percentile.", "",
             "| connections | direct req/s | gateway req/s | gateway / direct | direct p50 ms "
             "| gateway p50 ms | **added p50 ms** | direct p99 ms | gateway p99 ms | "
             "**added p99 ms** |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c, row in g["by_connections"].items():
        d, w = row["direct"], row["gateway"]
        lines.append(f"| {c} | {d['throughput']:.0f} | {w['throughput']:.0f} | "
                     f"{row['throughput_ratio']:.0%} | {_ms(d['p50_us'])} | {_ms(w['p50_us'])}"
                     f" | **{row['added_p50_ms']:.2f}** | {_ms(d['p99_us'])} | "
                     f"{_ms(w['p99_us'])} | **{row['added_p99_ms']:.2f}** |")
    return [*lines, "", f"- Calls answered through the gateway: {g['answered']:,}; automatic "
            f"feedback rows committed: {g['automatic_feedback_committed']:,}; gateway exit "
            f"code {g['exit_code']}."]


PERCENTILES = (("p50_us", "#0072B2", "median (p50)"), ("p95_us", "#E69F00", "p95"),
               ("p99_us", "#D55E00", "p99"))


def plot(results: dict, path: Path) -> None:
    """Latency against connections: one panel per endpoint, colour = percentile, solid =
    ours, dashed = the comparison; x ticked at the connection counts measured."""
    from matplotlib.lines import Line2D

    from bandit_router.bench import style

    panels = [("route", results["route"], ("router", "baseline")),
              ("feedback", results["feedback"], ("router", "baseline"))]
    if "gateway" in results:
        panels.append(("chat/completions", results["gateway"]["by_connections"],
                       ("gateway", "direct")))
    fig, axes = style.figure(1, len(panels), width=5.6 * len(panels), height=4.8)
    for ax, (endpoint, rows, names) in zip(axes, panels, strict=True):
        conns = [int(c) for c in rows]
        for name, dash in zip(names, ("-", "--"), strict=True):
            for pct, color, _ in PERCENTILES:
                ys = [rows[str(c)][name][pct] / 1000 for c in conns]
                ax.plot(conns, ys, dash, color=color, marker="o", ms=4)
        ax.set_xscale("log")
        ax.set_yscale("log")
        style.log_ticks(ax, conns, "x")
        style.plain_log(ax, "y")
        ax.set_xlabel("keep-alive connections (count)")
        ax.set_ylabel("latency (milliseconds, log scale)")
        ax.set_title(f"POST /v1/{endpoint}\nsolid: {names[0]}, dashed: {names[1]}")
        ax.legend([Line2D([], [], color=c, marker="o") for _, c, _ in PERCENTILES]
                  + [Line2D([], [], color="black", ls=d) for d in ("-", "--")],
                  [label for *_, label in PERCENTILES] + list(names), fontsize=9)
    style.save(fig, path)


def write(results: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=1))
    (folder / "results.md").write_text(markdown(results))
    plot(results, folder / "latency.png")
