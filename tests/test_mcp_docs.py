"""docs/mcp.md as a newcomer pastes it: each ``claude mcp add`` block (marked
``<!-- mcp-test: stdio|http -->``) runs in bash as written, in a folder laid out like the
repository, against a real hub in a home of its own; a stand-in ``claude`` records the
arguments Claude Code would get, and the ``mcp`` SDK's client then connects exactly as that
configuration says (the command and environment for stdio, the URL and header for HTTP)
and does the work the page promises."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from mcp_client import call, http_session, stdio_session

from agents_sdk import Agent, TaskContext
from clawhub.gateway import HubProcess
from clawhub.settings import HubSettings
from protocols import TaskState, split_token

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "mcp.md"
MARK = re.compile(r"^<!--\s*mcp-test:\s*(\w+)\s*-->$")
WAIT = 60.0

#: A ``claude`` that prints the arguments it was given, as JSON (bash does the rest).
FAKE_CLAUDE = 'claude() { "$PY" -c \'import json,sys; print(json.dumps(sys.argv[1:]))\' "$@"; }\n'


def marked_blocks() -> dict[str, str]:
    """The page's marked bash blocks, by mark."""
    found: dict[str, str] = {}
    lines = PAGE.read_text().split("\n")
    for i, line in enumerate(lines):
        mark = MARK.match(line.strip())
        if mark and lines[i + 1].startswith("```bash"):
            end = lines.index("```", i + 2)
            found[mark.group(1)] = "\n".join(lines[i + 2 : end]) + "\n"
    return found


@dataclass
class ClaudeConfig:
    """``claude mcp add`` arguments, read the way Claude Code reads them."""

    transport: str = "stdio"
    name: str = ""
    env: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    url: str = ""
    command: list[str] = field(default_factory=list)


def parse_claude(argv: list[str]) -> ClaudeConfig:
    assert argv[:2] == ["mcp", "add"], argv
    config = ClaudeConfig()
    rest = argv[2:]
    while rest and rest[0].startswith("-") and rest[0] != "--":
        option, value, rest = rest[0], rest[1], rest[2:]
        if option in ("--transport", "-t"):
            config.transport = value
        elif option in ("--env", "-e"):
            key, _, val = value.partition("=")
            config.env[key] = val
        elif option in ("--header", "-H"):
            key, _, val = value.partition(":")
            config.headers[key.strip()] = val.strip()
        else:
            raise AssertionError(f"unexpected option {option}")
    config.name, rest = rest[0], rest[1:]
    if config.transport == "stdio":
        assert rest[0] == "--", rest
        config.command = rest[1:]
    else:
        [config.url] = rest
    return config


@dataclass
class Checkout:
    server: HubProcess
    cwd: Path
    env: dict[str, str]

    def paste(self, block: str) -> ClaudeConfig:
        """Run a block in bash as pasted; what ``claude`` was given."""
        done = subprocess.run(
            ["bash", "-e", "-c", FAKE_CLAUDE + block],
            capture_output=True,
            text=True,
            cwd=self.cwd,
            env=self.env,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{block}\n{done.stdout}\n{done.stderr}"
        return parse_claude(json.loads(done.stdout.strip().splitlines()[-1]))

    async def knows(self, token: str) -> None:
        """Wait until the hub has read the token the block made (its token watcher)."""
        token_id, _ = split_token(token)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while self.server.tokens.principal(token_id) is None:
            assert loop.time() < deadline, f"the hub never saw token {token_id}"
            await asyncio.sleep(0.1)
        await self.server.sync_tokens()


@pytest.fixture
async def checkout(tmp_path: Path) -> AsyncIterator[Checkout]:
    """A hub as `clawhub up` runs it for a fresh home (``~/.clawhub``, tokens required), and
    a folder laid out like the repository (``.venv`` = this environment)."""
    home = tmp_path / "home"
    settings = HubSettings(
        data_dir=home / ".clawhub",
        heartbeat_interval=0.3,
        accept_timeout=3.0,
        sweep_interval=0.05,
        decline_backoff=0.1,
        token_refresh=0.2,
        gateway_port=0,
    )
    server = HubProcess(settings)
    await server.start()
    work = tmp_path / "clawhub"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.prefix))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLAWHUB_")}
    env = {**clean, "HOME": str(home), "PY": sys.executable}
    try:
        yield Checkout(server, work, env)
    finally:
        await server.stop()


def test_the_page_marks_both_commands() -> None:
    blocks = marked_blocks()
    assert set(blocks) == {"stdio", "http"}
    assert all(b.lstrip().startswith("claude mcp add") for b in blocks.values())


async def test_the_stdio_command_as_pasted(checkout: Checkout) -> None:
    """As the person of the token (ann): submit a task that needs a human's review, an SDK
    agent does it, ann approves it."""
    config = checkout.paste(marked_blocks()["stdio"])
    assert config.transport == "stdio" and config.name == "clawhub"
    assert Path(config.command[0]).name == "clawhub" and config.command[1:] == ["mcp"]
    token = config.env["CLAWHUB_TOKEN"]
    await checkout.knows(token)
    server = checkout.server
    agent_token, _ = await server.create_token("default", "agent", "noter")
    agent = Agent("noter", id="noter", skills={"writing": 0.9})

    @agent.handler
    async def write(ctx: TaskContext) -> object:
        return {"notes": f"release notes for {ctx.input}"}

    await agent.start(server.url, token=agent_token)
    hub = server.hubs["default"]
    try:
        # Claude Code passes its own environment (HOME) plus --env
        env = {"HOME": checkout.env["HOME"], **config.env}
        async with stdio_session(env, command=config.command[0], args=config.command[1:]) as mcp:
            task = await call(
                mcp,
                "submit_task",
                title="Write release notes",
                skills={"writing": 0.5},
                input="v0.2",
                human_review=True,
            )
            task_id = task["task_id"]
            await until(lambda: hub.board.tasks[task_id].state is TaskState.NEEDS_HUMAN)
            decided = await call(mcp, "approve_result", task_id=task_id, reason="good")
            assert decided["state"] == "done"
            status = await call(mcp, "task_status", task_id=task_id)
            assert status["output"] == {"notes": "release notes for v0.2"}
    finally:
        await agent.stop()


async def test_the_http_command_as_pasted(checkout: Checkout) -> None:
    """As a worker of its own (claude-1): join, take the task, submit it; it is done."""
    config = checkout.paste(marked_blocks()["http"])
    server = checkout.server
    assert config.transport == "http" and config.name == "clawhub-worker"
    assert config.url == f"{server.gateway_url}/mcp"
    scheme, _, token = config.headers["Authorization"].partition(" ")
    assert scheme == "Bearer"
    await checkout.knows(token)
    admin = server.admin_tokens["default"]
    hub = server.hubs["default"]
    async with http_session(config.url, token) as worker, http_session(config.url, admin) as boss:
        joined = await call(worker, "join_group", skills={"review": 0.8})
        assert joined["agent_id"] == "claude-1"
        task_id = (await call(boss, "submit_task", title="Review", skills={"review": 0.5}))[
            "task_id"
        ]
        taken = await call(worker, "take_next_task", wait_seconds=20)
        assert taken["task"]["task_id"] == task_id
        done = await call(worker, "submit_result", task_id=task_id, output="LGTM")
        assert done["state"] == "done"
    assert hub.board.tasks[task_id].status().history[-1].agent_id == "claude-1"


async def until(check: object, timeout: float = WAIT) -> None:
    """Poll ``check`` until it holds."""
    assert callable(check)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
