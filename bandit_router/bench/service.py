"""The real `bandit-router serve` as a child process, for the crash and soak harnesses."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command() -> list[str]:
    """The installed `bandit-router` script next to this interpreter, else `-m`."""
    script = Path(sys.executable).parent / "bandit-router"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bandit_router"]


def rebuild_check(config: Path, db: Path | str) -> subprocess.CompletedProcess:
    """`bandit-router rebuild --check`: exit 0 when the snapshot equals a rebuild of the log."""
    return subprocess.run([*command(), "rebuild", "--check", "--config", str(config),
                           "--db", str(db)], capture_output=True, text=True, timeout=120)


async def wait_healthy(url: str, proc: subprocess.Popen, log: Path,
                       timeout_s: float = 30.0) -> None:
    """Until `url`/healthz answers 200; RuntimeError (with the log's tail) if the process
    exits first or the time runs out."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}: "
                                   f"{log.read_text()[-2000:]}")
            try:
                async with s.get(f"{url}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.03)
    raise RuntimeError("server did not become healthy")


class Service:
    """One store (a SQLite file, or a URL), served by a fresh process on a fresh loopback
    port per `start`."""

    def __init__(self, config: Path, db: Path | str, log: Path | None = None) -> None:
        self.config, self.db = config, db
        if log is None and not isinstance(db, Path):
            raise ValueError("name a log file for a store given by URL")
        self.log = log or Path(db).with_suffix(".log")
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout_s: float = 30.0) -> None:
        self.port = free_port()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*command(), "serve", "--config", str(self.config), "--db", str(self.db),
                 "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT)
        self.starts += 1
        try:
            await wait_healthy(self.url, self.proc, self.log, timeout_s)
        except RuntimeError:
            self.kill()
            raise

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed."""
        if self.running:
            self.proc.send_signal(signal.SIGKILL)

    def term(self) -> None:
        if self.running:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout_s: float = 60.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout_s)

    def stop(self, timeout_s: float = 60.0) -> int:
        self.term()
        return self.wait(timeout_s)

    def rss_mb(self) -> float:
        """Resident memory of the server process (Linux /proc)."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
