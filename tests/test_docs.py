"""The docs as a newcomer meets them: the site builds in strict mode, every Python block in
README.md and docs/*.md compiles (the ones marked ``<!-- docs-test: run NAME -->`` run, against
a real hub where they need one), and the README's walkthrough runs as pasted, step by step, as
real processes against a real hub in a home of its own."""

from __future__ import annotations

import ast
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from fcntl import ioctl
from pathlib import Path
from termios import TIOCSWINSZ
from typing import Any

import pytest

from agents_sdk import Agent, HubClient
from agents_sdk.testing import run_task
from clawhub.runtime import Hub
from clawhub.store import Store

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"^<!--\s*(walkthrough|docs-test):\s*(.*?)\s*-->$")


@dataclass
class Block:
    """One fenced code block, with the marker comment on the line before it (if any)."""

    page: Path
    line: int
    lang: str
    code: str
    marker: tuple[str, str] | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    found: list[Block] = []
    lines = page.read_text().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            start, lang, body = i, line[3:].strip(), []
            i += 1
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            before = [x.strip() for x in lines[:start] if x.strip()]
            mark = MARKER.match(before[-1]) if before else None
            marker = (mark.group(1), mark.group(2)) if mark else None
            found.append(Block(page, start + 1, lang, "\n".join(body) + "\n", marker))
        i += 1
    return found


ALL = [b for page in PAGES for b in blocks(page)]
PYTHON = [b for b in ALL if b.lang == "python"]


# -- the site --------------------------------------------------------------------------------


def test_the_site_builds_in_strict_mode_with_every_page(tmp_path: Path) -> None:
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml", "-d", site],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    for page in (ROOT / "docs").glob("*.md"):
        built = "index.html" if page.stem == "index" else f"{page.stem}/index.html"
        assert (site / built).is_file(), page.name


def test_the_readme_is_a_front_door_that_links_every_page() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 300
    assert "make demo" in readme and "make test" in readme
    for page in (ROOT / "docs").glob("*.md"):
        if page.stem != "index":
            assert f"(docs/{page.name})" in readme, page.name


# -- the Python blocks -----------------------------------------------------------------------


def test_the_docs_have_python_blocks_and_runnable_ones() -> None:
    assert len(PYTHON) >= 7
    assert {b.marker[1] for b in PYTHON if b.marker} == set(FOLLOW_UPS)


@pytest.mark.parametrize("block", PYTHON, ids=[b.where for b in PYTHON])
def test_every_python_block_compiles(block: Block) -> None:
    compile(block.code, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


async def check_submit_validated(ns: dict[str, Any], client: HubClient, tmp_path: Path) -> None:
    status = await client.task(ns["task_id"])
    assert [s.kind for s in status.spec.validation] == ["reviewer", "judge", "human"]
    assert status.spec.acceptance == ["parses every example in the input", "has tests"]


async def check_reviewer(ns: dict[str, Any], client: HubClient, tmp_path: Path) -> None:
    agent = ns["agent"]
    good = await run_task(agent, skills={"review": 0.6}, input={"output": "code and tests"})
    bad = await run_task(agent, skills={"review": 0.6}, input={"output": "code"})
    assert good.output == {"accept": True, "reasons": ""}
    assert bad.output == {"accept": False, "reasons": "no tests"}


async def check_coder(ns: dict[str, Any], client: HubClient, tmp_path: Path) -> None:
    agent = ns["agent"]
    assert isinstance(agent, Agent) and agent.profile.skills == {"python": 0.9, "review": 0.6}
    work = await run_task(agent, skills={"python": 0.5}, input="hi", deps={"a": 1})
    review = await run_task(agent, skills={"review": 0.5})
    assert work.output == {"echo": "hi", "deps": {"a": 1}}
    assert review.output == {"approved": True}


async def check_llm_mock(ns: dict[str, Any], client: HubClient, tmp_path: Path) -> None:
    assert ns["run"].output == "Hi!"  # the block's own assert ran too


FollowUp = Callable[[dict[str, Any], HubClient, Path], Awaitable[None]]
FOLLOW_UPS: dict[str, FollowUp] = {
    "run submit-validated": check_submit_validated,
    "run reviewer": check_reviewer,
    "run coder": check_coder,
    "run llm-mock": check_llm_mock,
}
RUNNABLE = [b for b in PYTHON if b.marker and b.marker[0] == "docs-test"]


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    """The ``hub`` fixture on SQLite only: the docs are the subject here."""
    return sqlite_store


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.where for b in RUNNABLE])
async def test_marked_blocks_run(
    block: Block, hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run the block as a module (not ``__main__``), with ``hub`` a connected HubClient of a
    real hub, then check what it made."""
    assert block.marker is not None
    monkeypatch.setenv("CLAWHUB_AGENTS_DIR", str(tmp_path / "agents"))  # agents' memory
    code = compile(block.code, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    async with HubClient(hub.url) as client:
        ns: dict[str, Any] = {"__name__": "docs_block", "hub": client, "tmp_path": tmp_path}
        result = eval(code, ns)  # a coroutine when the block awaits at top level
        if result is not None:
            await result
        await FOLLOW_UPS[block.marker[1]](ns, client, tmp_path)


# -- the README's walkthrough ------------------------------------------------------------------


@dataclass
class Step:
    """A walkthrough block: ``terminal N[, keeps running][, interactive][, ready when "T"]
    [, expect "T"]``."""

    block: Block
    terminal: int
    keeps_running: bool
    interactive: bool
    ready: str | None
    expect: str | None


def walkthrough() -> list[Step]:
    steps = []
    for b in blocks(ROOT / "README.md"):
        if not b.marker or b.marker[0] != "walkthrough":
            continue
        spec = b.marker[1]
        terminal = re.search(r"terminal (\d+)", spec)
        ready = re.search(r'ready when "([^"]+)"', spec)
        expect = re.search(r'expect "([^"]+)"', spec)
        assert terminal and b.lang == "bash", b.where
        steps.append(
            Step(
                b,
                int(terminal.group(1)),
                "keeps running" in spec,
                "interactive" in spec,
                ready.group(1) if ready else None,
                expect.group(1) if expect else None,
            )
        )
    return steps


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A folder laid out like the repository (``.venv`` = this interpreter's environment,
    ``examples``), and an environment with a fresh HOME and no CLAWHUB_* settings."""
    work = tmp_path / "clawhub"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.prefix))
    (work / "examples").symlink_to(ROOT / "examples")
    home = tmp_path / "home"
    home.mkdir()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLAWHUB_")}
    env = {**clean, "HOME": str(home), "COLUMNS": "200", "TERM": "xterm-256color"}
    assert (work / ".venv" / "bin" / "clawhub").exists(), "the project is not installed here"
    yield work, env


