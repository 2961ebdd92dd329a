"""Crash-safety run: SIGKILL the real service at many kill points; nothing acknowledged may be lost.

    python benchmarks/crash.py [--kills 30] [--concurrency 32] [--seed 0] [--config PATH]
                               [--out benchmarks/results/crash]

The same harness as tests/bench/test_crash.py (bandit_router/bench/crash.py), at more kill points:
they cycle through "after N more acknowledged feedbacks" (N drawn from 1 to 1000), "at a
random moment 0.05-1.5 s into the load" and "SIGKILL 20 ms into a graceful shutdown". Prints
a line per kill point and a summary; writes results.json and results.md to --out. Exits 1
if any kill point did not survive (integrity, a lost acknowledged feedback, snapshot ≠
rebuild, /v1/arms ≠ rebuild, a failed retry).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

from bandit_router.bench.crash import default_points, run

ROOT = Path(__file__).resolve().parent.parent


def markdown(summary: dict) -> str:
    lines = [
        "# Crash safety: SIGKILL at many kill points",
        "",
        f"{summary['survived']} of {len(summary['kill_points'])} kill points survived; "
        f"**{summary['feedback_lost']} acknowledged feedback lost** of "
        f"{summary['feedback_acknowledged']:,} acknowledged ({summary['replayed']:,} of them "
        f"idempotent replays), {summary['routes']:,} routes, {summary['concurrency']} "
        f"concurrent clients, {summary['seconds']:.0f} s. Final integrity check: "
        f"{', '.join(summary['integrity'])}; final `rebuild --check` exit "
        f"{summary['final_rebuild_check_exit']}; unexpected answers: "
        f"{summary['unexpected_count']}.",
        "",
        "| # | kill point | exit | acked in round | in flight at kill | integrity | missing "
        "| rebuild --check | /v1/arms = rebuild | retries ok | survived |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(summary["kill_points"], 1):
        lines.append(
            f"| {i} | {r['kill_point']} | {r['exit_code']} | {r['acked_this_round']} | "
            f"{r['in_flight_at_kill']} | {r['integrity'][0]} | {len(r['missing'])} | "
            f"{r['rebuild_check_exit']} | {r['arms_equal']} | "
            f"{r['retried_ok']}/{r['retried']} | {r['survived']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=30, help="kill points (30)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients (32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", default=str(ROOT / "config.toml"),
                        help="router config (default: the bundled one)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "crash"))
    parser.add_argument("--db", help="database file (default: a fresh temporary one)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bandit-router-crash-") as tmp:
        db = Path(args.db) if args.db else Path(tmp) / "router.db"
        summary = asyncio.run(run(Path(args.config).resolve(), db,
                                  default_points(args.kills, args.seed),
                                  concurrency=args.concurrency, seed=args.seed,
                                  progress=lambda m: print(m, file=sys.stderr)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    (out / "results.md").write_text(markdown(summary))
    ok = (summary["survived"] == len(summary["kill_points"]) and summary["feedback_lost"] == 0
          and summary["unexpected_count"] == 0 and summary["final_exit_code"] == 0
          and summary["final_rebuild_check_exit"] == 0 and summary["integrity"] == ["ok"])
    print(f"{summary['survived']}/{len(summary['kill_points'])} kill points survived; "
          f"feedback lost: {summary['feedback_lost']} of {summary['feedback_acknowledged']:,} "
          f"acknowledged; unexpected answers: {summary['unexpected_count']}; "
          f"{summary['seconds']:.0f} s; results in {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
