"""The first hour of a new user (issue 12), as one would live it: ``clawhub up --no-auth`` on
a fresh HOME, the examples with no ``--url``, the CLI, and the errors met on the way
(connection causes, permission refusals, validation and a task waiting for a human).

Real processes (``clawhub up``, the examples, the CLI) against a real hub; nothing mocked."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agents_sdk import (
    Agent,
    HubClient,
    HubUnavailable,
    RequestRefused,
    SDKError,
    TaskContext,
    local_hub_url,
)
from clawhub.gateway.process import HubProcess
from clawhub.runtime import Hub
from clawhub.store import Store
from protocols import AgentList, ErrorCode, TaskSpec, TaskState, ValidationStep

ROOT = Path(__file__).resolve().parent.parent
CLI = (sys.executable, "-m", "clawhub.cli")
DEAD_URL = "nats://127.0.0.1:1"
BAD_TOKEN = "tk-nobody." + "x" * 24

#: Generous: the machine may be busy; each wait ends as soon as its condition holds.
DEADLINE = 60.0


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    """SQLite only: the CLI and the SDK are the subject here, not the database."""
    return sqlite_store


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A new user: a HOME of their own, no CLAWHUB_* settings, wide tables."""
    home = tmp_path / "home"
    home.mkdir()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLAWHUB_")}
    return {**clean, "HOME": str(home), "COLUMNS": "200"}


def clawhub(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``clawhub ARGS`` as a user types it."""
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
        check=False,
    )


def example(env: dict[str, str], script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python examples/SCRIPT ARGS`` to its end."""
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=180,
        check=False,
    )


