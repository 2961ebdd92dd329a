"""The load benchmark still runs (a smoke run in seconds; it asserts nothing about speed)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("wrk") is None,
                    reason="wrk is not installed (apt-get install wrk); .ci/run installs it")
def test_bench_load_quick_runs_and_loses_no_feedback(tmp_path: Path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "load.py"), "--quick",
                           "--out", str(tmp_path), "--config", str(ROOT / "config.toml")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    for endpoint in ("route", "feedback"):
        for row in results[endpoint].values():
            assert row["router"]["ok"] > 0 and row["router"]["not_ok"] == 0
            assert row["router"]["socket_errors"] == 0
    durability = results["durability"]
    assert durability["acknowledged"] > 0 and durability["acknowledged_all_committed"]
    assert results["router_exit_code"] == 0
    gateway = results["gateway"]
    for row in gateway["by_connections"].values():
        for run in (row["direct"], row["gateway"]):
            assert run["ok"] > 0 and run["not_ok"] == 0 and run["socket_errors"] == 0
    # Every call the gateway answered taught the router something, with no client feedback.
    assert gateway["automatic_feedback_committed"] >= gateway["answered"] > 0
    assert gateway["exit_code"] == 0
    scaleout = results["scaleout"]
    stores = {(c["store"], c["workers"]) for c in scaleout["cells"]}
    assert {("sqlite", 1), ("sqlite", 2)} <= stores
    if "postgres_skipped" not in scaleout:
        assert {("postgresql", 1), ("postgresql", 2)} <= stores
    for cell in scaleout["cells"]:
        for endpoint in ("route", "feedback"):
            assert cell[endpoint]["ok"] > 0 and cell[endpoint]["not_ok"] == 0, cell
        assert cell["exit_code"] == 0
    for measured in scaleout["staleness"].values():
        # another replica saw each feedback: a bounded, positive delay
        assert measured["samples"] > 0 and 0 < measured["p50_ms"] <= measured["max_ms"]
    assert (tmp_path / "latency.png").read_bytes()[:4] == b"\x89PNG"
    report = (tmp_path / "results.md").read_text()
    assert "## POST /v1/route" in report and "what the gateway adds" in report
    assert "Scale-out" in report and "Staleness" in report
