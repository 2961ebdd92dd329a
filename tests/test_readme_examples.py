"""Every example in the README and in each docs/*.md page runs as written, against a real
`bandit-router serve` on a loopback port (its models' upstream is the fake provider, the
one thing replaced); each page gets a server of its own.

Whatever code blocks a page holds are found and run in order, sharing state as a reader
following along would: `sh` commands through bash (curl included), `console` commands
after their `$ `, Python in one namespace, TOML merged into the config the page's server
runs (the bundled one, its models behind the fake upstream) and validated. A JSON block
after a command must name only keys the real answer has, and an answer shown in a `# {...}`
comment must agree on its error code (or on having none). Only these rewrites are made:
`localhost:8787` becomes the test server's address, and a shortened route_id (`r3.WzE3...`)
a real one, the same for each spelling. A block the test cannot run says why, in an HTML
comment just above it: `<!-- example not run: ... -->`; only a few may, on each page and in
all.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tomllib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bandit_router.bench.launch import command, free_port, wait_healthy
from bandit_router.config import parse
from tests.fake_upstream import UPSTREAM_KEY
from tests.gateways import ROOT, set_key
from tests.pages import name, pages

BLOCK = re.compile(r"(?ms)^(?:<!-- example not run: (?P<reason>.+?) -->\n)?"
                   r"```(?P<lang>\w*)\n(?P<body>.*?)^```")
SHORT_ROUTE_ID = re.compile(r"r[23]\.[A-Za-z0-9_-]*\.\.\.")
RUNNABLE = {"sh", "console", "json", "python", "toml"}
MAX_NOT_RUN = 6  # over all the pages
MAX_NOT_RUN_PER_PAGE = 2


@dataclass
class Block:
    page: str
    line: int
    lang: str
    body: str
    not_run: str | None


@dataclass
class Command:
    text: str
    shown: list[str] = field(default_factory=list)  # answers shown as "# {...}" comments


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    return [Block(name(page), text[:m.start("lang")].count("\n") + 1, m["lang"], m["body"],
                  m["reason"])
            for m in BLOCK.finditer(text)]


def runnable(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.not_run is None]


# the pages with an example to run, one test (and one server) each
PAGES_WITH_EXAMPLES = [page for page in pages() if runnable(page)]


def commands(body: str) -> list[Command]:
    """Shell commands of a block: continued lines (a trailing backslash, or a quote still
    open) joined; comment lines that show an answer attached to the command before."""
    out: list[Command] = []
    pending = ""
    for line in body.splitlines():
        if not pending and line.lstrip().startswith("#"):
            shown = line.lstrip()[1:].strip()
            if shown.startswith("{") and out:
                out[-1].shown.append(shown)
            continue
        pending = f"{pending}\n{line}" if pending else line
        if not line.endswith("\\") and pending.count("'") % 2 == 0:
            out.append(Command(pending))
            pending = ""
    assert not pending, f"unfinished command: {pending!r}"
    return out


def _config_with_upstreams(upstream, port: int) -> str:
    """The bundled config, on `port`, with every model callable through the fake upstream."""
    text = set_key((ROOT / "config.toml").read_text(), "port", str(port))
    upstream_line = (f'upstream = {{ base_url = "{upstream.base_url}", '
                     f'key_env = "TEST_UPSTREAM_KEY" }}')
    return re.sub(r'(?m)^(\[\[models\]\]\nname = "[^"]+"\n)', rf"\g<1>{upstream_line}\n", text)


class Reader:
    """Runs a page's blocks in order in one working directory, as a reader would."""

    def __init__(self, workdir: Path, url: str, env: dict[str, str], example_port: int):
        self.workdir, self.url, self.env = workdir, url, env
        self.example_port = example_port
        self.route_ids: dict[str, str] = {}
        self.namespace: dict[str, Any] = {}
        self.last_answer: Any = None
        self.failures: list[str] = []

    def rewrite(self, text: str) -> str:
        text = re.sub(r"(localhost|127\.0\.0\.1):8787", self.url.removeprefix("http://"), text)
        for short in set(SHORT_ROUTE_ID.findall(text)):
            if short not in self.route_ids:
                self.route_ids[short] = self._fresh_route_id()
            text = text.replace(short, self.route_ids[short])
        return text

    def _fresh_route_id(self) -> str:
        done = subprocess.run(["curl", "-s", f"{self.url}/v1/route", "-H",
                               "Content-Type: application/json", "-d",
                               '{"prompt": "Write a Python function that merges two lists."}'],
                              capture_output=True, text=True, timeout=30, check=True)
        return json.loads(done.stdout)["route_id"]

    def fail(self, block: Block, what: str) -> None:
        self.failures.append(f"{block.page} line {block.line} ({block.lang}): {what}")

    def run(self, block: Block) -> None:
        getattr(self, f"_{block.lang}")(block)

    def _shell(self, block: Block, text: str) -> subprocess.CompletedProcess | None:
        if re.search(r"\bbandit-router serve\b", text):
            self._serve(block, text)
            return None
        done = subprocess.run(["bash", "-c", self.rewrite(text)], capture_output=True,
                              text=True, timeout=120, cwd=self.workdir, env=self.env)
        if done.returncode != 0:
            self.fail(block, f"{text!r} exited {done.returncode}: {done.stderr[-500:]}")
        return done

    def _serve(self, block: Block, text: str) -> None:
        """A command that serves: started, healthy on the config's port, stopped with 0."""
        log = self.workdir / "serve-example.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(["bash", "-c", f"exec {text}"], cwd=self.workdir,
                                    env=self.env, stdout=out, stderr=subprocess.STDOUT)
        try:
            asyncio.run(wait_healthy(f"http://127.0.0.1:{self.example_port}", proc, log, 60))
        except RuntimeError as exc:
            self.fail(block, f"{text!r} did not serve: {exc}")
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
        if code != 0:
            self.fail(block, f"{text!r} exited {code} after SIGTERM: "
                             f"{log.read_text()[-500:]}")

    def _sh(self, block: Block) -> None:
        self.last_answer = None
        for cmd in commands(block.body):
            done = self._shell(block, cmd.text)
            if done is None:
                continue
            try:
                self.last_answer = json.loads(done.stdout) if done.stdout.strip() else None
            except json.JSONDecodeError:
                self.last_answer = None
            for shown in cmd.shown:
                self._agrees(block, cmd.text, shown, self.last_answer)

    def _agrees(self, block: Block, text: str, shown: str, answer: Any) -> None:
        code = re.search(r'"error": \{"code": "(\w+)"', shown)
        got = answer.get("error", {}).get("code") if isinstance(answer, dict) else None
        if (code.group(1) if code else None) != got:
            self.fail(block, f"{text!r} answered {answer!r:.300}, the page shows {shown!r}")
        first_key = re.match(r'\{"(\w+)"', shown)
        if first_key and not (isinstance(answer, dict) and first_key.group(1) in answer):
            self.fail(block, f"{text!r}: no {first_key.group(1)!r} in {answer!r:.300}")

    def _console(self, block: Block) -> None:
        lines = block.body.splitlines()
        for i, line in enumerate(lines):
            if not line.startswith("$ "):
                continue
            done = self._shell(block, line[2:])
            shown = next((s for s in lines[i + 1:] if s.strip()), "")
            if done is not None and done.stdout.split()[:5] != shown.split()[:5]:
                self.fail(block, f"{line!r} printed {done.stdout[:200]!r}, the page shows "
                                 f"{shown!r}")

    def _json(self, block: Block) -> None:
        try:
            shown = json.loads(block.body)
        except json.JSONDecodeError as exc:
            self.fail(block, f"not valid JSON: {exc}")
            return
        answer, self.last_answer = self.last_answer, None
        if isinstance(shown, dict) and isinstance(answer, dict):
            extra = sorted(set(shown) - set(answer) - {"..."})
            if extra:
                self.fail(block, f"keys {extra} are not in the real answer {sorted(answer)}")

    def _python(self, block: Block) -> None:
        try:
            exec(compile(self.rewrite(block.body), f"{block.page}:{block.line}", "exec"),
                 self.namespace)
        except Exception as exc:
            self.fail(block, f"raised {type(exc).__name__}: {exc}")

    def _toml(self, block: Block) -> None:
        try:
            snippet = tomllib.loads(block.body)
        except tomllib.TOMLDecodeError as exc:
            self.fail(block, f"not valid TOML: {exc}")
            return
        doc = tomllib.loads((self.workdir / "config.toml").read_text())
        merge(doc, snippet)
        env = {m.group(1): f"{m.group(1)}-{'x' * 32}"  # each a key of its own
               for m in re.finditer(r'key_env = "(\w+)"', block.body)}
        env["TEST_UPSTREAM_KEY"] = UPSTREAM_KEY  # the served config's models' upstream
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            parse(doc)
        except Exception as exc:
            self.fail(block, f"the bundled config with this snippet is refused: {exc}")
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def merge(doc: dict, snippet: dict) -> None:
    """`snippet` into a config document: tables deeply, a model into the one of its name
    (or appended), other arrays of tables appended."""
    for key, value in snippet.items():
        if key == "models":
            for model in value:
                same = [m for m in doc["models"] if m["name"] == model.get("name")]
                if same:
                    same[0].update(model)
                else:
                    doc["models"].append(model)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            doc.setdefault(key, []).extend(value)
        elif isinstance(value, dict) and isinstance(doc.get(key), dict):
            merge(doc[key], value)
        else:
            doc[key] = value


