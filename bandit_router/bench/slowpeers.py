"""Honest latency while hostile peers are connected: the real service, pinned to CPU 0,
serves wrk's honest `POST /v1/route` traffic (8 keep-alive connections) while an attacker
process on CPU 1 (beside wrk) holds, in turn:

- `slowloris`: N connections each trickling a header line every second, reconnecting
  whenever the server cuts one off (at `server.header_timeout_s`), so N stay open;
- `slow-body`: N connections with complete headers trickling their body a byte a second
  (cut off at `server.body_timeout_s` with a 408);
- `content-parts`: 4 senders posting, back to back, a 0.95 MB body of 35,000 text parts.

Each scenario's honest p50 and p99 are compared with a baseline measured in the same run
(no attacker). The attacker reports how many of its connections were open at once and what
the server did to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from bandit_router.bench import load
from bandit_router.bench.launch import Process, command, free_port, pinned
from bandit_router.bench.traffic import LUA, drive, prompts, write_lines

HEAD = (b"POST /v1/route HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n")
SCENARIOS = ("baseline", "slowloris", "slow-body", "content-parts")


@dataclass(frozen=True)
class SlowSettings:
    connections: int = 1000  # slow peers held open at once
    duration_s: float = 10.0  # wrk's honest run per scenario
    rounds: int = 2  # each scenario measured this many times, interleaved
    pin: bool = True


# --- the attacker (a process of its own) --------------------------------------------------

class _Tally:
    def __init__(self) -> None:
        self.open = self.peak = self.opened = self.cut = self.answers = self.failed = 0

    def opened_one(self) -> None:
        self.open += 1
        self.opened += 1
        self.peak = max(self.peak, self.open)


async def _slow_peer(port: int, kind: str, tally: _Tally, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            tally.failed += 1
            await asyncio.sleep(1.0)
            continue
        tally.opened_one()
        try:
            writer.write(HEAD + (b"Content-Length: 100000\r\n\r\n" if kind == "slow-body"
                                 else b""))
            while not stop.is_set():
                done = asyncio.ensure_future(reader.read(65536))
                await asyncio.wait([done], timeout=1.0)
                if done.done():
                    tally.answers += bool(done.result())
                    tally.cut += 1
                    break
                done.cancel()
                writer.write(b"X-Slow: 1\r\n" if kind == "slowloris" else b" ")
                await writer.drain()
        except (ConnectionError, OSError):
            tally.cut += 1
        finally:
            tally.open -= 1
            writer.close()


def _parts_body() -> bytes:
    parts = [{"type": "text", "text": "w"} for _ in range(35_000)]
    body = orjson.dumps({"messages": [{"role": "user", "content": parts}]})
    assert 0.9e6 < len(body) < 1_048_576, len(body)
    return body


async def _parts_sender(port: int, body: bytes, tally: _Tally, stop: asyncio.Event) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as s:
        while not stop.is_set():
            async with s.post(f"http://127.0.0.1:{port}/v1/route", data=body,
                              headers={"Content-Type": "application/json"}) as r:
                await r.read()
                tally.answers += 1
                tally.failed += r.status != 400


async def attack(kind: str, port: int, n: int) -> dict:
    """Until SIGTERM: prints "ready" once the attack is in place, then its tally as JSON."""
    tally, stop = _Tally(), asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    if kind == "content-parts":
        body = _parts_body()
        tasks = [asyncio.create_task(_parts_sender(port, body, tally, stop)) for _ in range(4)]
        while tally.answers < 4 and not stop.is_set():
            await asyncio.sleep(0.05)
    else:
        tasks = [asyncio.create_task(_slow_peer(port, kind, tally, stop)) for _ in range(n)]
        while tally.open < n and not stop.is_set():
            await asyncio.sleep(0.05)
    print("ready", flush=True)
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"peak_open": tally.peak, "opened": tally.opened, "cut_by_server": tally.cut,
            "answered": tally.answers, "failed": tally.failed}


# --- the benchmark --------------------------------------------------------------------------

def _attacker(kind: str, port: int, n: int, pin: bool) -> subprocess.Popen:
    cmd = pinned([sys.executable, "-m", "bandit_router.bench.slowpeers", kind,
                        str(port), str(n)], 1, pin)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError(f"the {kind} attacker did not start (exit {proc.poll()})")
    return proc


def _scenario(kind: str, server: Process, bodies: Path, script: Path,
              settings: SlowSettings) -> dict:
    attacker = None if kind == "baseline" else _attacker(kind, server.port,
                                                         settings.connections, settings.pin)
    try:
        honest = drive(server, "/v1/route", bodies, script, 8, load.LoadSettings(
            duration_s=settings.duration_s, pin=settings.pin))
    finally:
        tally = None
        if attacker is not None:
            attacker.send_signal(signal.SIGTERM)
            out, _ = attacker.communicate(timeout=60)
            tally = json.loads(out.strip().splitlines()[-1])
    return {"honest": honest, "attacker": tally}


def run(settings: SlowSettings, progress=print) -> dict:
    before = load_machine()
    with tempfile.TemporaryDirectory(prefix="bandit-router-slowpeers-") as tmp:
        work = Path(tmp)
        script = work / "bench.lua"
        script.write_text(LUA)
        bodies = write_lines(work / "route.jsonl", [
            orjson.dumps({"prompt": p}) for p in prompts(200, 0)])
        port = free_port()
        server = Process("router", pinned(
            [*_serve_command(), "--db", str(work / "router.db"), "--port", str(port)],
            0, settings.pin), port, work / "router.log")
        rows: dict[str, list[dict]] = {k: [] for k in SCENARIOS}
        try:
            for r in range(settings.rounds):
                for kind in SCENARIOS:
                    progress(f"slow peers: round {r + 1}/{settings.rounds}, {kind}")
                    rows[kind].append(_scenario(kind, server, bodies, script, settings))
        finally:
            exit_code = server.stop()
        log = (work / "router.log").read_text()
    return {"settings": settings.__dict__, "scenarios": rows, "exit_code": exit_code,
            "tracebacks_in_log": log.count("Traceback"), "machine": before,
            "load_average_after": load_machine()["load_average_1min"]}


def _serve_command() -> list[str]:
    return [*command(), "serve"]


def load_machine() -> dict:
    import os
    import platform

    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_average_1min": round(os.getloadavg()[0], 2)}  # others' work shares the CPUs


def summary(results: dict) -> dict[str, dict]:
    """Per scenario: the median over rounds of honest p50 and p99 (ms), and the p99's ratio
    to the baseline's."""
    import statistics

    out = {}
    for kind, rows in results["scenarios"].items():
        p50 = statistics.median(r["honest"]["p50_us"] for r in rows) / 1000
        p99 = statistics.median(r["honest"]["p99_us"] for r in rows) / 1000
        out[kind] = {"p50_ms": p50, "p99_ms": p99,
                     "throughput": statistics.median(r["honest"]["throughput"] for r in rows),
                     "honest_not_ok": sum(r["honest"]["not_ok"] + r["honest"]["socket_errors"]
                                          for r in rows),
                     "attacker": rows[-1]["attacker"]}
    base = out["baseline"]["p99_ms"]
    for row in out.values():
        row["p99_ratio"] = row["p99_ms"] / base
    return out


