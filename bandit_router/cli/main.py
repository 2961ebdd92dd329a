"""The `bandit-router` command. Arguments are parsed here, in `main`, and nowhere else."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from bandit_router import __version__
from bandit_router.config import load
from bandit_router.config.tomlcheck import ConfigError
from bandit_router.core.location import BadLocation
from bandit_router.core.settings import Config
from bandit_router.storage.writer import StorageError

EXAMPLES = """examples:
  bandit-router serve                    # on http://127.0.0.1:8787, state in ./bandit-router.db
  bandit-router report --window week     # spend, savings and quality of the last 7 days
  bandit-router bench replay DATASET     # replay real outcomes; results in benchmarks/results/
"""


def _command(commands, name: str, summary: str, detail: str = "") -> argparse.ArgumentParser:
    """A subcommand: `summary` is its one line in the parent's list, and opens its --help."""
    return commands.add_parser(name, help=summary, description=f"{summary}. {detail}".strip())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bandit-router", description="Route each LLM request to the cheapest good-enough "
                                          "model, learning from feedback.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"bandit-router {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = _command(commands, "serve", "run the HTTP service",
                     "Routes, learns from feedback and serves the OpenAI-compatible gateway; "
                     "SIGTERM drains and exits 0.")
    _common(serve)
    serve.add_argument("--host", help="address to bind (default: server.host in the config, "
                                      "127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: server.port in the config, "
                                                "8787)")
    serve.add_argument("--workers", type=int, default=1,
                       help="processes serving the port together, sharing the store "
                            "(default: %(default)s)")

    rebuild = _command(commands, "rebuild", "rebuild the posteriors from the feedback log",
                       "Replays the log over the configured priors and replaces the "
                       "snapshot. Stop the service first.")
    _common(rebuild)
    rebuild.add_argument("--check", action="store_true",
                         help="only compare the snapshot with a rebuild; exit 1 if they differ")
    report = _command(commands, "report", "print spend, savings, quality and traffic",
                      "Per policy and bucket, against a reference model, with the budgets; "
                      "read from the database (works while the service runs).")
    _common(report)
    report.add_argument("--window", default="day", choices=("hour", "day", "week", "month"),
                        help="the last hour, day (24 h), week or month (30 days), in whole "
                             "UTC hours (default: %(default)s)")
    report.add_argument("--tenant", default="default",
                        help="whose spend (default: %(default)s)")
    report.add_argument("--policy", help="only this policy (default: every policy)")
    report.add_argument("--bucket", help="only this bucket (default: every bucket)")
    report.add_argument("--reference", help="the model savings are measured against "
                                            "(default: spend.reference_model, else the "
                                            "priciest model)")
    report.add_argument("--json", action="store_true", help="print GET /v1/stats's JSON")
    migrate = _command(commands, "migrate-store", "copy a whole store into an empty one",
                       "The log, posteriors, usage and route key, e.g. SQLite to PostgreSQL; "
                       "checked with a rebuild. Stop the service first.")
    migrate.add_argument("source", help="the store to copy: a SQLite path or URL, or a "
                                        "postgresql:// URL")
    migrate.add_argument("target", help="the empty store to fill (created if needed)")
    migrate.add_argument("--config", help="config whose policies check the copy with a "
                                          "rebuild (default: as for serve)")
    bench = _command(commands, "bench", "run a benchmark (replay or load)")
    kinds = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
    replay = _command(kinds, "replay", "replay a dataset of real outcomes",
                      "Through the router and every baseline; needs the [bench] extra.")
    replay.add_argument("path", help="dataset folder (one *.jsonl.gz and models.json)")
    replay.add_argument("--out", help="results folder (default: benchmarks/results/<dataset "
                                      "folder's name>)")
    replay.add_argument("--config", help="router config (default: as for serve)")
    replay.add_argument("--shuffles", type=int, default=10,
                        help="cold-start passes (default: %(default)s)")
    replay.add_argument("--draws", type=int, default=30_000,
                        help="steady-state draws (default: %(default)s)")
    replay.add_argument("--steady-runs", type=int, default=3,
                        help="steady-state runs of each learning policy (default: %(default)s)")
    replay.add_argument("--workers", type=int, help="processes (default: one per CPU)")
    replay.add_argument("--no-ablation", action="store_true",
                        help="skip the ablation (objective, contention, priors)")
    replay.add_argument("--peers", default="benchmarks/peers",
                        help="folder of published peer curves, <dataset>.json, if present "
                             "(default: %(default)s)")
    load = _command(kinds, "load", "load-test the real service with wrk",
                    "Against a bare aiohttp app as the baseline; plus the in-process "
                    "microbenchmark and a long in-process run.")
    load.add_argument("--out", default="benchmarks/results/load",
                      help="results folder (default: %(default)s)")
    load.add_argument("--config", help="router config (default: the bundled one)")
    load.add_argument("--duration", type=float, default=5.0,
                      help="seconds per cell (default: %(default)s)")
    load.add_argument("--connections", default="1,8,32,128",
                      help="comma-separated concurrencies (default: %(default)s)")
    load.add_argument("--decisions", type=int, default=1_000_000,
                      help="decisions in the long in-process memory run (default: "
                           "%(default)s)")
    load.add_argument("--quick", action="store_true",
                      help="a smoke run in seconds (1 s cells, 1 and 8 connections, short "
                           "in-process runs); its numbers mean nothing")
    load.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    load.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres",
                      help="PostgreSQL server for the scale-out rows, where a scratch "
                           "database is created and dropped (default: %(default)s)")
    load.add_argument("--no-scaleout", action="store_true",
                      help="skip the workers / PostgreSQL / staleness runs")
    return parser


