"""The one launcher of child processes for the benchmarks and the tests: the real
`bandit-router serve` (a `Service`, waited for until /healthz answers) and any other server
on a loopback port (a `Process`: the bare baseline, a fake upstream), with their CPU time and
memory read from /proc."""

from __future__ import annotations

import asyncio
import os
import shutil
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


def pinned(cmd: list[str], cpu: int, pin: bool) -> list[str]:
    """`cmd` pinned to one CPU with taskset, where there are two and taskset is installed."""
    if pin and shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu), *cmd]
    return cmd


class Process:
    """A child process that serves on a loopback port, with its output in `log`."""

    def __init__(self, name: str, cmd: list[str], port: int, log: Path,
                 env: dict[str, str] | None = None, wait: bool = True) -> None:
        self.name, self.port, self.log = name, port, log
        self.url = f"http://127.0.0.1:{port}"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        if wait:
            self.wait_listening()

    def wait_listening(self, timeout_s: float = 30.0) -> None:
        """Until the port accepts a connection; RuntimeError (with the log's tail) if the
        process exits first or the time runs out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start")

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed."""
        if self.running:
            self.proc.send_signal(signal.SIGKILL)

    def term(self) -> None:
        if self.running:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout_s: float = 60.0) -> int:
        return self.proc.wait(timeout=timeout_s)

    def stop(self, timeout_s: float = 60.0) -> int:
        self.term()
        return self.wait(timeout_s)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


class Service:
    """One store (a SQLite file, or a URL), served by a fresh `bandit-router serve` process on
    a fresh loopback port per `start`."""

    def __init__(self, config: Path, db: Path | str, log: Path | None = None,
                 env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        self.config, self.db, self.env, self.args = config, db, env, args
        if log is None and not isinstance(db, Path):
            raise ValueError("name a log file for a store given by URL")
        self.log = log or Path(db).with_suffix(".log")
        self.process: Process | None = None
        self.port = 0
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def proc(self) -> subprocess.Popen | None:
        return None if self.process is None else self.process.proc

    async def start(self, timeout_s: float = 30.0) -> None:
        self.port = free_port()
        self.process = Process("router", [
            *command(), "serve", "--config", str(self.config), "--db", str(self.db),
            "--host", "127.0.0.1", "--port", str(self.port), *self.args],
            self.port, self.log, self.env, wait=False)
        self.starts += 1
        try:
            await wait_healthy(self.url, self.process.proc, self.log, timeout_s)
        except RuntimeError:
            self.kill()
            raise

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed."""
        if self.process is not None:
            self.process.kill()

    def term(self) -> None:
        if self.process is not None:
            self.process.term()

    def wait(self, timeout_s: float = 60.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout_s)

    def stop(self, timeout_s: float = 60.0) -> int:
        self.term()
        return self.wait(timeout_s)

    def rss_mb(self) -> float:
        """Resident memory of the server process (Linux /proc)."""
        assert self.process is not None
        return self.process.rss_mb()

    def cpu_seconds(self) -> float:
        assert self.process is not None
        return self.process.cpu_seconds()
