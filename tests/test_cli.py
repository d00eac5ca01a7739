"""The ``clawhub`` command as a user runs it: real processes against a real hub."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agents_sdk import Agent, HubClient, TaskContext
from clawhub.runtime import Hub
from clawhub.store import Store
from protocols import AgentList, Event, TaskList, TaskSpec, TaskState

ROOT = Path(__file__).resolve().parent.parent
CLI = (sys.executable, "-m", "clawhub.cli")
DEAD_URL = "nats://127.0.0.1:1"


@dataclass
class Run:
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    """The ``hub`` fixture on SQLite only: the CLI is the subject here, not the database
    (both stores are covered by test_store.py and test_e2e.py), and each CLI run costs ~1 s."""
    return sqlite_store


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """No CLAWHUB_* settings from outside, a home of its own, and wide tables."""
    home = tmp_path / "home"
    home.mkdir()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLAWHUB_")}
    return {**clean, "HOME": str(home), "COLUMNS": "200"}


async def clawhub(env: dict[str, str], *args: str, timeout: float = 60) -> Run:
    """Run ``clawhub ARGS`` without blocking the event loop (in-process agents keep serving)."""
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        pytest.fail(f"clawhub {' '.join(args)} still running after {timeout}s:\n{err.decode()}")
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def clawhub_sync(env: dict[str, str], *args: str, timeout: float = 60) -> Run:
    proc = subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


@contextlib.asynccontextmanager
async def worker(url: str, agent_id: str = "cli-worker") -> AsyncIterator[Agent]:
    """An in-process agent with skill ``text`` that echoes its input."""
    agent = Agent(agent_id, id=agent_id, skills={"text": 0.9})

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        await ctx.progress(1.0, "echoed")
        return {"echo": ctx.input}

    await agent.start(url)
    try:
        yield agent
    finally:
        await agent.stop()


# -- against a running hub -----------------------------------------------------------------------


async def test_agents_lists_participants(hub: Hub, env: dict[str, str]) -> None:
    async with worker(hub.url):
        table, raw = await asyncio.gather(
            clawhub(env, "agents", "--url", hub.url),
            clawhub(env, "agents", "--url", hub.url, "--json"),
        )
    assert table.code == 0, table
    assert "cli-worker" in table.out and "online" in table.out and "text 0.9" in table.out
    assert raw.code == 0, raw
    listed = AgentList.model_validate_json(raw.out)
    [info] = listed.agents
    assert info.profile.id == "cli-worker"
    assert info.state == "online"
    assert info.profile.skills == {"text": 0.9}
    assert info.load == 0

    gone = await clawhub(env, "agents", "--url", hub.url, "--json")
    assert AgentList.model_validate_json(gone.out).agents == []
    everyone = await clawhub(env, "agents", "--url", hub.url, "--json", "--all")
    assert [
        (a.profile.id, a.state) for a in AgentList.model_validate_json(everyone.out).agents
    ] == [("cli-worker", "left")]


async def test_submit_and_wait_until_done(hub: Hub, env: dict[str, str]) -> None:
    async with worker(hub.url):
        run = await clawhub(
            env,
            "submit",
            "echo this",
            "--skill",
            "text=0.5",
            "--input",
            '{"x": 1}',
            "--id",
            "cli-t1",
            "--wait",
            "--timeout",
            "30",
            "--url",
            hub.url,
        )
        assert run.code == 0, run
        assert "submitted cli-t1" in run.out
        assert "done" in run.out and "cli-worker" in run.out
        listed, ready, agents = await asyncio.gather(
            clawhub(env, "tasks", "--url", hub.url, "--json"),
            clawhub(env, "tasks", "--url", hub.url, "--state", "ready", "--json"),
            clawhub(env, "agents", "--url", hub.url, "--json"),
        )
    assert listed.code == 0, listed
    [task] = TaskList.model_validate_json(listed.out).tasks
    assert task.id == "cli-t1"
    assert task.state is TaskState.DONE
    assert task.spec.title == "echo this"
    assert task.spec.skills == {"text": 0.5}
    assert task.output == {"echo": {"x": 1}}
    assert [(h.agent_id, h.outcome) for h in task.history] == [("cli-worker", "done")]
    assert TaskList.model_validate_json(ready.out).tasks == []  # filtered by --state
    assert AgentList.model_validate_json(agents.out).agents[0].completed == 1


async def test_events_shows_the_log_of_a_task(hub: Hub, env: dict[str, str]) -> None:
    async with worker(hub.url):
        async with HubClient(hub.url) as client:
            [tid] = await client.submit(TaskSpec(id="logged", title="log me", skills={"text": 0.5}))
            await client.wait(tid, timeout=20)
        lines, raw, revoked = await asyncio.gather(
            clawhub(env, "events", "--task", tid, "--url", hub.url),
            clawhub(env, "events", "--task", tid, "--json", "--url", hub.url),
            clawhub(env, "events", "--kind", "task.revoked", "--url", hub.url),
        )
    assert lines.code == 0, lines
    kinds = [line.split()[2] for line in lines.out.splitlines()]
    assert kinds == ["task.submitted", "task.assigned", "task.done"]  # pushed: one event
    assert "pushed to cli-worker" in lines.out  # an SDK agent on NATS takes credit
    events = [Event.model_validate_json(line) for line in raw.out.splitlines()]
    assert {e.task_id for e in events} == {tid}
    assert [e.kind for e in events] == kinds
    assert revoked.code == 0 and revoked.out.strip() == ""  # nothing was revoked


async def test_tasks_table(hub: Hub, env: dict[str, str]) -> None:
    async with HubClient(hub.url) as client:
        await client.submit(TaskSpec(id="waiting", title="needs a rustacean", skills={"rust": 1}))
    run = await clawhub(env, "tasks", "--url", hub.url)
    assert run.code == 0, run
    row = next(line for line in run.out.splitlines() if "waiting" in line)
    assert "needs a rustacean" in row and "ready" in row


async def test_submit_wait_gives_up_with_exit_1(hub: Hub, env: dict[str, str]) -> None:
    run = await clawhub(
        env, "submit", "nobody can", "--skill", "cobol=1", "--wait", "--timeout", "0.5",
        "--url", hub.url,
    )  # fmt: skip
    assert run.code == 1, run
    assert "not finished after 0.5s" in run.err
    assert "Traceback" not in run.err


async def test_submit_a_graph_from_a_file_then_cancel(
    hub: Hub, env: dict[str, str], tmp_path: Path
) -> None:
    url = hub.url
    graph = tmp_path / "graph.json"
    graph.write_text(
        json.dumps(
            [
                {"id": "g-fetch", "title": "fetch", "skills": {"nobody": 0.5}},
                {"id": "g-report", "title": "report", "depends_on": ["g-fetch"]},
            ]
        )
    )
    run = await clawhub(env, "submit", "--file", str(graph), "--url", hub.url)
    assert run.code == 0, run
    assert run.out.split() == ["submitted", "g-fetch", "submitted", "g-report"]
    listed = TaskList.model_validate_json(
        (await clawhub(env, "tasks", "--json", "--url", hub.url)).out
    )
    assert {t.id: t.state for t in listed.tasks} == {
        "g-fetch": TaskState.READY,
        "g-report": TaskState.PENDING,
    }

    cancel = await clawhub(
        env, "cancel", "g-fetch", "--reason", "changed my mind", "--url", hub.url
    )
    assert cancel.code == 0, cancel
    assert cancel.out.strip() == "g-fetch cancelled"
    async with HubClient(hub.url) as client:
        fetch, report = await client.task("g-fetch"), await client.task("g-report")
    assert fetch.state is TaskState.CANCELLED
    assert "changed my mind" in (fetch.error or "")
    assert report.state is TaskState.FAILED  # its dependency will never be done
    assert "g-fetch" in (report.error or "")

    again, unknown = await asyncio.gather(
        clawhub(env, "cancel", "g-fetch", "--url", url),
        clawhub(env, "cancel", "no-such-task", "--url", url),
    )
    assert again.code == 1, again
    assert "already cancelled" in again.err
    assert unknown.code == 1, unknown
    assert "no-such-task" in unknown.err
    assert "Traceback" not in again.err + unknown.err


async def test_submit_refused_by_the_hub(hub: Hub, env: dict[str, str], tmp_path: Path) -> None:
    graph = tmp_path / "cycle.json"
    graph.write_text(
        json.dumps(
            [
                {"id": "c-a", "title": "a", "depends_on": ["c-b"]},
                {"id": "c-b", "title": "b", "depends_on": ["c-a"]},
            ]
        )
    )
    run = await clawhub(env, "submit", "--file", str(graph), "--url", hub.url)
    assert run.code == 1, run
    assert "refused" in run.err
    assert "Traceback" not in run.err
    async with HubClient(hub.url) as client:
        assert await client.tasks() == []  # nothing of a refused graph was applied


# -- bad input: a clear message, an exit code, never a traceback -------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("submit", "t", "--skill", "python=high"), "bad --skill 'python=high'"),
        (("submit", "t", "--skill", "python=2"), "bad task"),
        (("submit", "t", "--input", "{not json"), "bad task"),
        (("submit", "t", "--id", "has space"), "bad task"),
        (("submit",), "give a TITLE or --file"),
        (("submit", "--file", "/nonexistent/graph.json"), "bad task"),
    ],
)
def test_bad_submit_exits_2(env: dict[str, str], args: tuple[str, ...], message: str) -> None:
    run = clawhub_sync(env, *args, "--url", DEAD_URL)
    assert run.code == 2, run
    assert message in run.err
    assert "Traceback" not in run.err


def test_no_hub_found_without_url(env: dict[str, str]) -> None:
    run = clawhub_sync(env, "agents")
    assert run.code == 1, run
    assert "no running hub found" in run.err
    assert "clawhub up" in run.err
    assert "Traceback" not in run.err


def test_unreachable_url_is_a_clear_error(env: dict[str, str]) -> None:
    try:
        # a hang never ends: the bound is generous for a machine busy enough that starting
        # Python alone takes seconds (seen: 8 s under a load of 18 on 2 cores)
        run = clawhub_sync(env, "tasks", "--url", DEAD_URL, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("`clawhub tasks --url nats://127.0.0.1:1` hangs")
    assert run.code == 1, run
    assert "cannot connect to NATS at nats://127.0.0.1:1" in run.err
    assert "Traceback" not in run.err


def test_up_with_unreachable_nats_url_fails(env: dict[str, str], tmp_path: Path) -> None:
    try:
        run = clawhub_sync(
            {**env, "CLAWHUB_CONNECT_TIMEOUT": "1"},
            "up",
            "--nats-url",
            DEAD_URL,
            "--data-dir",
            str(tmp_path / "d"),
            timeout=90,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("`clawhub up --nats-url nats://127.0.0.1:1` hangs")
    assert run.code == 1, run
    assert "nats://127.0.0.1:1" in run.err
    assert "Traceback" not in run.err


def test_script_entry_point_and_help(env: dict[str, str]) -> None:
    script = Path(sys.executable).parent / "clawhub"
    proc = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    for command in ("up", "agents", "tasks", "submit", "cancel", "schema", "demo"):
        assert command in proc.stdout


# -- clawhub up ----------------------------------------------------------------------------------


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _listening(url: str) -> bool:
    host, port = url.removeprefix("nats://").rsplit(":", 1)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


def test_up_serves_then_stops_cleanly(env: dict[str, str], tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = tmp_path / "up.log"
    with log.open("w") as out:
        up = subprocess.Popen(
            [*CLI, "up", "--data-dir", str(data), "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
        )
    try:
        hub_file = data / "hub.json"
        deadline = time.monotonic() + 120  # a hang guard: a loaded machine starts slowly
        while not hub_file.exists():
            assert up.poll() is None, f"clawhub up exited {up.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no hub.json after 120s:\n{log.read_text()}"
            time.sleep(0.05)
        info = json.loads(hub_file.read_text())
        assert info["pid"] == up.pid
        assert hub_file.stat().st_mode & 0o777 == 0o600  # it holds the admin token
        assert info["auth"] is True and info["tokens"]["default"] == info["token"]
        assert info["gateway"].startswith("http://127.0.0.1:")
        url = info["url"]
        assert url.startswith("nats://127.0.0.1:")
        nats_pid = int((data / "nats" / "nats-server.pid").read_text())
        assert b"nats-server" in Path(f"/proc/{nats_pid}/cmdline").read_bytes()

        # the client finds the hub through hub.json alone
        listed = clawhub_sync(env, "agents", "--data-dir", str(data), "--json")
        assert listed.code == 0, listed
        assert AgentList.model_validate_json(listed.out).agents == []
        tasks = clawhub_sync(env, "tasks", "--data-dir", str(data))
        assert tasks.code == 0, tasks
        assert "Tasks" in tasks.out

        up.send_signal(signal.SIGTERM)
        code = up.wait(30)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    output = log.read_text()
    assert code == 0, output
    assert url in output and "hub stopped" in output
    assert not hub_file.exists()
    deadline = time.monotonic() + 5
    while not _gone(nats_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(nats_pid), "the embedded nats-server outlived `clawhub up`"
    assert not _listening(url)
    assert (data / "clawhub.db").exists()  # the SQLite store stays for the next start


# -- clawhub demo --------------------------------------------------------------------------------


def test_demo_end_to_end(env: dict[str, str]) -> None:
    run = clawhub_sync(env, "demo", "--timeout", "90", timeout=150)
    assert run.code == 0, run
    assert "12/12 tasks done" in run.out, run
    assert "stalled" in run.out and "lost" in run.out
    assert "rejected by reviewer: the error paths are not handled" in run.out
    feed = [line for line in run.out.splitlines() if line.startswith("  task.")]
    assert feed and not [line for line in feed if "None" in line.split()], feed
    assert not [line for line in feed if "reviewer reviewer reviewer" in line], feed
    assert "done" in run.out.split("goal g-")[1].split("\n")[0]
    assert "Traceback" not in run.err


# -- clawhub token -------------------------------------------------------------------------------


def test_token_create_list_revoke(env: dict[str, str], tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    made = clawhub_sync(
        env, "token", "create", "--group", "acme", "--role", "agent", "--agent-id", "bot", *data
    )
    assert made.code == 0, made
    token = made.out.strip().splitlines()[-1]
    token_id = token.split(".")[0]
    assert token_id.startswith("tk-") and len(token.split(".")[1]) >= 16
    listed = clawhub_sync(env, "token", "list", "--json", *data)
    assert listed.code == 0, listed
    [row] = json.loads(listed.out)
    assert row["id"] == token_id and row["group"] == "acme" and row["agent_id"] == "bot"
    assert row["revoked_at"] is None and token.split(".")[1] not in listed.out
    refused = clawhub_sync(env, "token", "create", "--group", "acme", "--role", "agent", *data)
    assert refused.code == 2 and "agent-id" in refused.err
    revoked = clawhub_sync(env, "token", "revoke", token_id, *data)
    assert revoked.code == 0, revoked
    again = clawhub_sync(env, "token", "revoke", token_id, *data)
    assert again.code == 1 and "no live token" in again.err
    assert json.loads(clawhub_sync(env, "token", "list", "--json", *data).out)[0]["revoked_at"]
