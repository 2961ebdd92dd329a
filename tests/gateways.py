"""`bandit-router serve` as a real process in front of the fake upstream: a config whose
catalog is test models behind it, and the process that serves it."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from bandit_router.bench.launch import Process, free_port
from tests.fake_upstream import UPSTREAM_KEY, FakeUpstream

ROOT = Path(__file__).resolve().parent.parent
# name -> (the upstream's model, which picks its behaviour; price per million tokens)
MODELS = {"fail-model": ("up-500", 0.1), "busy-model": ("up-429", 0.2),
          "good-model": ("up-ok", 1.0), "hang-model": ("up-hang", 2.0)}




def set_key(text: str, key: str, value: str) -> str:
    """`text` with the bundled config's first `key = ...` line set to `value`."""
    changed, n = re.subn(rf"(?m)^{key} = [^#\n]*", f"{key} = {value}  ", text, count=1)
    assert n == 1, key
    return changed


def gateway_config(upstream: FakeUpstream, models: dict[str, tuple[str, float]] = MODELS,
                   **settings: str) -> str:
    """The bundled config with `models` as its catalog, each behind the fake upstream, and
    `settings` (keys of the bundled file, first occurrence) changed."""
    lines = []
    for name, (there, price) in models.items():
        lines += ["[[models]]", f'name = "{name}"', 'provider = "test"',
                  f"input_per_mtok = {price}", f"output_per_mtok = {price * 2}",
                  "context_tokens = 100000", "latency_ms = 1000",
                  f'upstream = {{ base_url = "{upstream.base_url}", model = "{there}", '
                  f'key_env = "TEST_UPSTREAM_KEY" }}', ""]
    # the cheapest model, and the only one the gateway cannot call
    lines += ["[[models]]", 'name = "dark-model"', 'provider = "test"', "input_per_mtok = 0.05",
              "output_per_mtok = 0.1", "context_tokens = 100000", "latency_ms = 1000", ""]
    text = (ROOT / "config.toml").read_text()
    head = text[:text.index("[[models]]")]
    tail = text[text.index("# Buckets are"):]
    for key, value in {"attempts": "4", "timeout_s": "1.0", **settings}.items():
        head, tail = (set_key(head, key, value), tail) if re.search(
            rf"(?m)^{key} = ", head) else (head, set_key(tail, key, value))
    return head + "\n".join(lines) + "\n" + tail


class Gateway(Process):
    """`bandit-router serve` of `config_text`, with the fake upstream's key in its
    environment."""

    def __init__(self, tmp: Path, config_text: str) -> None:
        self.config = tmp / "gateway.toml"
        self.config.write_text(config_text)
        self.db = tmp / "gw.db"
        port = free_port()
        env = {**os.environ, "TEST_UPSTREAM_KEY": UPSTREAM_KEY}
        super().__init__("gateway", [
            sys.executable, "-m", "bandit_router", "serve", "--config", str(self.config),
            "--db", str(self.db), "--port", str(port)], port, tmp / "gateway.log", env)

    def stop(self, timeout_s: float = 30.0) -> int:
        return super().stop(timeout_s)