def _bench_load(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bandit_router.bench import load as load_bench
    from bandit_router.bench import memory, micro

    connections = (1, 8) if args.quick else tuple(int(c) for c in args.connections.split(","))
    settings = load_bench.LoadSettings(
        concurrencies=connections, duration_s=1.0 if args.quick else args.duration,
        prompts=40 if args.quick else 200, config=args.config, pin=not args.no_pin,
        scaleout=not args.no_scaleout, postgres=args.postgres,
        staleness_samples=6 if args.quick else 40)
    results = load_bench.run(settings, progress=lambda m: print(m, file=sys.stderr))
    config = load(args.config)
    results["micro"] = micro.run(config, calls=500 if args.quick else 20_000)
    results["long_run"] = memory.run(
        config, 5_000 if args.quick else args.decisions,
        progress=lambda done, total: print(f"long run: {done:,}/{total:,} decisions",
                                           file=sys.stderr))
    load_bench.write(results, Path(args.out))
    route = results["route"][str(connections[-1])]
    print(f"/v1/route at {connections[-1]} connections: {route['router']['throughput']:.0f} "
          f"req/s ({route['throughput_ratio']:.0%} of the baseline), p99 "
          f"{route['router']['p99_us'] / 1000:.2f} ms; results in {args.out}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    if args.bench_command == "load":
        return _bench_load(args)
    try:
        from bandit_router.bench.command import replay
        from bandit_router.bench.replay import Settings
    except ImportError as exc:
        print(f"bandit-router: error: {exc}; install the extra: pip install -e '.[bench]'",
              file=sys.stderr)
        return 2
    from bandit_router.bench.dataset import DatasetError

    settings = Settings(shuffles=args.shuffles, draws=args.draws, workers=args.workers,
                        steady_runs=args.steady_runs, ablation=not args.no_ablation)
    try:
        figures = replay(args.path, args.out, args.config, settings, peers=args.peers)
    except (DatasetError, ConfigError) as exc:
        print(f"bandit-router: error: {exc}", file=sys.stderr)
        return 2
    router = figures["regimes"]["steady_state"]["policies"]["router"]
    cold = figures["regimes"]["cold_start"]["policies"]["router"]
    print(f"router: steady state {router['quality_vs_strongest']:.1%} of always-strongest's "
          f"quality at {router['cost_vs_strongest']:.1%} of its cost; cold start "
          f"{cold['quality_vs_strongest']:.1%} at {cold['cost_vs_strongest']:.1%} "
          f"({figures['seconds']:.0f} s)")
    return 0


def _common(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--config", help="config file (default: $BANDIT_ROUTER_CONFIG, "
                                      "./config.toml, or the bundled one)")
    cmd.add_argument("--db", help="the store: a SQLite file or URL, or a postgresql:// URL "
                                  "(default: storage.url in the config)")


def _config(args: argparse.Namespace) -> Config:
    config = load(args.config)
    storage = replace(config.storage, url=args.db) if args.db else config.storage
    server = config.server
    if getattr(args, "host", None):
        server = replace(server, host=args.host)
    if getattr(args, "port", None) is not None:
        server = replace(server, port=args.port)
    return replace(config, storage=storage, server=server)


def _serve(config: Config, workers: int) -> int:
    if workers < 1:
        raise ConfigError("--workers", f"must be at least 1; got {workers}")
    if workers == 1:
        return _serve_one(config)
    from bandit_router.http import server
    from bandit_router.http.workers import Supervisor
    from bandit_router.storage.store import prepare

    server.bind(config.server, reuse_port=True).close()  # a busy port: one line, exit 2
    prepare(config)  # migrate once, before N processes open the store together
    return Supervisor(workers, lambda: _serve_one(config, reuse_port=True)).run()


def _serve_one(config: Config, reuse_port: bool = False) -> int:
    from bandit_router.http import log, server
    from bandit_router.http.app import create_app

    sock = server.bind(config.server, reuse_port)  # a busy port stops us before anything
    sink = log.configure(config.logging.level)
    try:
        return server.run(create_app(config), config.server, sock)
    finally:
        sink.close()


def _rebuild(config: Config, check: bool) -> int:
    from bandit_router.storage.rebuild import rebuild
    from bandit_router.storage.store import connect

    db = connect(config.storage.url, config.storage.synchronous)
    result = rebuild(db, config, write=not check)
    print(f"replayed {result.events} feedback messages into {len(result.rebuilt)} arms; "
          f"{len(result.differing)} arms differed from the snapshot")
    for key in result.differing[:20]:
        print(f"  differs: {key.tenant} / {key.policy} / {key.bucket} / {key.model}")
    if not check and result.differing:
        print("snapshot replaced by the rebuild")
    return 1 if check and result.differing else 0


def _report(config: Config, args: argparse.Namespace) -> int:
    import json
    import os
    import time

    from bandit_router.cli.savings_report import render
    from bandit_router.core.catalog_changes import replay
    from bandit_router.core.location import locate
    from bandit_router.storage.catalog_log import LoadChanges
    from bandit_router.storage.stats import usage_stats
    from bandit_router.storage.store import connect

    location = locate(config.storage.url)
    if location.kind == "sqlite" and not os.path.exists(location.target):
        raise StorageError(f"no database at {location.target!r} (pass --db, or run from the "
                           "service's working directory)")
    db = connect(config.storage.url, config.storage.synchronous)
    try:
        # the catalog the service serves: runtime changes (models added, prices) on top of
        # the file
        changes, _ = LoadChanges().run(db)
        config = replace(config, models=tuple(
            e.model for e in replay(config.models, changes, config.upstreams).entries))
        if args.reference is not None and args.reference not in {m.name for m in config.models}:
            raise ConfigError("--reference", f"{args.reference!r} is not a model in the catalog")
        stats = usage_stats(db.conn, config, time.time(), args.window, args.tenant,
                            args.policy, args.bucket, args.reference)
    finally:
        db.conn.close()
    print(json.dumps(stats, indent=1) if args.json else render(stats, args.tenant), end="")
    return 0


def _migrate_store(args: argparse.Namespace) -> int:
    from bandit_router.core.location import locate
    from bandit_router.storage.migrate_store import migrate

    copied = migrate(load(args.config), args.source, args.target,
                     progress=lambda table, n: print(f"  {table}: {n:,} rows",
                                                     file=sys.stderr))
    for table, n in copied.rows.items():
        print(f"{table}: {n:,} rows copied")
    print(f"copied {locate(args.source).shown} -> {locate(args.target).shown}; a rebuild of "
          f"the copied log {'equals' if copied.rebuild_agrees else 'DIFFERS FROM'} the copied "
          "posteriors")
    return 0 if copied.rebuild_agrees else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "bench":
        return _bench(args)
    try:
        if args.command == "migrate-store":
            return _migrate_store(args)
        config = _config(args)
        if args.command == "serve":
            return _serve(config, args.workers)
        if args.command == "report":
            return _report(config, args)
        return _rebuild(config, args.check)
    except (ConfigError, StorageError, BadLocation) as exc:
        print(f"bandit-router: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
