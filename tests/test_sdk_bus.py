"""The agent SDK against a real nats-server and a tiny fake hub made of raw subscriptions."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from agents_sdk import (
    Agent,
    AgentIdConflict,
    HubClient,
    HubUnavailable,
    RequestRefused,
    TaskContext,
    WaitTimeout,
)
from protocols import (
    Accept,
    Assignment,
    Cancel,
    Decline,
    Deregister,
    ErrorCode,
    ErrorReply,
    Event,
    GetTask,
    Heartbeat,
    Ok,
    Progress,
    Register,
    RegisterAck,
    Result,
    ResultAck,
    SubmitTasks,
    Submitted,
    TaskSpec,
    TaskState,
    TaskStatus,
    decode,
    encode,
    subjects,
)

NATS_SERVER = Path(sys.executable).parent / "nats-server"
GROUP = "default"


class NatsServer:
    """A real nats-server on a free loopback port (re-startable on the same port)."""

    def __init__(self) -> None:
        self.port = -1
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        proc = subprocess.Popen(
            [str(NATS_SERVER), "-a", "127.0.0.1", "-p", str(self.port)],
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            found = re.search(r"Listening for client connections on 127\.0\.0\.1:(\d+)", line)
            if found:
                self.port = int(found.group(1))
                self.proc = proc
                return
        proc.kill()
        proc.wait()
        proc.stderr.close()
        raise RuntimeError("nats-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            if self.proc.stderr is not None:
                self.proc.stderr.close()
            self.proc = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


@pytest.fixture
def server() -> Iterator[NatsServer]:
    srv = NatsServer()
    srv.start()
    yield srv
    srv.stop()


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@dataclass
class FakeHub:
    """The agent-facing half of a hub, enough to drive the SDK."""

    nc: NATS
    registers: list[Register] = field(default_factory=list)
    beats: list[Heartbeat] = field(default_factory=list)
    progress: list[Progress] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    goodbyes: list[Deregister] = field(default_factory=list)
    register_reply: Callable[[Register], bytes] | None = None

    async def serve(self, *, results: bool = True) -> None:
        nc = self.nc
        await nc.subscribe(subjects.hub_register(GROUP, subjects.ANY), cb=self._on_register)
        await nc.subscribe(subjects.hub_heartbeat(GROUP, subjects.ANY), cb=self._on_beat)
        await nc.subscribe(subjects.hub_progress(GROUP, subjects.ANY), cb=self._on_progress)
        await nc.subscribe(subjects.hub_deregister(GROUP, subjects.ANY), cb=self._on_deregister)
        if results:
            await self.serve_results()
        await nc.flush()

    async def serve_results(self) -> None:
        await self.nc.subscribe(subjects.hub_result(GROUP, subjects.ANY), cb=self._on_result)
        await self.nc.flush()

    async def _on_register(self, msg: Msg) -> None:
        reg = decode(msg.data, Register)
        self.registers.append(reg)
        if self.register_reply is not None:
            await msg.respond(self.register_reply(reg))
            return
        ack = RegisterAck(
            agent_id=reg.profile.id,
            hub_id="fake",
            heartbeat_interval=0.1,
            missed_beats=3,
            max_message_bytes=1_000_000,
        )
        await msg.respond(encode(ack))

    async def _on_beat(self, msg: Msg) -> None:
        self.beats.append(decode(msg.data, Heartbeat))

    async def _on_progress(self, msg: Msg) -> None:
        self.progress.append(decode(msg.data, Progress))

    async def _on_result(self, msg: Msg) -> None:
        result = decode(msg.data, Result)
        self.results.append(result)
        ack = ResultAck(
            task_id=result.task_id, attempt=result.attempt, accepted=True, state=TaskState.DONE
        )
        await msg.respond(encode(ack))

    async def _on_deregister(self, msg: Msg) -> None:
        self.goodbyes.append(decode(msg.data, Deregister))
        await msg.respond(encode(Ok()))

    async def offer(
        self, agent: Agent, task_id: str, attempt: int = 1, skills: dict[str, float] | None = None
    ) -> Accept | Decline:
        spec = TaskSpec(id=task_id, title=task_id, input={"n": 3}, skills=skills or {})
        offer = Assignment(
            task_id=task_id,
            attempt=attempt,
            spec=spec,
            dependency_outputs={"up": 1},
            stall_timeout=30,
        )
        reply = await self.nc.request(
            subjects.agent_inbox(GROUP, agent.id), encode(offer), timeout=2
        )
        return decode(reply.data, Accept, Decline)  # type: ignore[return-value]

    async def cancel(self, agent: Agent, task_id: str, attempt: int) -> None:
        cancel = Cancel(task_id=task_id, attempt=attempt, reason="test", ts=time.time())
        await self.nc.publish(subjects.agent_inbox(GROUP, agent.id), encode(cancel))


@pytest.fixture
async def hub(server: NatsServer) -> AsyncIterator[FakeHub]:
    nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    fake = FakeHub(nc)
    yield fake
    await nc.close()


@pytest.fixture
async def make_agent(server: NatsServer) -> AsyncIterator[Callable[..., Awaitable[Agent]]]:
    started: list[Agent] = []

    async def make(agent: Agent, **kwargs: float) -> Agent:
        await agent.start(server.url, **kwargs)
        started.append(agent)
        return agent

    yield make
    for agent in started:
        await agent.stop(timeout=2)


async def test_assignment_accept_progress_result_heartbeat(
    hub: FakeHub, make_agent: Callable[..., Awaitable[Agent]]
) -> None:
    await hub.serve()
    agent = Agent("worker", skills={"math": 1.0}, capacity=2)
    release = asyncio.Event()

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        await ctx.progress(0.5, "half")
        await ctx.log("a log line")
        await release.wait()
        data = ctx.input
        assert isinstance(data, dict) and isinstance(data["n"], int)
        return {"double": data["n"] * 2, "deps": ctx.deps}

    await make_agent(agent)
    assert agent.registered and agent.hub_id == "fake"
    [reg] = hub.registers
    assert reg.profile.id == agent.id and reg.session == agent.session and reg.running == []

    answer = await hub.offer(agent, "t1", attempt=3)
    assert isinstance(answer, Accept) and answer.attempt == 3 and answer.agent_id == agent.id
    await eventually(lambda: len(hub.progress) == 2)
    assert [p.fraction for p in hub.progress] == [0.5, None]
    assert [p.log for p in hub.progress] == [False, True]
    assert all(p.attempt == 3 for p in hub.progress)
    await eventually(lambda: any(b.running for b in hub.beats))  # interval 0.1 from the ack
    assert hub.beats[-1].running[0].task_id == "t1"

    release.set()
    await eventually(lambda: len(hub.results) == 1)
    [result] = hub.results
    assert result.ok and result.attempt == 3 and result.session == agent.session
    assert result.output == {"double": 6, "deps": {"up": 1}}
    assert result.duration is not None and result.duration > 0
    await eventually(lambda: agent.running == [])

    await agent.stop()
    assert [g.agent_id for g in hub.goodbyes] == [agent.id]


async def test_declines_busy_and_without_handler(
    hub: FakeHub, make_agent: Callable[..., Awaitable[Agent]]
) -> None:
    await hub.serve()
    agent = Agent("one", capacity=1)
    gate = asyncio.Event()

    @agent.handler(skill="review")
    async def review(ctx: TaskContext) -> object:
        await gate.wait()
        return "ok"

    await make_agent(agent)
    no_handler = await hub.offer(agent, "t0", skills={"python": 0.5})
    assert isinstance(no_handler, Decline) and "no handler" in no_handler.reason
    assert isinstance(await hub.offer(agent, "t1", skills={"review": 0.5}), Accept)
    busy = await hub.offer(agent, "t2", skills={"review": 0.5})
    assert isinstance(busy, Decline) and busy.reason == "busy"
    gate.set()
    await eventually(lambda: len(hub.results) == 1)


async def test_failed_handler_and_bad_output(
    hub: FakeHub, make_agent: Callable[..., Awaitable[Agent]]
) -> None:
    await hub.serve()
    agent = Agent("failing", capacity=2)

    @agent.handler(skill="boom")
    def boom(ctx: TaskContext) -> object:
        raise RuntimeError("kaput")

    @agent.handler
    def bad(ctx: TaskContext) -> object:
        ctx.progress_nowait(0.9, "nearly")
        return object()

    await make_agent(agent)
    await hub.offer(agent, "t1", skills={"boom": 0.1})
    await hub.offer(agent, "t2")
    await eventually(lambda: len(hub.results) == 2)
    by_id = {r.task_id: r for r in hub.results}
    assert not by_id["t1"].ok and by_id["t1"].error == "RuntimeError: kaput"
    assert not by_id["t2"].ok and "not JSON-serialisable" in (by_id["t2"].error or "")
    assert [p.message for p in hub.progress] == ["nearly"]  # sent before the result


async def test_cancel_stops_the_handler(
    hub: FakeHub, make_agent: Callable[..., Awaitable[Agent]]
) -> None:
    await hub.serve()
    agent = Agent("slow")
    cancelled = asyncio.Event()

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            assert ctx.cancelled
            cancelled.set()
            raise
        return None

    await make_agent(agent)
    await hub.offer(agent, "t1", attempt=2)
    await eventually(lambda: len(agent.running) == 1)
    await hub.cancel(agent, "t1", attempt=1)  # another attempt: ignored
    await asyncio.sleep(0.2)
    assert not cancelled.is_set()
    await hub.cancel(agent, "t1", attempt=2)
    await asyncio.wait_for(cancelled.wait(), 5)
    await eventually(lambda: agent.running == [])
    await asyncio.sleep(0.2)
    assert hub.results == []  # a cancelled attempt sends no result


async def test_result_retried_until_a_hub_answers(
    hub: FakeHub, make_agent: Callable[..., Awaitable[Agent]]
) -> None:
    await hub.serve(results=False)
    agent = Agent("patient")
    agent.handler(lambda ctx: "precious")
    await make_agent(agent)
    await hub.offer(agent, "t1")
    await asyncio.sleep(1.0)  # no responder: the SDK keeps retrying
    assert len(agent.running) == 1  # still held while undelivered
    await hub.serve_results()
    await eventually(lambda: len(hub.results) == 1, within=10)
    assert hub.results[0].output == "precious"
    await eventually(lambda: agent.running == [])


async def test_malformed_inbox_message_gets_error_reply(
    hub: FakeHub, make_agent: Callable[..., Awaitable[Agent]]
) -> None:
    await hub.serve()
    agent = await make_agent(Agent("strict"))
    inbox = subjects.agent_inbox(GROUP, agent.id)
    reply = await hub.nc.request(inbox, b"{nope", timeout=2)
    error = decode(reply.data, ErrorReply)
    assert error.code == ErrorCode.MALFORMED
    reply = await hub.nc.request(inbox, encode(Ok()), timeout=2)
    assert decode(reply.data, ErrorReply).code == ErrorCode.UNKNOWN_TYPE


async def test_start_errors(hub: FakeHub, server: NatsServer) -> None:
    agent = Agent("lonely")
    with pytest.raises(HubUnavailable):  # nats is up, but no hub answers
        await agent.start(server.url, timeout=1.0)

    def conflict(reg: Register) -> bytes:
        return encode(ErrorReply(code=ErrorCode.WRONG_SESSION, message="held by another"))

    hub.register_reply = conflict
    await hub.serve()
    with pytest.raises(AgentIdConflict):
        await Agent("twin", id="twin").start(server.url, timeout=2.0)


async def test_registration_waits_for_a_late_hub(hub: FakeHub, server: NatsServer) -> None:
    agent = Agent("early")
    agent.handler(lambda ctx: None)
    starting = asyncio.create_task(agent.start(server.url, timeout=10))
    await asyncio.sleep(0.7)
    assert not starting.done()
    await hub.serve()
    await asyncio.wait_for(starting, 10)
    assert agent.registered
    await agent.stop()


async def test_revoked_on_registration_and_reregister_after_server_restart(
    hub: FakeHub, server: NatsServer
) -> None:
    await hub.serve()
    agent = Agent("survivor", capacity=2)
    stopped: list[str] = []

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stopped.append(ctx.task_id)
            raise
        return None

    await agent.start(server.url)
    try:
        await hub.offer(agent, "keep")
        await hub.offer(agent, "drop")

        def revoke_drop(reg: Register) -> bytes:
            ack = RegisterAck(
                agent_id=reg.profile.id,
                hub_id="fake-2",
                heartbeat_interval=0.1,
                missed_beats=3,
                max_message_bytes=1_000_000,
                revoked=[r for r in reg.running if r.task_id == "drop"],
            )
            return encode(ack)

        hub.register_reply = revoke_drop
        server.stop()
        await asyncio.sleep(0.5)
        server.start()  # same port
        await eventually(lambda: len(hub.registers) >= 2, within=15)
        again = hub.registers[-1]
        assert again.session == agent.session
        assert sorted(r.task_id for r in again.running) == ["drop", "keep"]
        await eventually(lambda: stopped == ["drop"])
        assert [r.task_id for r in agent.running] == ["keep"]
        assert agent.hub_id == "fake-2"
        assert isinstance(await hub.offer(agent, "after"), Accept)  # the inbox survived
    finally:
        await agent.stop(timeout=2)
    assert sorted(stopped) == ["after", "drop", "keep"]


async def test_run_blocks_until_sigterm_then_deregisters(hub: FakeHub, server: NatsServer) -> None:
    await hub.serve()
    code = (
        "import sys\n"
        "from agents_sdk import Agent\n"
        "agent = Agent('runner', id='runner-1')\n"
        "agent.handler(lambda ctx: None)\n"
        "agent.run(sys.argv[1])\n"
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, server.url)
    try:
        await eventually(lambda: len(hub.registers) == 1, within=15)
        assert proc.returncode is None
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert [g.agent_id for g in hub.goodbyes] == ["runner-1"]


async def test_stop_drain_delivers_results(
    hub: FakeHub, make_agent: Callable[..., Awaitable[Agent]]
) -> None:
    await hub.serve()
    agent = Agent("drainer")

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        await asyncio.sleep(0.3)
        return "finished"

    await make_agent(agent)
    await hub.offer(agent, "t1")
    await agent.stop(drain=True, timeout=5)
    assert [r.output for r in hub.results] == ["finished"]
    assert len(hub.goodbyes) == 1


# -- HubClient --------------------------------------------------------------------------------


@dataclass
class FakeApi:
    """The client-facing half of a hub: submit and get, plus event publishing."""

    nc: NATS
    tasks: dict[str, TaskStatus] = field(default_factory=dict)

    async def serve(self) -> None:
        await self.nc.subscribe(
            subjects.api(GROUP, subjects.ANY, subjects.API_SUBMIT), cb=self._submit
        )
        await self.nc.subscribe(subjects.api(GROUP, subjects.ANY, subjects.API_TASK), cb=self._get)
        await self.nc.flush()

    async def _submit(self, msg: Msg) -> None:
        message = decode(msg.data, SubmitTasks)
        ids = []
        for i, spec in enumerate(message.tasks):
            task_id = spec.id or f"task-{len(self.tasks) + i}"
            now = time.time()
            self.tasks[task_id] = TaskStatus(
                id=task_id,
                spec=spec.model_copy(update={"id": task_id}),
                state=TaskState.READY,
                attempt=0,
                failures=0,
                created_at=now,
                updated_at=now,
            )
            ids.append(task_id)
        await msg.respond(encode(Submitted(ids=ids)))

    async def _get(self, msg: Msg) -> None:
        message = decode(msg.data, GetTask)
        status = self.tasks.get(message.task_id)
        if status is None:
            reply = encode(ErrorReply(code=ErrorCode.UNKNOWN_TASK, message=message.task_id))
        else:
            reply = encode(status)
        await msg.respond(reply)

    async def finish(self, task_id: str, output: object) -> None:
        status = self.tasks[task_id]
        self.tasks[task_id] = status.model_copy(update={"state": TaskState.DONE, "output": output})
        event = Event(seq=1, ts=time.time(), kind="task.done", task_id=task_id, state="done")
        await self.nc.publish(subjects.events(GROUP, "task.done"), encode(event))


async def test_hub_client_submit_wait_and_errors(server: NatsServer) -> None:
    async with HubClient(server.url, timeout=1.0) as client:
        with pytest.raises(HubUnavailable):
            await client.tasks()
        api = FakeApi(client.nc)
        await api.serve()
        [a] = await client.submit(TaskSpec(title="first"))
        b = await client.submit_task("second", skills={"Python": 0.5}, input=[1], priority=5)
        assert api.tasks[b].spec.skills == {"python": 0.5}
        assert api.tasks[b].spec.priority == 5
        with pytest.raises(RequestRefused) as info:
            await client.task("nope")
        assert info.value.code == ErrorCode.UNKNOWN_TASK

        waiting = asyncio.create_task(client.wait_all([a, b], timeout=5))
        stream = client.events(kinds=["task"])

        async def next_event() -> Event:
            return await anext(stream)

        first_event = asyncio.create_task(next_event())
        await asyncio.sleep(0.2)
        await api.finish(a, "A")
        await api.finish(b, {"b": 2})
        statuses = await waiting
        assert [s.output for s in statuses] == ["A", {"b": 2}]
        assert all(s.state == TaskState.DONE for s in statuses)
        event = await asyncio.wait_for(first_event, 2)
        assert event.kind == "task.done" and event.task_id == a
        await stream.aclose()

        assert (await client.wait(a, timeout=1)).output == "A"  # already terminal
        c = await client.submit_task("third")
        with pytest.raises(WaitTimeout):
            await client.wait(c, timeout=0.3)


async def test_hub_client_cannot_connect() -> None:
    with pytest.raises(HubUnavailable):
        await HubClient("nats://127.0.0.1:1", timeout=1.0).connect()
