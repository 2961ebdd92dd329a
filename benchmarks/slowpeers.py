"""Honest latency with hostile peers connected (see bandit_router/bench/slowpeers.py).

    python benchmarks/slowpeers.py [--connections 1000] [--duration 10] [--rounds 2]
                                   [--no-pin] [--out benchmarks/results/slowpeers]

Prints each scenario's honest p99 against the baseline's and writes results.json,
results.md and latency.png to --out. Needs wrk.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bandit_router.bench.slowpeers import SlowSettings, run, summary, write

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000,
                        help="slow peers held open at once (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds of honest load per scenario (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="times each scenario is measured (default: %(default)s)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "slowpeers"),
                        help="results folder (default: %(default)s)")
    args = parser.parse_args(argv)
    settings = SlowSettings(connections=args.connections, duration_s=args.duration,
                            rounds=args.rounds, pin=not args.no_pin)
    results = run(settings, progress=lambda m: print(m, file=sys.stderr))
    write(results, Path(args.out))
    for kind, row in summary(results).items():
        print(f"{kind:14} p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms  "
              f"({row['p99_ratio']:.2f}x baseline)  attacker {row['attacker']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
