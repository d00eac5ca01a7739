"""The NATS agent protocol bridge against real parts: agents served by the Synadia host SDK
(``synadia-ai-agent-service``) in processes of their own on a real nats-server of their
own, a real hub on another, a real SQLite store. Discovery → done; a killed agent → lost and
reassigned; a stream that stops → stalled and reassigned; garbage and error frames → failed
attempts with the reason, the bridge going on; identity: one credential per participant."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import nats
import pytest
from conftest import MakeHub
from nats.micro import add_service
from nats.micro.request import Request
from typer.testing import CliRunner

from agents_sdk import HubClient
from clawhub.bridges.nats_agents import NatsAgentsBridge, participant_id
from clawhub.cli.app import app
from clawhub.gateway import HubProcess
from clawhub.runtime import EmbeddedNats, Hub
from protocols import Constraints, TaskSpec, TaskState, Timeouts

HERE = Path(__file__).resolve().parent
AGENT = HERE / "nats_agent_proc.py"
#: Generous: the machine is loaded; nothing here is a timing assertion.
WAIT = 60.0

StartAgent = Callable[..., Awaitable[asyncio.subprocess.Process]]


@pytest.fixture
def agents_bus(tmp_path: Path) -> EmbeddedNats:
    """The agents' own nats-server (not the hub's), plain, on a free port."""
    server = EmbeddedNats(tmp_path / "agents-nats")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def start_agent(agents_bus: EmbeddedNats, tmp_path: Path) -> AsyncIterator[StartAgent]:
    """Start ``tests/nats_agent_proc.py`` in its own process; wait until it is registered."""
    procs: list[asyncio.subprocess.Process] = []

    async def start(name: str, mode: str = "answer", *extra: str) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(AGENT),
            "--url",
            agents_bus.url,
            "--name",
            name,
            "--mode",
            mode,
            "--runs",
            str(tmp_path / "runs.txt"),
            *extra,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(HERE.parent)},
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), WAIT)
        assert line.startswith(b"ready "), line
        return proc

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


def runs(tmp_path: Path) -> list[list[str]]:
    """``[task_id, attempt, agent name]`` of every prompt the agents got."""
    path = tmp_path / "runs.txt"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


async def until(check: Callable[[], object], what: str, timeout: float = WAIT) -> None:
    """Wait (generously) until ``check()`` is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def pid(name: str) -> str:
    return participant_id("demo", "tests", name)


async def bridge_for(hub_url: str, agents_bus: EmbeddedNats, **options: object) -> NatsAgentsBridge:
    values: dict[str, object] = {"rediscover_interval": 0.5, "discover_wait": 1.0}
    values.update(options)
    bridge = NatsAgentsBridge(hub_url, agents_url=agents_bus.url, **values)  # type: ignore[arg-type]
    await bridge.start()
    return bridge


async def test_a_discovered_agent_joins_with_its_metadata_and_does_a_task(
    make_hub: MakeHub, agents_bus: EmbeddedNats, start_agent: StartAgent, tmp_path: Path
) -> None:
    hub = await make_hub()
    await start_agent("w1", "answer", "--skills", "text=0.8,review", "--model", "ollama/qwen3")
    bridge = await bridge_for(hub.url, agents_bus)
    try:
        await until(lambda: pid("w1") in bridge.participants, "w1 to join")
        assert bridge.participants[pid("w1")] == "agents.prompt.demo.tests.w1"
        async with HubClient(hub.url) as client:
            [info] = await client.agents()
            assert info.profile.id == "demo-tests-w1"
            assert info.profile.name == "demo.tests.w1"
            assert info.profile.skills == {"text": 0.8, "review": 0.5}
            assert info.profile.model == "ollama/qwen3"
            assert "harness:demo" in info.profile.labels
            spec = TaskSpec(title="shout", skills={"text": 0.5}, input={"text": "hello"})
            [tid] = await client.submit(spec)
            status = await client.wait(tid, timeout=WAIT)
        assert status.state is TaskState.DONE, status.history
        assert status.output == {"text": "w1 did: SHOUT"}
        assert runs(tmp_path) == [[tid, "1", "w1"]]
        await hub.durable()
        events = hub.store.events(hub.group, task_id=tid)
        logs = [e.message for e in events if e.kind == "task.log"]
        assert "demo.tests.w1 acknowledged the prompt" in logs
    finally:
        await bridge.stop()


