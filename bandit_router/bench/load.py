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

import os
import re
import shutil
import sqlite3
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import orjson

from bandit_router.bench import scaleout
from bandit_router.bench.launch import Process, free_port, pinned
from bandit_router.bench.traffic import (
    LUA,
    chat_bodies,
    drive,
    feedback_bodies,
    mint_route_ids,
    prompts,
    write_lines,
)
from bandit_router.config import load as load_config


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


def gateway_config(config_path: str | None, upstream_url: str) -> str:
    """The router config with every catalog model forwarded to `upstream_url`."""
    text = Path(config_path or Path(__file__).parents[2] / "config.toml").read_text()
    line = f'upstream = {{ base_url = "{upstream_url}/v1" }}\n'
    return re.sub(r"(?m)^\[\[models\]\]\n", lambda m: m.group(0) + line, text)


def _server(name: str, args: list[str], cpu: int, work: Path, pin: bool) -> Process:
    port = free_port()
    return Process(name, pinned([sys.executable, "-m", *args, "--port", str(port)], cpu, pin),
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
    bodies = {"direct": write_lines(work / "chat-direct.jsonl", chat_bodies(texts, first_model)),
              "gateway": write_lines(work / "chat-auto.jsonl", chat_bodies(texts, "auto"))}
    rows: dict = {}
    try:
        for c in settings.concurrencies:
            rows[str(c)] = _compared(
                drive(upstream, "/v1/chat/completions", bodies["direct"], script, c, settings),
                drive(gateway, "/v1/chat/completions", bodies["gateway"], script, c, settings),
                f"gateway c={c}", progress)
        code = gateway.stop()
        workers = _gateway_workers(settings, work, script, upstream, config, bodies, progress)
    finally:
        upstream.stop()
        gateway.stop()
    with sqlite3.connect(db) as conn:
        learned = conn.execute("SELECT count(*) FROM feedback").fetchone()[0]
    return {"by_connections": rows, "workers": workers, "exit_code": code, "answered": sum(
        r["gateway"]["ok"] for r in rows.values()), "automatic_feedback_committed": learned}


def _gateway_workers(settings: LoadSettings, work: Path, script: Path, upstream: Process,
                     config: Path, bodies: dict, progress, workers: int = 2,
                     connections: int = 32) -> dict:
    """The gateway with `workers` processes at `connections`, against the same upstream
    measured directly in the same cell. Nothing pinned: the workers need both cores, which
    the upstream and wrk then share (on a 2-core machine, what the machine allows)."""
    unpinned = replace(settings, pin=False)
    direct = drive(upstream, "/v1/chat/completions", bodies["direct"], script, connections,
                   unpinned)
    server = _server(f"gateway-{workers}w", ["bandit_router", "serve", "--config",
                                             str(config), "--db",
                                             str(work / f"gateway-{workers}w.db"),
                                             "--workers", str(workers)], 0, work, False)
    try:
        routed = drive(server, "/v1/chat/completions", bodies["gateway"], script,
                       connections, unpinned)
    finally:
        server.stop()
    return {"workers": workers, "connections": connections,
            **_compared(direct, routed, f"gateway {workers} workers c={connections}", progress)}


def _compared(direct: dict, gateway: dict, label: str, progress) -> dict:
    """A gateway cell beside the direct one: what the gateway adds at p50 and p99."""
    row = {"direct": direct, "gateway": gateway,
           "added_p50_ms": (gateway["p50_us"] - direct["p50_us"]) / 1000,
           "added_p99_ms": (gateway["p99_us"] - direct["p99_us"]) / 1000,
           "throughput_ratio": gateway["throughput"] / direct["throughput"]}
    progress(f"{label}: {gateway['throughput']:.0f} req/s (direct "
             f"{direct['throughput']:.0f}); added p50 {row['added_p50_ms']:.2f} ms, p99 "
             f"{row['added_p99_ms']:.2f} ms")
    return row


def run(settings: LoadSettings, work: Path | None = None, progress=print) -> dict:
    if not shutil.which("wrk"):
        raise RuntimeError("wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
    work = Path(work or tempfile.mkdtemp(prefix="bandit-router-load-"))
    work.mkdir(parents=True, exist_ok=True)
    script = work / "load.lua"
    script.write_text(LUA)
    route_bodies = write_lines(work / "route.jsonl", [
        orjson.dumps({"prompt": p}) for p in prompts(settings.prompts, settings.seed)])
    db = work / "router.db"
    config_args = ["--config", settings.config] if settings.config else []
    router = Process("router", pinned([sys.executable, "-m", "bandit_router", "serve",
                                       *config_args, "--db", str(db), "--port",
                                       str(port := free_port())], 0, settings.pin), port,
                    work / "router.log")
    baseline = Process("baseline", pinned([sys.executable, "-m",
                                           "bandit_router.bench.baseline_server", "--port",
                                           str(bport := free_port())], 0, settings.pin),
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
                        bodies = write_lines(work / f"feedback-{server.name}-{c}.jsonl",
                                              feedback_bodies(ids, c))
                    row[server.name] = drive(server, path, bodies, script, c, settings)
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
        lines += ["", *scaleout.markdown(results["scaleout"])]
    if "micro" in results:
        lines += ["", "## In-process microbenchmark (µs)", "",
                  "| what | p50 | p99 |", "|---|---:|---:|"]
        for group, rows in results["micro"].items():
            for name, r in rows.items():
                lines.append(f"| {group}: {name} | {r['p50_us']:.1f} | {r['p99_us']:.1f} |")
    return "\n".join([*lines, "", "![latency](latency.png)", ""])


def _gateway_row(label: str, row: dict) -> str:
    d, w = row["direct"], row["gateway"]
    return (f"| {label} | {d['throughput']:.0f} | {w['throughput']:.0f} | "
            f"{row['throughput_ratio']:.0%} | {_ms(d['p50_us'])} | {_ms(w['p50_us'])} | "
            f"**{row['added_p50_ms']:.2f}** | {_ms(d['p99_us'])} | {_ms(w['p99_us'])} | "
            f"**{row['added_p99_ms']:.2f}** |")


def _gateway_markdown(g: dict) -> list[str]:
    lines = ["## POST /v1/chat/completions: what the gateway adds", "",
             "The same chat requests sent straight to a fast local OpenAI-compatible upstream "
             "(direct) and through the gateway with `model: \"auto\"` (route, forward over "
             "the pooled session, learn from the answer). Added latency = gateway − direct at "
             "the same percentile.", "",
             "| connections | direct req/s | gateway req/s | gateway / direct | direct p50 ms "
             "| gateway p50 ms | **added p50 ms** | direct p99 ms | gateway p99 ms | "
             "**added p99 ms** |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [_gateway_row(c, row) for c, row in g["by_connections"].items()]
    w = g.get("workers")
    if w:  # older results have no worker row
        lines.append(_gateway_row(f"{w['connections']}, {w['workers']} workers, unpinned", w))
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
    from bandit_router.bench import style  # matplotlib: only when a plot is written

    style.write_run(results, folder, markdown, plot)
