"""Every example runs in a test (STYLE item 11): as a real process against a real hub,
and its handlers through ``agents_sdk.testing`` with no hub at all (STYLE item 9)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import pytest
from nats.aio.msg import Msg

from agents_sdk import Agent, HubClient
from agents_sdk.testing import run_task
from clawhub.runtime import Hub
from protocols import AgentInfo, Event, TaskSpec, TaskState, decode, subjects

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

GREETING = "Claw Hub matches work to agents."
NEWS = "Agents join from any device. Humans too."


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` by path (the repo root need not be on sys.path)."""
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_log(path: Path) -> str:
    """A process's log (shown when an assertion fails)."""
    return path.read_text(errors="replace")


@contextlib.asynccontextmanager
async def example_process(
    script: str, log: Path, *args: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run ``examples/<script>`` as its own process; killed at the end if still alive."""
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLES / script),
            *args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def wait_listed(
    client: HubClient,
    agent_id: str,
    proc: asyncio.subprocess.Process,
    log: Path,
    within: float = 20.0,
) -> AgentInfo:
    """Poll the hub until ``agent_id`` is online (fail early if the process died)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for info in await client.agents():
            if info.profile.id == agent_id:
                return info
        if proc.returncode is not None:
            pytest.fail(f"{agent_id} exited with {proc.returncode}:\n{read_log(log)}")
        await asyncio.sleep(0.1)
    pytest.fail(f"{agent_id} never joined within {within:g}s:\n{read_log(log)}")


async def stop_and_check_left(
    client: HubClient, agent_id: str, proc: asyncio.subprocess.Process, log: Path
) -> None:
    """SIGTERM the agent: it exits 0 and the hub lists it as ``left``."""
    proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(proc.wait(), 20)
    assert code == 0, read_log(log)
    gone = {a.profile.id: a for a in await client.agents(include_gone=True)}
    assert gone[agent_id].state == "left"
    assert agent_id not in {a.profile.id for a in await client.agents()}


@contextlib.asynccontextmanager
async def progress_feed(client: HubClient) -> AsyncIterator[list[Event]]:
    """Collect the group's ``task.progress`` events (they are live-only, not stored)."""
    seen: list[Event] = []

    async def on_event(msg: Msg) -> None:
        event = decode(msg.data, Event)
        if event.kind == "task.progress":
            seen.append(event)

    sub = await client.nc.subscribe(subjects.all_events(client.group), cb=on_event)
    await client.nc.flush()
    try:
        yield seen
    finally:
        await sub.unsubscribe()


# -- as real processes against a running hub ---------------------------------------------------


async def test_echo_agent_example_serves_a_hub(hub: Hub, tmp_path: Path) -> None:
    log = tmp_path / "echo.log"
    async with (
        example_process("echo_agent.py", log, "--url", hub.url, "--id", "echo-ex") as proc,
        HubClient(hub.url) as client,
    ):
        info = await wait_listed(client, "echo-ex", proc, log)
        assert info.profile.skills == {"text": 0.8}
        assert info.profile.model is None
        async with progress_feed(client) as progress:
            [tid] = await client.submit(
                TaskSpec(title="shout", skills={"text": 0.5}, input={"text": "Hello hub"})
            )
            status = await client.wait(tid, timeout=20)
        assert status.state is TaskState.DONE, status.error
        assert status.output == {"text": "HELLO HUB", "reversed": "BUH OLLEH", "length": 9}
        assert [h.agent_id for h in status.history if h.outcome == "done"] == ["echo-ex"]
        fractions = [e.data["fraction"] for e in progress if e.task_id == tid]
        assert fractions == [0.5, 1.0]
        await stop_and_check_left(client, "echo-ex", proc, log)


async def test_summarizer_example_serves_a_hub(hub: Hub, tmp_path: Path) -> None:
    log = tmp_path / "summarizer.log"
    text = "NATS moves messages. The hub matches work! Does it scale? Yes."
    async with (
        example_process("summarizer_agent.py", log, "--url", hub.url, "--id", "sum-ex") as proc,
        HubClient(hub.url) as client,
    ):
        info = await wait_listed(client, "sum-ex", proc, log)
        assert info.profile.skills == {"summarize": 0.7}
        async with progress_feed(client) as progress:
            [tid] = await client.submit(
                TaskSpec(title="sum up", skills={"summarize": 0.5}, input=text)
            )
            status = await client.wait(tid, timeout=20)
        assert status.state is TaskState.DONE, status.error
        assert status.output == {
            "summary": "NATS moves messages.",
            "sentences": 4,
            "words": 11,
            "model": None,
        }
        # the sync handler's progress_nowait messages all arrive, in order
        messages = [e.message for e in progress if e.task_id == tid]
        assert messages == ["reading", f"summarizing {len(text)} characters", "done"]
        await stop_and_check_left(client, "sum-ex", proc, log)


async def test_example_agent_without_hub_exits_1_with_a_message(tmp_path: Path) -> None:
    log = tmp_path / "echo.log"
    args = ("--url", "nats://127.0.0.1:1", "--id", "lonely", "--start-timeout", "1")
    async with example_process("echo_agent.py", log, *args) as proc:
        code = await asyncio.wait_for(proc.wait(), 30)
    out = read_log(log)
    assert code == 1, out
    assert "echo agent:" in out
    assert "Traceback" not in out


async def test_submit_graph_example_against_example_agents(hub: Hub, tmp_path: Path) -> None:
    echo = load_example("echo_agent").build("echo-g")
    summarizer = load_example("summarizer_agent").build("sum-g")
    assert isinstance(echo, Agent) and isinstance(summarizer, Agent)
    await asyncio.gather(echo.start(hub.url), summarizer.start(hub.url))
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLES / "submit_graph.py"),
            "--url",
            hub.url,
            "--id",
            "g1",
            "--timeout",
            "30",
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        raw, _ = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await asyncio.gather(echo.stop(), summarizer.stop())
    out = raw.decode()
    assert proc.returncode == 0, out
    lines = out.strip().splitlines()
    assert lines[0] == "submitted 3 tasks (run g1)"
    rows = {line.split()[0]: line.split(maxsplit=3) for line in lines[1:]}
    assert set(rows) == {"hello", "news", "digest"}
    assert rows["hello"][1:3] == ["done", "echo-g"]
    assert rows["news"][1:3] == ["done", "echo-g"]
    assert rows["digest"][1:3] == ["done", "sum-g"]
    assert '"text": "CLAW HUB MATCHES WORK TO AGENTS."' in rows["hello"][3]
    # the summary was made from both dependencies' outputs, in task-id order
    assert rows["digest"][3] == (
        '{"model": null, "sentences": 3, "summary": "CLAW HUB MATCHES WORK TO AGENTS.", '
        '"words": 13}'
    )
    async with HubClient(hub.url) as client:
        digest = await client.task("g1-digest")
    assert digest.state is TaskState.DONE
    assert digest.spec.depends_on == ["g1-hello", "g1-news"]