async def test_a_killed_agent_is_lost_and_its_task_reassigned(
    make_hub: MakeHub, agents_bus: EmbeddedNats, start_agent: StartAgent, tmp_path: Path
) -> None:
    hub = await make_hub()
    procs = {name: await start_agent(name, "slow", "--seconds", "3") for name in ("k1", "k2")}
    told: list[tuple[str, str, str]] = []
    bridge = await bridge_for(hub.url, agents_bus, on_change=lambda *a: told.append(a))
    try:
        await until(lambda: len(bridge.participants) == 2, "both agents to join")
        async with HubClient(hub.url) as client:
            [tid] = await client.submit(TaskSpec(title="work", skills={"x": 0.5}))
            await until(lambda: runs(tmp_path), "the first prompt")
            [[_, _, first]] = runs(tmp_path)
            procs[first].send_signal(signal.SIGKILL)  # no goodbye: its heartbeats just stop
            status = await client.wait(tid, timeout=WAIT)
        other = "k2" if first == "k1" else "k1"
        assert status.state is TaskState.DONE, status.history
        assert [h.outcome for h in status.history] == ["lost", "done"]
        assert [h.agent_id for h in status.history] == [pid(first), pid(other)]
        assert status.output["text"].startswith("step 0; ")  # type: ignore[index,call-overload]
        assert pid(first) not in bridge.participants
        [(_, who, why)] = [t for t in told if t[0] == "lost"]
        assert who == pid(first) and why.startswith(f"no heartbeat on agents.hb.demo.tests.{first}")
        await hub.durable()
        lost = [e for e in hub.store.events(hub.group, kind="agent.lost")]
        assert [e.agent_id for e in lost] == [pid(first)]
        # restarted (a new instance on the same subject), it is found and beats: back in
        await start_agent(first, "answer")
        await until(lambda: pid(first) in bridge.participants, f"{first} to come back")
        async with HubClient(hub.url) as client:
            pinned = Constraints(agents=[pid(first)])
            [again] = await client.submit(TaskSpec(title="again", constraints=pinned))
            assert (await client.wait(again, timeout=WAIT)).state is TaskState.DONE
    finally:
        await bridge.stop()


async def test_a_stream_that_stops_is_stalled_and_the_task_reassigned(
    make_hub: MakeHub, agents_bus: EmbeddedNats, start_agent: StartAgent, tmp_path: Path
) -> None:
    """The silent agent still heart-beats and sends keep-alive acks every 0.5 s: it is
    alive but makes no progress, so it is stalled, not lost, and stays in the group."""
    hub = await make_hub()
    await start_agent("mute", "stop", "--skills", "x=0.95")  # the matcher's first choice
    await start_agent("talker", "answer", "--skills", "x=0.55")
    bridge = await bridge_for(hub.url, agents_bus)
    try:
        await until(lambda: len(bridge.participants) == 2, "both agents to join")
        async with HubClient(hub.url) as client:
            spec = TaskSpec(title="think", skills={"x": 0.5}, timeouts=Timeouts(stall=2.0))
            [tid] = await client.submit(spec)
            status = await client.wait(tid, timeout=WAIT)
            agents = {a.profile.id: a for a in await client.agents()}
        assert status.state is TaskState.DONE, status.history
        assert [h.outcome for h in status.history] == ["stalled", "done"]
        assert [h.agent_id for h in status.history] == [pid("mute"), pid("talker")]
        assert status.output == {"text": "talker did: THINK"}
        assert pid("mute") in bridge.participants and pid("mute") in agents
        assert [r[2] for r in runs(tmp_path)] == ["mute", "talker"]
    finally:
        await bridge.stop()