def wait_for(text: str, read: Callable[[], str], proc: subprocess.Popen[bytes], t: float) -> None:
    deadline = time.monotonic() + t
    while text not in read():
        assert proc.poll() is None, f"exited {proc.returncode} before {text!r}:\n{read()}"
        assert time.monotonic() < deadline, f"no {text!r} after {t}s:\n{read()}"
        time.sleep(0.1)


def log_reader(log: Path) -> Callable[[], str]:
    return lambda: log.read_text(errors="replace")


def ctrl_c(proc: subprocess.Popen[bytes]) -> int:
    """What Ctrl-C in its terminal does: SIGINT to the step's process group."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


def run_in_pty(step: Step, cwd: Path, env: dict[str, str]) -> tuple[int, str, list[Any]]:
    """An interactive step in a 40x140 pseudo-terminal: wait until it draws ``ready``, list the
    group's participants, press ``q``; return its exit code, the screen, the participants."""
    assert step.ready
    master, slave = pty.openpty()
    ioctl(slave, TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    proc = subprocess.Popen(
        ["bash", "-c", step.block.code],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    screen = bytearray()

    def read() -> str:
        while select.select([master], [], [], 0)[0]:
            try:
                screen.extend(os.read(master, 65536))
            except OSError:  # the program closed the terminal
                break
        return screen.decode(errors="replace")

    try:
        wait_for(step.ready, read, proc, 60)
        listed = subprocess.run(
            [".venv/bin/clawhub", "agents", "--json"],
            capture_output=True,
            text=True,
            cwd=cwd,
            env=env,
            timeout=60,
            check=True,
        )
        os.write(master, b"q")
        deadline = time.monotonic() + 30
        while proc.poll() is None:
            read()
            assert time.monotonic() < deadline, "q did not quit:\n" + read()
            time.sleep(0.1)
        return proc.returncode, read(), json.loads(listed.stdout)["agents"]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(master)


def test_the_readme_walkthrough_runs_as_pasted(checkout: tuple[Path, dict[str, str]]) -> None:
    """Each block in its own shell, in order: a step that keeps running (the hub, the agent)
    stays in the background as it would in its own terminal, until Ctrl-C at the end; the
    TUI runs in a pseudo-terminal and quits on ``q``."""
    cwd, env = checkout
    steps = walkthrough()
    story = [
        "clawhub up",
        "clawhub token create",
        "examples/echo_agent.py",
        "clawhub submit",
        "clawhub show",
        "clawhub tui",
    ]
    code = "\n".join(s.block.code for s in steps)
    at = [code.find(words) for words in story]
    assert -1 not in at and at == sorted(at), dict(zip(story, at, strict=True))

    background: list[tuple[Step, subprocess.Popen[bytes], Path]] = []
    outputs: list[str] = []
    try:
        for step in steps:
            if step.keeps_running:
                log = cwd.parent / f"step-{step.block.line}.log"
                with log.open("wb") as out:
                    proc = subprocess.Popen(
                        ["bash", "-c", step.block.code],
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        cwd=cwd,
                        env=env,
                        start_new_session=True,
                    )
                background.append((step, proc, log))
                assert step.ready, step.block.where
                wait_for(step.ready, log_reader(log), proc, 60)
            elif step.interactive:
                code_, screen, agents = run_in_pty(step, cwd, env)
                assert code_ == 0, screen
                assert "Ann" in screen and "hello" in screen, screen
                humans = [a for a in agents if a["profile"]["kind"] == "human"]
                assert [h["profile"]["name"] for h in humans] == ["Ann"]
            else:
                done = subprocess.run(
                    ["bash", "-e", "-c", step.block.code],
                    capture_output=True,
                    text=True,
                    cwd=cwd,
                    env=env,
                    timeout=120,
                    check=False,
                )
                assert done.returncode == 0, f"{step.block.where}\n{done.stdout}\n{done.stderr}"
                if step.expect:
                    assert step.expect in done.stdout, done.stdout
                outputs.append(done.stdout)
        # what the user sees: the task done by the agent the token was made for
        story_out = "\n".join(outputs)
        assert "#1 echo: done" in story_out, story_out
        assert "task.done" in story_out, story_out
        hub_file = json.loads((Path(env["HOME"]) / ".clawhub" / "hub.json").read_text())
        assert hub_file["auth"] is True  # the walkthrough ran with tokens required
    finally:
        for _step, proc, _log in reversed(background):
            ctrl_c(proc)
    for step, proc, log in background:
        assert proc.returncode == 0, f"{step.block.where}:\n{log.read_text()}"
    assert "hub stopped" in background[0][2].read_text()