def test_submit_graph_without_hub_exits_1() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "submit_graph.py"),
            "--url",
            "nats://127.0.0.1:1",
            "--request-timeout",
            "1",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.startswith("submit_graph:")
    assert "Traceback" not in proc.stderr


# -- the handlers with no hub (agents_sdk.testing) ----------------------------------------------


async def test_echo_handler_locally() -> None:
    agent = load_example("echo_agent").build("echo-local")
    run = await run_task(agent, input="abc", skills={"text": 0.5})
    assert run.ok, run.error
    assert run.output == {"text": "ABC", "reversed": "CBA", "length": 3}
    assert run.fractions == [0.5, 1.0]
    bad = await run_task(agent, input={"words": 3})
    assert not bad.ok
    assert bad.error is not None and bad.error.startswith("ValueError: input must be")


async def test_summarizer_handler_locally_with_dependencies() -> None:
    agent = load_example("summarizer_agent").build("sum-local")
    run = await run_task(
        agent,
        skills={"summarize": 0.5},
        deps={"b": {"text": "Second part."}, "a": {"text": "First part. More."}, "c": 7},
    )
    assert run.ok, run.error
    assert run.handler is not None and run.handler.endswith("summarize")
    assert run.output == {"summary": "First part.", "sentences": 3, "words": 5, "model": None}
    assert run.fractions == [0.1, 0.6, 1.0]
    empty = await run_task(agent, skills={"summarize": 0.5})
    assert not empty.ok
    assert "nothing to summarize" in (empty.error or "")


def test_graph_is_valid_and_wired() -> None:
    module = load_example("submit_graph")
    graph: list[TaskSpec] = module.build_graph("r1")
    ids = [t.id for t in graph]
    assert ids == ["r1-hello", "r1-news", "r1-digest"]
    assert graph[2].depends_on == ["r1-hello", "r1-news"]
    assert {s for t in graph for s in t.skills} == {"text", "summarize"}


@pytest.mark.parametrize("name", ["echo_agent", "summarizer_agent", "submit_graph"])
def test_examples_import_without_side_effects(name: str) -> None:
    code = (
        "import importlib.util, sys, threading\n"
        f"spec = importlib.util.spec_from_file_location('ex', {str(EXAMPLES / name)!r} + '.py')\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "assert callable(module.main)\n"
        "print(threading.active_count())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "1\n"  # nothing printed, no thread started
    assert proc.stderr == ""


@pytest.mark.parametrize("name", ["echo_agent", "summarizer_agent", "submit_graph"])
def test_examples_have_help(name: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for option in ("--url", "--group", "--id"):
        assert option in proc.stdout


def test_every_example_is_run_by_a_test() -> None:
    """STYLE 11: every example runs in a test: each ``examples/*.py`` is named by a test
    module (as ``name.py`` or as the quoted name ``load_example``/``run_example`` take)."""
    names = sorted(p.stem for p in EXAMPLES.glob("*.py") if p.stem != "__init__")
    sources = {p.name: p.read_text() for p in Path(__file__).parent.glob("*.py")}
    unrun = [
        n
        for n in names
        if not any(f"{n}.py" in text or f'"{n}"' in text for text in sources.values())
    ]
    assert names and not unrun, f"examples no test runs: {unrun}"
