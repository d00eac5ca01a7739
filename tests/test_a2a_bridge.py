"""The A2A bridge, inward: a real A2A agent (the a2a-sdk server under uvicorn, in its own
process: ``tests/a2a_agent_proc.py``) joins a real hub (nats-server, SQLite) as a worker
through ``clawhub.bridges.a2a.A2ABridge`` and the a2a-sdk client, over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from conftest import MakeHub
from typer.testing import CliRunner

from agents_sdk import Agent, HubClient, TaskContext
from clawhub.bridges.a2a import A2ABridge
from clawhub.cli.app import app
from clawhub.runtime import Hub
from protocols import AgentInfo, Event, TaskSpec, TaskState

AGENT = Path(__file__).with_name("a2a_agent_proc.py")
WAIT = 90.0  # the machine is loaded: waits are generous, never timed assertions

Remote = Callable[..., Awaitable[tuple[str, asyncio.subprocess.Process]]]


@pytest.fixture
async def remote() -> AsyncIterator[Remote]:
    """Start ``tests/a2a_agent_proc.py`` with the given arguments: ``(base url, process)``."""
    procs: list[asyncio.subprocess.Process] = []

    async def start(*args: str) -> tuple[str, asyncio.subprocess.Process]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(AGENT),
            *args,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), WAIT)
        assert line.startswith(b"READY "), line
        return line.split()[1].decode(), proc

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


@contextlib.asynccontextmanager
async def bridged(url: str, hub: Hub, **options: object) -> AsyncIterator[A2ABridge]:
    options = {"poll_interval": 0.3, "lost_after": 2, **options}
    bridge = A2ABridge(url, hub_url=hub.url, **options)  # type: ignore[arg-type]
    await bridge.start()
    try:
        yield bridge
    finally:
        await bridge.stop()


def spare_agent() -> Agent:
    """An SDK agent with the same skill: where reassigned work goes."""
    agent = Agent("spare", id="spare", skills={"text": 0.5})

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        await ctx.progress(1.0, "done")
        return {"by": "spare"}

    return agent


async def truthy(value: Awaitable[object]) -> bool:
    return bool(await value)


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not await check():
        assert loop.time() < deadline, f"no {what} within {WAIT}s"
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def progress_lines(client: HubClient) -> AsyncIterator[dict[str, list[str]]]:
    """The progress lines of every task while inside (``task.progress`` events are
    published, not stored), by task id."""
    lines: dict[str, list[str]] = {}

    async def listen() -> None:
        async for event in client.events(["task.progress"]):
            lines.setdefault(event.task_id or "", []).append(event.message)

    listening = asyncio.create_task(listen())
    await asyncio.sleep(0.2)  # subscribed (the first events come after a submit anyway)
    try:
        yield lines
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening


async def running_on(client: HubClient, task_id: str, agent_id: str) -> bool:
    status = await client.task(task_id)
    return status.state is TaskState.RUNNING and status.assigned_to == agent_id


# -- the happy paths -----------------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "polling"])
async def test_a_task_runs_through_an_a2a_agent_to_done(
    make_hub: MakeHub, remote: Remote, streaming: bool
) -> None:
    hub = await make_hub()
    url, _ = await remote("--name", "Echo Agent", *([] if streaming else ["--no-streaming"]))
    async with bridged(url, hub, skills={"text": 0.8}, model="none") as bridge:
        assert bridge.agent_id == "echo-agent"  # the card's name, as an id
        async with HubClient(hub.url) as client, progress_lines(client) as progress:
            [info] = await client.agents()
            assert info.profile.name == "Echo Agent"
            assert info.profile.skills == {"text": 0.8}
            assert "provider:Test Org" in info.profile.labels
            [tid] = await client.submit(
                TaskSpec(
                    title="Shout",
                    instructions="echo it",
                    skills={"text": 0.5},
                    input={"text": "hello"},
                )
            )
            status = await client.wait(tid, timeout=WAIT)
            assert status.state is TaskState.DONE, status
            assert status.history[-1].agent_id == "echo-agent"
            assert status.output == {
                "echo": "Shout\n\necho it",
                "data": {"input": {"text": "hello"}},
            }
            lines = progress[tid]
            assert lines[-1] == "a2a completed", lines
            if streaming:  # every status on the stream; polling sees only what it reads
                assert "a2a working: working on it" in lines, lines


async def test_a_streamed_task_reports_each_status_and_artifact_chunk(
    make_hub: MakeHub, remote: Remote
) -> None:
    hub = await make_hub()
    url, _ = await remote("--mode", "slow", "--steps", "3")
    async with bridged(url, hub), HubClient(hub.url) as client, progress_lines(client) as progress:
        [tid] = await client.submit(TaskSpec(title="story", skills={"text": 0.5}))
        status = await client.wait(tid, timeout=WAIT)
        assert status.state is TaskState.DONE, status
        assert status.output == {
            "text": "part 1;part 2;part 3;",
            "artifacts": [{"name": "story", "parts": [{"text": f"part {i};"} for i in (1, 2, 3)]}],
        }
        lines = progress[tid]
        for step in (1, 2, 3):
            assert f"a2a working: step {step}" in lines, lines
        assert lines.count("a2a artifact story") == 3, lines


async def test_input_required_asks_in_the_chat_and_the_reply_goes_back(
    make_hub: MakeHub, remote: Remote
) -> None:
    hub = await make_hub()
    url, _ = await remote("--mode", "ask", "--question", "Which language?")
    async with bridged(url, hub) as bridge, HubClient(hub.url) as client:
        [tid] = await client.submit(TaskSpec(title="greet", skills={"text": 0.5}))

        async def asked() -> bool:
            chat = [e for e in await client.history(task_id=tid) if e.kind == "chat.message"]
            return any("Which language?" in e.message for e in chat)

        await until(asked, "question in the chat")
        status = await client.task(tid)
        assert status.state is TaskState.RUNNING  # the attempt is held while it waits
        await client.chat("ann", "French, please", task_id=tid)
        status = await client.wait(tid, timeout=WAIT)
        assert status.state is TaskState.DONE, status
        assert status.output == {"answer": "French, please"}
        [question] = [
            e
            for e in await client.history(task_id=tid)
            if e.kind == "chat.message" and e.agent_id == bridge.agent_id
        ]
        assert f"clawhub chat --task {tid}" in question.message


async def test_a_task_the_remote_fails_is_an_error_result(
    make_hub: MakeHub, remote: Remote
) -> None:
    hub = await make_hub()
    url, _ = await remote("--mode", "fail")
    async with bridged(url, hub), HubClient(hub.url) as client:
        [tid] = await client.submit(TaskSpec(title="x", skills={"text": 0.5}, max_attempts=1))
        status = await client.wait(tid, timeout=WAIT)
        assert status.state is TaskState.FAILED, status
        assert "ended failed: a2a failed: cannot do this" in (status.error or ""), status.error


# -- what A2A lacks: liveness, stalls, fencing --------------------------------------------------


async def test_the_agent_killed_mid_task_is_lost_and_its_task_reassigned(
    make_hub: MakeHub, remote: Remote
) -> None:
    hub = await make_hub()
    url, proc = await remote("--mode", "hang", "--hang-seconds", "600")
    spare = spare_agent()
    async with bridged(url, hub) as bridge, HubClient(hub.url) as client:
        [tid] = await client.submit(TaskSpec(title="long", skills={"text": 0.5}))
        await until(lambda: running_on(client, tid, bridge.agent_id), "task running remotely")
        proc.kill()
        await proc.wait()
        await spare.start(hub.url)
        try:
            status = await client.wait(tid, timeout=WAIT)
        finally:
            await spare.stop()
        assert status.state is TaskState.DONE, status
        assert status.output == {"by": "spare"}
        assert [h.outcome for h in status.history] == ["lost", "done"]
        assert status.history[0].agent_id == bridge.agent_id
        await hub.durable()
        kinds = [
            e.kind
            for e in hub.store.events(hub.group, kind="agent.")
            if e.agent_id == bridge.agent_id
        ]
        assert "agent.lost" in kinds and "agent.left" not in kinds
        assert not bridge.online

        # the agent comes back on the same address: the participant registers again
        port = url.rsplit(":", 1)[1]
        await remote("--mode", "answer", "--port", port)

        async def online() -> bool:
            agents: list[AgentInfo] = await client.agents()
            return any(a.profile.id == bridge.agent_id and a.state == "online" for a in agents)

        await until(online, "the bridged agent back online")
        [again] = await client.submit(TaskSpec(title="again", skills={"text": 0.5}))
        status = await client.wait(again, timeout=WAIT)
        assert status.state is TaskState.DONE and status.history[-1].agent_id == bridge.agent_id


async def test_a_silent_agent_is_stalled_reassigned_and_its_late_answer_refused(
    make_hub: MakeHub, remote: Remote
) -> None:
    hub = await make_hub(stall_timeout=2.0)
    url, _ = await remote("--mode", "hang", "--hang-seconds", "6")
    spare = spare_agent()
    async with bridged(url, hub, cancel_timeout=WAIT) as bridge, HubClient(hub.url) as client:
        [tid] = await client.submit(TaskSpec(title="slow", skills={"text": 0.5}))
        await until(lambda: running_on(client, tid, bridge.agent_id), "task running remotely")
        await spare.start(hub.url)
        try:
            status = await client.wait(tid, timeout=WAIT)

            async def refused() -> list[Event]:
                return [
                    e
                    for e in await client.history(kind="message.refused")
                    if e.agent_id == bridge.agent_id and tid in e.message
                ]

            await until(lambda: truthy(refused()), "the late answer refused")
        finally:
            await spare.stop()
        assert status.state is TaskState.DONE, status
        assert status.output == {"by": "spare"}
        assert [h.outcome for h in status.history] == ["stalled", "done"]
        [late] = await refused()
        assert late.data.get("code") == "stale_attempt", late
        assert "attempt 1 of task" in late.message and "was stalled" in late.message, late
        assert (await client.task(tid)).output == {"by": "spare"}  # the late answer changed nothing


# -- bad input -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_card_url_that_is_no_card_or_unreachable_fails_clearly(remote: Remote) -> None:
    runner = CliRunner()
    dead = f"http://127.0.0.1:{free_port()}"
    bad, _ = await remote("--garbage")
    for url, words in ((dead, "no A2A agent card at"), (bad, "is not a usable A2A agent card")):
        result = await asyncio.to_thread(
            runner.invoke, app, ["bridge", "a2a", url, "--url", "nats://127.0.0.1:1"]
        )
        said = " ".join(result.output.split())  # rich wraps long lines
        assert result.exit_code == 1, result.output
        assert said.startswith("error: ") and words in said, said
        assert "Traceback" not in result.output