@pytest.fixture
def reader(upstream, tmp_path):
    port, example_port = free_port(), free_port()
    (tmp_path / "config.toml").write_text(_config_with_upstreams(upstream, example_port))
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "TEST_UPSTREAM_KEY": UPSTREAM_KEY,
           "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("BANDIT_ROUTER_CONFIG", None)  # ./config.toml, as for a reader in their folder
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*command(), "serve", "--port", str(port)], cwd=tmp_path,
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(wait_healthy(url, proc, log))
        yield Reader(tmp_path, url, env, example_port)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert "Traceback" not in log.read_text()


def test_the_pages_have_examples_and_few_are_not_run():
    found = [b for page in pages() for b in blocks(page)]
    assert len(found) > 20
    assert sum(len(runnable(page)) for page in pages()) >= 18
    not_run = [(b.page, b.line, b.not_run) for b in found if b.not_run]
    assert len(not_run) <= MAX_NOT_RUN, not_run
    for page in pages():
        here = [b for b in not_run if b[0] == name(page)]
        assert len(here) <= MAX_NOT_RUN_PER_PAGE, here
    unknown = [(b.page, b.line, b.lang) for b in found
               if b.lang not in RUNNABLE and not b.not_run]
    assert not unknown, f"blocks this test cannot run and that do not say why: {unknown}"
    assert {"README.md", "docs/api.md", "docs/gateway.md"} <= \
        {name(page) for page in PAGES_WITH_EXAMPLES}


@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES, ids=name)
def test_every_example_on_the_page_runs_as_written(reader, page):
    ran = 0
    for block in runnable(page):
        reader.run(block)
        ran += 1
    assert ran == len(runnable(page)) > 0
    assert not reader.failures, "\n".join(reader.failures)
    with urllib.request.urlopen(f"{reader.url}/healthz") as r:
        assert json.load(r)["status"] == "ok"
