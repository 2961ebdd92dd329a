"""The slow-peers benchmark still runs (a small run: 100 slow peers, 1 s cells). It asserts
what the server did to each attacker and that honest requests were all answered, nothing
about speed (benchmarks/results/slowpeers holds the measured run)."""

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
def test_the_slow_peers_benchmark_runs_and_every_honest_request_is_answered(tmp_path: Path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "slowpeers.py"),
                           "--connections", "100", "--duration", "1", "--rounds", "1",
                           "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    scenarios = {k: v[0] for k, v in results["scenarios"].items()}
    assert set(scenarios) == {"baseline", "slowloris", "slow-body", "content-parts"}
    for row in scenarios.values():
        honest = row["honest"]
        assert honest["ok"] > 0 and honest["not_ok"] == 0 and honest["socket_errors"] == 0
    for kind in ("slowloris", "slow-body"):  # all held open at once, none answered
        assert scenarios[kind]["attacker"]["peak_open"] == 100
    parts = scenarios["content-parts"]["attacker"]
    assert parts["answered"] > 0 and parts["failed"] == 0  # every one refused with a 400
    assert results["exit_code"] == 0 and results["tracebacks_in_log"] == 0
    assert "| slowloris |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "latency.png").read_bytes().startswith(b"\x89PNG")