async def test_garbage_and_error_frames_fail_the_attempt_with_the_reason_and_the_bridge_goes_on(
    make_hub: MakeHub, agents_bus: EmbeddedNats, start_agent: StartAgent, tmp_path: Path
) -> None:
    hub = await make_hub()
    await start_agent("junk", "garbage", "--skills", "junk=0.9")
    await start_agent("broke", "fail", "--skills", "broke=0.9")
    bridge = await bridge_for(hub.url, agents_bus)
    try:
        await until(lambda: len(bridge.participants) == 2, "both agents to join")
        async with HubClient(hub.url) as client:
            ids = await client.submit(
                [
                    TaskSpec(title="a", skills={"junk": 0.5}, max_attempts=1),
                    TaskSpec(title="b", skills={"broke": 0.5}, max_attempts=1),
                ]
            )
            junk, broke = [await client.wait(i, timeout=WAIT) for i in ids]
            assert junk.state is TaskState.FAILED and broke.state is TaskState.FAILED
            [attempt] = junk.history
            assert attempt.outcome == "error"
            assert "RemoteAgentError: demo.tests.junk: sent a chunk that is not JSON" in (
                attempt.reason
            )
            assert "RemoteAgentError: demo.tests.broke: service error 500" in (
                broke.history[0].reason
            )
            # the bridge goes on: a new agent still joins and works
            await start_agent("fine", "answer", "--skills", "junk=0.6", "--max-payload", "512KB")
            await until(lambda: pid("fine") in bridge.participants, "fine to join")
            pinned = Constraints(agents=[pid("fine")])
            [tid] = await client.submit(
                TaskSpec(title="c", skills={"junk": 0.5}, constraints=pinned)
            )
            done = await client.wait(tid, timeout=WAIT)
        assert done.state is TaskState.DONE and done.output == {"text": "fine did: C"}
        # an input over the agent's max_payload goes only in the prompt's text, cut to size
        async with HubClient(hub.url) as client:
            big = TaskSpec(title="d", input="x" * 600_000, constraints=pinned)
            [tid] = await client.submit(big)
            assert (await client.wait(tid, timeout=WAIT)).state is TaskState.DONE
        assert {pid("junk"), pid("broke"), pid("fine")} <= set(bridge.participants)
        await hub.durable()
        failed = hub.store.events(hub.group, task_id=ids[0])
        assert any("not JSON" in e.message for e in failed), [e.message for e in failed]
    finally:
        await bridge.stop()


async def test_each_agent_acts_with_its_own_credential_and_none_without_one(
    hub_server: HubProcess, agents_bus: EmbeddedNats, start_agent: StartAgent
) -> None:
    """An agent token for ``demo-tests-alice`` brings alice in; bob has none. With a default
    token that is alice's, the hub refuses bob in her name; with only per-agent tokens,
    the bridge does not even try."""
    alice_token, _ = await hub_server.create_token("alpha", "agent", pid("alice"))
    admin, _ = await hub_server.create_token("alpha", "admin")
    await start_agent("alice")
    await start_agent("bob")
    tokens = {pid("alice"): alice_token}
    for default in (alice_token, None):
        bridge = await bridge_for(
            hub_server.url, agents_bus, group="alpha", token=default, tokens=tokens
        )
        try:
            b = bridge
            await until(lambda b=b: pid("alice") in b.participants, "alice to join")
            await until(lambda b=b: b.refused, "bob to be refused")
            assert list(bridge.participants) == [pid("alice")]
            [(subject, why)] = bridge.refused.items()
            assert subject == "agents.prompt.demo.tests.bob"
            if default is None:
                assert why == f"no token for participant {pid('bob')}"
            else:
                assert f"may act only as {pid('alice')}" in why
            async with HubClient(hub_server.url, group="alpha", token=admin) as client:
                assert [a.profile.id for a in await client.agents()] == [pid("alice")]
                [tid] = await client.submit(TaskSpec(title="hi", skills={"x": 0.5}))
                status = await client.wait(tid, timeout=WAIT)
            assert status.state is TaskState.DONE
            assert status.history[-1].agent_id == pid("alice")
        finally:
            await bridge.stop()