def markdown(results: dict) -> str:
    s, rows = results["settings"], summary(results)
    lines = [
        "# Honest latency with hostile peers connected",
        "",
        f"`python benchmarks/slowpeers.py` ({results['machine']['at']}, "
        f"{results['machine']['cpus']} CPUs, Python {results['machine']['python']}): the "
        f"service on CPU 0; wrk (8 honest keep-alive connections, `POST /v1/route`, "
        f"{s['duration_s']:g} s) and the attacker on CPU 1; {s['rounds']} rounds, medians "
        f"shown. Slow peers: {s['connections']:,} at once. The machine was shared: load "
        f"average {results['machine']['load_average_1min']:g} before the run, "
        f"{results['load_average_after']:g} after.",
        "",
        "| scenario | honest req/s | p50 | p99 | p99 vs baseline | honest errors | attacker "
        "(peak open / cut by server / answered) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for kind, r in rows.items():
        a = r["attacker"]
        who = "—" if a is None else (f"{a['peak_open']:,} / {a['cut_by_server']:,} / "
                                      f"{a['answered']:,}")
        lines.append(f"| {kind} | {r['throughput']:,.0f} | {r['p50_ms']:.2f} ms | "
                     f"{r['p99_ms']:.2f} ms | {r['p99_ratio']:.2f}× | {r['honest_not_ok']} | "
                     f"{who} |")
    lines += ["", f"Server exit code after SIGTERM: {results['exit_code']}; tracebacks in its "
                  f"log: {results['tracebacks_in_log']}."]
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    from bandit_router.bench import style

    rows = summary(results)
    kinds = list(rows)
    fig, (ax,) = style.figure(width=8, height=4.2)
    xs = range(len(kinds))
    ax.bar([x - 0.2 for x in xs], [rows[k]["p50_ms"] for k in kinds], 0.4, label="median (p50)",
           color="#0072B2")
    ax.bar([x + 0.2 for x in xs], [rows[k]["p99_ms"] for k in kinds], 0.4, label="p99",
           color="#D55E00")
    ax.axhline(2 * rows["baseline"]["p99_ms"], color="grey", linestyle="--",
               label="2 × the baseline's p99")
    ax.set_xticks(list(xs), kinds)
    ax.set_xlabel("slow clients alongside the honest ones")
    ax.set_ylabel("honest /v1/route latency\n(milliseconds)")
    ax.legend()
    style.save(fig, path)


def write(results: dict, folder: Path) -> None:
    from bandit_router.bench import style  # matplotlib: only when a plot is written

    style.write_run(results, folder, markdown, plot)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        print(json.dumps(asyncio.run(attack(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))))