def shown(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


@contextlib.contextmanager
def background(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running process (``clawhub up``, an agent); SIGTERM, then kill, at the end."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for(
    what: str, check: object, procs: dict[str, tuple[subprocess.Popen[bytes], Path]]
) -> None:
    """Poll ``check()`` until true; fail at once (with the logs) if a process died."""
    assert callable(check)
    deadline = time.monotonic() + DEADLINE
    while not check():
        for name, (proc, log) in procs.items():
            if proc.poll() is not None:
                pytest.fail(
                    f"{name} exited {proc.returncode} while waiting for {what}:\n"
                    f"{log.read_text(errors='replace')}"
                )
        if time.monotonic() > deadline:
            logs = "\n".join(
                f"--- {n}\n{log.read_text(errors='replace')}" for n, (_, log) in procs.items()
            )
            pytest.fail(f"no {what} within {DEADLINE:g}s:\n{logs}")
        time.sleep(0.1)


# -- clawhub up --no-auth on a fresh HOME: the README paths, pasted ----------------------------


def test_no_auth_hub_serves_the_cli_and_the_examples_with_no_url(
    env: dict[str, str], tmp_path: Path
) -> None:
    hub_file = Path(env["HOME"]) / ".clawhub" / "hub.json"
    procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    with contextlib.ExitStack() as stack:
        log = tmp_path / "up.log"
        up = stack.enter_context(background([*CLI, "up", "--no-auth"], env, log))
        procs["clawhub up"] = (up, log)

        def hub_ready() -> bool:
            with contextlib.suppress(OSError, ValueError):
                return bool(json.loads(hub_file.read_text()).get("pid") == up.pid)
            return False

        wait_for("hub.json", hub_ready, procs)
        info = json.loads(hub_file.read_text())
        assert info["auth"] is False and info["token"]  # the token is for the gateway

        # the client commands find the hub and send no token the server would refuse
        for command in (["agents"], ["group"], ["tasks"]):
            run = clawhub(env, *command)
            assert run.returncode == 0, shown(run)
            assert "Authorization" not in run.stderr

        # the examples find it too: no --url, no token
        for name in ("echo_agent", "summarizer_agent"):
            log = tmp_path / f"{name}.log"
            cmd = [sys.executable, str(ROOT / "examples" / f"{name}.py")]
            procs[name] = (stack.enter_context(background(cmd, env, log)), log)

        def both_joined() -> bool:
            run = clawhub(env, "agents", "--json")
            ids = [a.profile.id for a in AgentList.model_validate_json(run.stdout).agents]
            return any(i.startswith("echo-") for i in ids) and any(
                i.startswith("summarizer-") for i in ids
            )

        wait_for("echo and summarizer agents", both_joined, procs)

        run = clawhub(
            env, "submit", "shout", "-s", "text=0.5", "--input", '{"text": "hello"}', "--wait"
        )
        assert run.returncode == 0, shown(run)
        assert "done" in run.stdout

        graph = example(env, "submit_graph.py", "--timeout", "120")
        assert graph.returncode == 0, shown(graph)
        assert "digest  done" in graph.stdout

        # the goal walkthrough: a given plan, from the CLI and from the example script
        plan = str(ROOT / "examples" / "goal_plan.yaml")
        goal = clawhub(env, "goal", "Shout and sum up", "--plan", plan, "--wait")
        assert goal.returncode == 0, shown(goal)
        ran = example(env, "run_goal.py", "--plan", plan, "--timeout", "120")
        assert ran.returncode == 0, shown(ran)
        assert ran.stdout.splitlines()[-2].startswith("done: 3/3 tasks")


def test_local_hub_url_reads_the_environment_then_hub_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLAWHUB_NATS_URL", raising=False)
    monkeypatch.setenv("CLAWHUB_DATA_DIR", str(tmp_path))
    with pytest.raises(HubUnavailable, match="clawhub up"):
        local_hub_url()
    (tmp_path / "hub.json").write_text(json.dumps({"url": "nats://127.0.0.1:5555"}))
    assert local_hub_url() == "nats://127.0.0.1:5555"
    monkeypatch.setenv("CLAWHUB_NATS_URL", "nats://10.0.0.1:6222")
    assert local_hub_url() == "nats://10.0.0.1:6222"


# -- connection errors say why -----------------------------------------------------------------


async def test_sdk_connection_errors_name_the_cause(hub_server: HubProcess) -> None:
    assert hub_server.gateway_url is not None
    cases = {
        hub_server.url: "bad credentials (authorization violation)",
        DEAD_URL: "nothing listening there (connection refused)",
        hub_server.gateway_url: "use the nats:// URL that `clawhub up` prints",
    }
    for url, cause in cases.items():
        with pytest.raises(HubUnavailable) as raised:
            async with HubClient(url, group="alpha", timeout=2, token=BAD_TOKEN):
                pass
        assert cause in str(raised.value), (url, str(raised.value))
        agent = Agent("lost", id="lost", skills={"x": 0.5}, group="alpha")
        with pytest.raises(HubUnavailable) as raised:
            await agent.start(url, timeout=2, token=BAD_TOKEN)
        assert cause in str(raised.value), (url, str(raised.value))


async def test_cli_connection_errors_name_the_cause(
    hub_server: HubProcess, env: dict[str, str]
) -> None:
    assert hub_server.gateway_url is not None
    cases = {
        hub_server.url: "bad credentials (authorization violation)",
        DEAD_URL: "nothing listening there (connection refused)",
        hub_server.gateway_url: "use the nats:// URL that `clawhub up` prints",
    }
    for url, cause in cases.items():
        with_token = {**env, "CLAWHUB_TOKEN": BAD_TOKEN}
        run = await asyncio.to_thread(
            clawhub, with_token, "agents", "--url", url, "--group", "alpha"
        )
        assert run.returncode == 1, shown(run)
        assert cause in " ".join(run.stderr.split()), shown(run)
        assert "Traceback" not in run.stderr


# -- a NATS permission refusal is `forbidden`, at once -----------------------------------------


async def test_a_permission_refusal_is_forbidden_not_a_timeout(
    hub_server: HubProcess, env: dict[str, str]
) -> None:
    hub = hub_server.hubs["alpha"]
    [task_id] = hub.board.submit([TaskSpec(title="keep", skills={"rare": 1.0})])
    agent_token, _ = await hub_server.create_token("alpha", "agent", "worker")

    # the SDK: a long timeout, so a refusal that went unnoticed would be RequestTimeout
    async with HubClient(hub_server.url, group="alpha", token=agent_token, timeout=60) as client:
        with pytest.raises(RequestRefused) as raised:
            await client.cancel(task_id, "an agent may not")
        assert raised.value.code is ErrorCode.FORBIDDEN, raised.value
        assert (await client.task(task_id)).state is TaskState.READY  # still usable

    # the CLI: an agent token running a human's command
    with_token = {**env, "CLAWHUB_TOKEN": agent_token}
    run = await asyncio.to_thread(
        clawhub, with_token, "approve", task_id, "--url", hub_server.url, "--group", "alpha"
    )
    assert run.returncode == 1, shown(run)
    assert "forbidden" in run.stderr, shown(run)
    assert "did not answer" not in run.stderr
    assert hub.board.tasks[task_id].state is TaskState.READY


async def test_an_agent_says_when_nats_refuses_its_inbox(
    hub_server: HubProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="agents_sdk")
    token, _ = await hub_server.create_token("alpha", "agent", "worker")
    agent = Agent("other", id="other", skills={"x": 0.5}, group="alpha")  # not the token's id

    def warned() -> bool:
        return any(
            "permissions violation for subscription" in r.getMessage().lower()
            for r in caplog.records
        )

    try:
        with contextlib.suppress(SDKError):  # the hub may refuse the id, or take it
            await agent.start(hub_server.url, token=token, timeout=10)
        deadline = time.monotonic() + DEADLINE
        while not warned():
            assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
            await asyncio.sleep(0.05)
    finally:
        await agent.stop()


# -- clawhub submit: --validate, a task waiting for a human, skills with levels ---------------


@contextlib.asynccontextmanager
async def worker(url: str) -> AsyncIterator[Agent]:
    agent = Agent("first-hour", id="first-hour", skills={"text": 0.9})

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        await ctx.progress(1.0, "echoed")
        return {"echo": ctx.input}

    await agent.start(url)
    try:
        yield agent
    finally:
        await agent.stop()


async def test_submit_validate_and_wait_for_a_human(hub: Hub, env: dict[str, str]) -> None:
    async with worker(hub.url):
        run = await asyncio.to_thread(
            clawhub,
            env,
            *("submit", "check me", "-s", "text=0.5", "--input", '"hi"'),
            *("--validate", "human", "--wait", "--timeout", "3", "--url", hub.url),
        )
        assert run.returncode == 3, shown(run)
        task_id = run.stdout.split("submitted ", 1)[1].split()[0]
        said = " ".join(run.stderr.split())
        assert f"task {task_id} waits for a human decision" in said, shown(run)
        assert f"clawhub approve {task_id}" in said
        assert hub.board.tasks[task_id].state is TaskState.NEEDS_HUMAN

        approved = await asyncio.to_thread(clawhub, env, "approve", task_id, "--url", hub.url)
        assert approved.returncode == 0, shown(approved)
        assert hub.board.tasks[task_id].state is TaskState.DONE

    steps = await asyncio.to_thread(
        clawhub,
        env,
        *("submit", "review me", "-s", "text=0.5", "--url", hub.url),
        *("--validate", "reviewer:code-review=0.6", "--validate", "judge:ollama/llama3.2"),
        *("--validate", "schema", "--validate", "human"),
    )
    assert steps.returncode == 0, shown(steps)
    task_id = steps.stdout.split("submitted ", 1)[1].split()[0]
    assert hub.board.tasks[task_id].spec.validation == [
        ValidationStep(kind="reviewer", skill="code-review", level=0.6),
        ValidationStep(kind="judge", model="ollama/llama3.2"),
        ValidationStep(kind="schema"),
        ValidationStep(kind="human"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("submit", "t", "-s", "text"), "bad --skill 'text': give the lowest level"),
        (("submit", "t", "-s", "text="), "text=0 for any level"),
        (("submit", "t", "--validate", "maybe"), "bad --validate 'maybe'"),
        (("submit", "t", "--validate", "human:alice"), "bad --validate 'human:alice'"),
        (("submit", "t", "--validate", "reviewer:review"), "bad --skill 'review'"),
        (("goal", "g", "--validate", "nobody"), "bad --validate 'nobody'"),
    ],
)
def test_bad_submit_options_exit_2(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    run = clawhub(env, *args, "--url", DEAD_URL)
    assert run.returncode == 2, shown(run)
    assert message in " ".join(run.stderr.split())
    assert "Traceback" not in run.stderr