async def test_services_that_are_not_protocol_agents_are_left_out(
    make_hub: MakeHub,
    agents_bus: EmbeddedNats,
    start_agent: StartAgent,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """On the agents' bus: a micro service `agents` with no metadata (not a card), one of
    protocol 0.2, one that takes only signed senders. None joins; the bridge goes on and a
    compliant agent beside them does."""
    hub = await make_hub()
    nc = await nats.connect(agents_bus.url)
    try:

        async def never(request: Request) -> None:
            await request.respond(b"")

        bare = await add_service(nc, name="agents", version="1.0.0", metadata={})
        await bare.add_endpoint(name="prompt", subject="agents.prompt.x.y.bare", handler=never)
        old = await add_service(
            nc,
            name="agents",
            version="1.0.0",
            metadata={"agent": "x", "owner": "y", "protocol_version": "0.2"},
        )
        await old.add_endpoint(name="prompt", subject="agents.x.y.old", handler=never)
        signed = await add_service(
            nc,
            name="agents",
            version="1.0.0",
            metadata={"agent": "x", "owner": "y", "protocol_version": "0.3"},
        )
        await signed.add_endpoint(
            name="prompt",
            subject="agents.prompt.x.y.signed",
            handler=never,
            metadata={"max_payload": "1MB", "attachments_ok": "false"}
            | {"min_sender_trust": "signed"},
        )
        await start_agent("plain")
        bridge = await bridge_for(hub.url, agents_bus)
        try:
            await until(lambda: pid("plain") in bridge.participants, "plain to join")
            await asyncio.sleep(1.5)  # more discovery rounds, and still only "plain"
            assert list(bridge.participants) == [pid("plain")]
            async with HubClient(hub.url) as client:
                assert [a.profile.id for a in await client.agents()] == [pid("plain")]
            told = [m for r in caplog.records if "is not brought in" in (m := r.getMessage())]
            assert len(told) == 2, told  # once each, not once a round
            assert any("agents.x.y.old" in t and "protocol 0.2" in t for t in told)
            assert any("x.y.signed" in t and "only signed senders" in t for t in told)
        finally:
            await bridge.stop()
    finally:
        await nc.close()


async def test_filters_and_flag_skills(
    make_hub: MakeHub, agents_bus: EmbeddedNats, start_agent: StartAgent
) -> None:
    hub: Hub = await make_hub()
    await start_agent("worker-1", "answer", "--skills", "text=0.9")
    await start_agent("other", "answer")
    bridge = await bridge_for(
        hub.url, agents_bus, filters=["worker-*"], skills_from="flag", skills={"ops": 0.7}
    )
    try:
        await until(lambda: bridge.participants, "worker-1 to join")
        await asyncio.sleep(1.5)  # three more discovery rounds: "other" stays out
        assert list(bridge.participants) == [pid("worker-1")]
        async with HubClient(hub.url) as client:
            [info] = await client.agents()
        assert info.profile.skills == {"ops": 0.7}
    finally:
        await bridge.stop()


# -- the docs page, as written ---------------------------------------------------------------

DOCS = HERE.parent / "docs" / "nats-agents.md"


def docs_blocks() -> dict[str, str]:
    """The blocks of docs/nats-agents.md marked ``<!-- nats-agents: NAME -->``, by name."""
    out: dict[str, str] = {}
    lines = DOCS.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("<!-- nats-agents:"):
            name = line.removeprefix("<!-- nats-agents:").removesuffix("-->").strip()
            assert lines[i + 1].startswith("```"), name
            end = lines.index("```", i + 2)
            out[name] = "\n".join(lines[i + 2 : end]) + "\n"
    return out


async def read_until(stream: asyncio.StreamReader, text: str, seen: list[str]) -> None:
    while not any(text in line for line in seen):
        line = await asyncio.wait_for(stream.readline(), WAIT)
        if not line:
            raise AssertionError(f"ended before {text!r}: {seen}")
        seen.append(line.decode())


async def test_the_docs_page_runs_as_written(
    make_hub: MakeHub, agents_bus: EmbeddedNats, tmp_path: Path
) -> None:
    """The agent, the bridge command and the task of docs/nats-agents.md, pasted: each in a
    process of its own, against a real hub (found by CLAWHUB_NATS_URL, as hub.json would
    give it) and the agents' own nats-server (AGENTS_NATS)."""
    hub = await make_hub()
    blocks = docs_blocks()
    assert set(blocks) == {"agent", "run-agent", "bridge", "submit"}
    assert blocks["agent"] == (HERE.parent / "examples" / "nats_shouter.py").read_text()
    env = {
        **os.environ,
        "AGENTS_NATS": agents_bus.url,
        "CLAWHUB_NATS_URL": hub.url,
        "CLAWHUB_DATA_DIR": str(tmp_path / "home"),
        "COLUMNS": "200",
    }
    pipe = asyncio.subprocess.PIPE
    agent = await asyncio.create_subprocess_exec(
        "bash", "-c", blocks["run-agent"], cwd=HERE.parent, env=env, stdout=pipe
    )
    bridge = await asyncio.create_subprocess_exec(
        "bash", "-c", blocks["bridge"], cwd=HERE.parent, env=env, stdout=pipe, stderr=pipe
    )
    try:
        assert agent.stdout is not None and bridge.stdout is not None
        await read_until(agent.stdout, "listening on agents.prompt.demo.alice.shouter", [])
        out: list[str] = []
        await read_until(bridge.stdout, "joined as demo-alice-shouter", out)
        submit = await asyncio.create_subprocess_exec(
            "bash", "-c", blocks["submit"], cwd=HERE.parent, env=env, stdout=pipe, stderr=pipe
        )
        stdout, stderr = await asyncio.wait_for(submit.communicate(), 2 * WAIT)
        assert submit.returncode == 0, stderr.decode()
        assert "# TASK: SHOUT HELLO" in stdout.decode(), stdout.decode()
        async with HubClient(hub.url) as client:
            status = await client.task("shout")
            [info] = await client.agents()
        assert status.output == {"text": "# TASK: SHOUT HELLO "}
        assert info.profile.id == "demo-alice-shouter" and info.profile.skills == {"text": 0.8}
        bridge.send_signal(signal.SIGINT)
        await read_until(bridge.stdout, "bridge stopped", out)
        assert await asyncio.wait_for(bridge.wait(), WAIT) == 0
    finally:
        for proc in (agent, bridge):
            if proc.returncode is None:
                proc.kill()
            await proc.wait()


# -- bad command lines ---------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--nats-url", "http://x"], 1, "bad --nats-url 'http://x'"),
        (["--nats-url", "nats://127.0.0.1:PORT"], 1, "cannot connect to the agents' NATS"),
        (["--skill", "python"], 2, "bad --skill 'python': give name=level"),
        (["--skills-from", "card"], 2, "--skills-from takes metadata or flag"),
        (["--skills-from", "flag"], 2, "--skills-from flag needs at least one --skill"),
    ],
)
def test_a_bad_command_line_is_one_clear_error(
    args: list[str], code: int, message: str, tmp_path: Path
) -> None:
    port = str(closed_port())
    argv = ["bridge", "nats-agents", "--url", f"nats://127.0.0.1:{port}"]
    argv += [a.replace("PORT", port) for a in args]
    result = CliRunner().invoke(app, argv, env={"CLAWHUB_DATA_DIR": str(tmp_path)})
    assert result.exit_code == code, result.output
    assert message in " ".join(result.output.split()), result.output
