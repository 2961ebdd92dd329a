"""Soak run: the real service at a steady rate for minutes; flat memory, no errors, no loss.

    python benchmarks/soak.py [--duration 180] [--rate 300] [--sample-every 2] [--seed 0]
                              [--config PATH] [--out benchmarks/results/soak]

Starts `bandit-router serve` on a loopback port with a fresh database, drives it open-loop
at --rate requests per second (40% route, 35% feedback, 15% GET /v1/arms, 10% /healthz;
feedback includes facts split over two messages, idempotency-key retries and resent facts
that must be refused 409), samples the server's resident memory every --sample-every
seconds, then stops it with SIGTERM and checks the database (see bandit_router/bench/soak.py).
Prints a summary, writes results.json and results.md to --out, and exits 1 unless every
check passed: no 5xx, no connection errors, no other unexpected answer, every acknowledged
feedback in the database, rebuild --check exit 0, exit code 0, memory flat after warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

from bandit_router.bench.soak import SoakSettings, markdown, run

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=180.0, help="seconds (180)")
    parser.add_argument("--rate", type=float, default=300.0, help="requests per second (300)")
    parser.add_argument("--sample-every", type=float, default=2.0,
                        help="seconds between RSS samples (2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", default=str(ROOT / "config.toml"),
                        help="router config (default: the bundled one)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "soak"))
    args = parser.parse_args(argv)
    if args.duration > 1800:
        parser.error("--duration is bounded to 30 minutes")

    settings = SoakSettings(duration_s=args.duration, rate=args.rate,
                            sample_every_s=args.sample_every, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="bandit-router-soak-") as tmp:
        summary = asyncio.run(run(Path(args.config).resolve(), Path(tmp) / "router.db",
                                  settings, progress=lambda m: print(m, file=sys.stderr)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "results.md").write_text(markdown(summary))
    print(markdown(summary))
    print(f"results in {out}")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
