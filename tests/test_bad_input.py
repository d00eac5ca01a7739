"""Bad input against a real hub (SQLite and PostgreSQL) over a real nats-server.

Every refused message must get the exact error code, be recorded as ``message.refused`` in
the event log, lose nothing that was there before, and leave the hub serving.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fakes import GROUP, WAIT, FakeAgent, ask
from nats.aio.client import Client as NATS

from clawhub.runtime import Hub
from clawhub.store import EventRow
from protocols import (
    AgentProfile,
    ErrorCode,
    ErrorReply,
    Heartbeat,
    ListTasks,
    Progress,
    Register,
    Result,
    SubmitTasks,
    Submitted,
    TaskSpec,
    TaskState,
    TaskStatus,
    encode,
    subjects,
)

# ---------------------------------------------------------------- helpers


async def ask_error(nc: NATS, subject: str, data: bytes) -> ErrorReply:
    reply = await ask(nc, subject, data)
    assert isinstance(reply, ErrorReply), reply
    return reply


async def wait_for(check: Callable[[], Any], what: str) -> Any:
    """Poll until ``check()`` is truthy (the hub handles publishes on its own time)."""
    deadline = time.monotonic() + WAIT
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.02)


def refusals(hub: Hub) -> list[EventRow]:
    return hub.store.events(hub.group, kind="message.refused")


async def refusal(hub: Hub, subject: str, code: ErrorCode, before: int = 0) -> EventRow:
    """The one new ``message.refused`` event for ``subject``; checks its code."""

    async def found() -> list[EventRow]:
        await hub.durable()
        return [e for e in refusals(hub)[before:] if json.loads(e.data).get("subject") == subject]

    deadline = time.monotonic() + WAIT
    while not (rows := await found()):
        assert time.monotonic() < deadline, f"no message.refused on {subject}"
        await asyncio.sleep(0.02)
    assert len(rows) == 1, rows
    data = json.loads(rows[0].data)
    assert data["code"] == code.value
    return rows[0]


async def submit(nc: NATS, *specs: TaskSpec) -> list[str]:
    reply = await ask(
        nc,
        subjects.api(GROUP, subjects.ANON_SENDER, subjects.API_SUBMIT),
        encode(SubmitTasks(tasks=list(specs))),
    )
    assert isinstance(reply, Submitted), reply
    return reply.ids


async def list_tasks(nc: NATS) -> dict[str, TaskStatus]:
    reply = await ask(
        nc, subjects.api(GROUP, subjects.ANON_SENDER, subjects.API_TASKS), encode(ListTasks())
    )
    assert hasattr(reply, "tasks"), reply
    return {t.id: t for t in reply.tasks}


async def wait_state(nc: NATS, task_id: str, state: TaskState) -> TaskStatus:
    deadline = time.monotonic() + WAIT
    while True:
        status = (await list_tasks(nc))[task_id]
        if status.state is state:
            return status
        assert time.monotonic() < deadline, f"{task_id} stuck in {status.state}"
        await asyncio.sleep(0.02)


@pytest.fixture
async def worker(nc: NATS, hub: Hub) -> AsyncIterator[FakeAgent]:
    agent = FakeAgent(nc, "w1", {"python": 0.9})
    await agent.start()
    yield agent
    await agent.stop()


def spec(task_id: str, **fields: Any) -> TaskSpec:
    values: dict[str, Any] = {"id": task_id, "title": task_id}
    values.update(fields)
    return TaskSpec(**values)


# ---------------------------------------------------------------- undecodable requests

SUBMIT = subjects.api(GROUP, subjects.ANON_SENDER, subjects.API_SUBMIT)
REGISTER = subjects.hub_register(GROUP, subjects.ANON_SENDER)


def _oversize(hub: Hub) -> bytes:
    filler = "x" * (hub.settings.max_message_bytes + 10)
    return encode(SubmitTasks(tasks=[TaskSpec(title="big", input=filler)]))


BAD_REQUESTS: list[tuple[str, str, Callable[[Hub], bytes], ErrorCode]] = [
    ("malformed-json", SUBMIT, lambda h: b'{"type": "claw.v1.api.submit", ', ErrorCode.MALFORMED),
    ("not-utf8", SUBMIT, lambda h: b"\xff\xfe\x00", ErrorCode.MALFORMED),
    ("json-array", SUBMIT, lambda h: b'[{"type": "claw.v1.api.submit"}]', ErrorCode.MALFORMED),
    ("json-string", REGISTER, lambda h: b'"hello"', ErrorCode.MALFORMED),
    (
        "unknown-type",
        SUBMIT,
        lambda h: b'{"type": "claw.v1.nope", "tasks": []}',
        ErrorCode.UNKNOWN_TYPE,
    ),
    ("no-type", SUBMIT, lambda h: b'{"tasks": [{"title": "x"}]}', ErrorCode.UNKNOWN_TYPE),
    ("wrong-subject", SUBMIT, lambda h: encode(ListTasks()), ErrorCode.UNKNOWN_TYPE),
    (
        "skill-level-2",
        SUBMIT,
        lambda h: json.dumps(
            {"type": "claw.v1.api.submit", "tasks": [{"title": "x", "skills": {"python": 2.0}}]}
        ).encode(),
        ErrorCode.INVALID,
    ),
    (
        "register-skill-level-2",
        REGISTER,
        lambda h: json.dumps(
            {
                "type": "claw.v1.agent.register",
                "session": "s1",
                "profile": {"id": "w9", "name": "w9", "skills": {"python": 2.0}},
            }
        ).encode(),
        ErrorCode.INVALID,
    ),
    (
        "extra-field",
        SUBMIT,
        lambda h: json.dumps(
            {"type": "claw.v1.api.submit", "tasks": [{"title": "x"}], "sneaky": 1}
        ).encode(),
        ErrorCode.INVALID,
    ),
    (
        "bad-id",
        SUBMIT,
        lambda h: json.dumps(
            {"type": "claw.v1.api.submit", "tasks": [{"title": "x", "id": "a.b"}]}
        ).encode(),
        ErrorCode.INVALID,
    ),
    ("oversize", SUBMIT, _oversize, ErrorCode.OVERSIZE),
]


@pytest.mark.parametrize(
    ("subject", "payload", "code"),
    [b[1:] for b in BAD_REQUESTS],
    ids=[b[0] for b in BAD_REQUESTS],
)
async def test_undecodable_request_is_refused(
    hub: Hub, nc: NATS, subject: str, payload: Callable[[Hub], bytes], code: ErrorCode
) -> None:
    (kept,) = await submit(nc, spec("kept", skills={"python": 0.5}))
    before = len(refusals(hub))

    reply = await ask_error(nc, subject, payload(hub))
    assert reply.code is code

    await refusal(hub, subject, code, before)
    tasks = await list_tasks(nc)  # the hub still serves
    assert list(tasks) == [kept]  # nothing was added by the bad request, nothing lost
    assert tasks[kept].state is TaskState.READY
    assert not any(r.kind == "agent.registered" for r in hub.store.events(hub.group, kind="agent."))


async def test_a_refused_batch_adds_nothing(hub: Hub, nc: NATS) -> None:
    await submit(nc, spec("a"))
    batch = SubmitTasks(tasks=[spec("b"), spec("c", depends_on=["ghost"])])
    reply = await ask_error(nc, SUBMIT, encode(batch))
    assert reply.code is ErrorCode.INVALID
    await refusal(hub, SUBMIT, ErrorCode.INVALID)
    dup = await ask_error(nc, SUBMIT, encode(SubmitTasks(tasks=[spec("a")])))
    assert dup.code is ErrorCode.CONFLICT
    assert list(await list_tasks(nc)) == ["a"]
    assert await submit(nc, spec("b")) == ["b"]


# ---------------------------------------------------------------- agents misbehaving


RESULT = subjects.hub_result(GROUP, subjects.ANON_SENDER)


async def test_result_for_an_unknown_task(hub: Hub, nc: NATS, worker: FakeAgent) -> None:
    (tid,) = await submit(nc, spec("real", skills={"python": 0.5}))
    offer = await worker.next_offer()
    reply = await ask_error(nc, RESULT, encode(worker.result_msg("no-such-task", 1)))
    assert reply.code is ErrorCode.UNKNOWN_TASK
    row = await refusal(hub, RESULT, ErrorCode.UNKNOWN_TASK)
    assert row.agent_id == "w1"
    ack = await worker.finish(offer, output="done")
    assert ack.accepted
    assert (await list_tasks(nc))[tid].state is TaskState.DONE


async def test_result_from_an_agent_that_does_not_hold_the_task(
    hub: Hub, nc: NATS, worker: FakeAgent
) -> None:
    other = FakeAgent(nc, "w2", {"go": 0.9})
    await other.start()
    try:
        (tid,) = await submit(nc, spec("real", skills={"python": 0.5}))
        offer = await worker.next_offer()
        await wait_state(nc, tid, TaskState.RUNNING)
        forged = other.result_msg(tid, offer.attempt, output="stolen")
        reply = await ask_error(nc, RESULT, encode(forged))
        assert reply.code is ErrorCode.NOT_HOLDER
        row = await refusal(hub, RESULT, ErrorCode.NOT_HOLDER)
        assert row.agent_id == "w2"
        status = (await list_tasks(nc))[tid]
        assert (status.state, status.assigned_to, status.output) == (
            TaskState.RUNNING,
            "w1",
            None,
        )
        await worker.finish(offer, output="mine")
        assert (await list_tasks(nc))[tid].output == "mine"
    finally:
        await other.stop()


async def test_result_from_an_unregistered_agent(hub: Hub, nc: NATS, worker: FakeAgent) -> None:
    (tid,) = await submit(nc, spec("real", skills={"python": 0.5}))
    offer = await worker.next_offer()
    forged = Result(task_id=tid, attempt=offer.attempt, agent_id="ghost", session="s1")
    reply = await ask_error(nc, RESULT, encode(forged))
    assert reply.code is ErrorCode.UNKNOWN_AGENT
    await refusal(hub, RESULT, ErrorCode.UNKNOWN_AGENT)
    assert (await worker.finish(offer)).state is TaskState.DONE


async def test_result_with_a_stale_attempt(hub: Hub, nc: NATS) -> None:
    agent = FakeAgent(nc, "w1", {"python": 0.9}, declines=1)
    await agent.start()
    try:
        (tid,) = await submit(nc, spec("real", skills={"python": 0.5}))
        offer = await agent.next_offer()  # attempt 1 was declined, this is a later one
        assert offer.attempt >= 2
        stale = agent.result_msg(tid, 1, output="old")
        reply = await ask_error(nc, RESULT, encode(stale))
        assert reply.code is ErrorCode.STALE_ATTEMPT
        await refusal(hub, RESULT, ErrorCode.STALE_ATTEMPT)
        status = (await list_tasks(nc))[tid]
        assert (status.state, status.attempt) == (TaskState.RUNNING, offer.attempt)
        ack = await agent.finish(offer, output="new")
        assert (ack.accepted, ack.state) == (True, TaskState.DONE)
        assert (await list_tasks(nc))[tid].output == "new"
    finally:
        await agent.stop()


PROGRESS = subjects.hub_progress(GROUP, subjects.ANON_SENDER)


async def test_progress_with_a_stale_attempt(hub: Hub, nc: NATS, worker: FakeAgent) -> None:
    (tid,) = await submit(nc, spec("real", skills={"python": 0.5}))
    offer = await worker.next_offer()
    bad = Progress(
        task_id=tid, attempt=offer.attempt + 1, agent_id="w1", message="hm", ts=time.time()
    )
    await nc.publish(PROGRESS, encode(bad))
    row = await refusal(hub, PROGRESS, ErrorCode.STALE_ATTEMPT)
    assert row.agent_id == "w1"
    status = (await list_tasks(nc))[tid]
    assert (status.state, status.progress_message) == (TaskState.RUNNING, None)
    assert (await worker.finish(offer)).state is TaskState.DONE


async def test_progress_for_a_task_it_does_not_hold_is_refused(
    hub: Hub, nc: NATS, worker: FakeAgent
) -> None:
    other = FakeAgent(nc, "w2", {"go": 0.9})
    await other.start()
    try:
        (tid,) = await submit(nc, spec("real", skills={"python": 0.5}))
        offer = await worker.next_offer()
        await wait_state(nc, tid, TaskState.RUNNING)
        before = len(refusals(hub))
        bad = Progress(task_id=tid, attempt=offer.attempt, agent_id="w2", fraction=0.9, ts=1.0)
        await nc.publish(PROGRESS, encode(bad))
        rows = await wait_for(
            lambda: [e for e in refusals(hub)[before:] if e.agent_id == "w2"],
            "the refused progress",
        )
        assert json.loads(rows[0].data)["subject"] == PROGRESS
        status = (await list_tasks(nc))[tid]
        assert (status.state, status.progress, status.assigned_to) == (
            TaskState.RUNNING,
            None,
            "w1",
        )
        assert (await worker.finish(offer)).state is TaskState.DONE
    finally:
        await other.stop()


async def test_progress_for_a_task_it_does_not_hold_is_not_holder(
    hub: Hub, nc: NATS, worker: FakeAgent
) -> None:
    other = FakeAgent(nc, "w2", {"go": 0.9})
    await other.start()
    try:
        (tid,) = await submit(nc, spec("real", skills={"python": 0.5}))
        offer = await worker.next_offer()
        await wait_state(nc, tid, TaskState.RUNNING)
        bad = Progress(task_id=tid, attempt=offer.attempt, agent_id="w2", ts=time.time())
        await nc.publish(PROGRESS, encode(bad))
        await refusal(hub, PROGRESS, ErrorCode.NOT_HOLDER)
    finally:
        await other.stop()


HEARTBEAT = subjects.hub_heartbeat(GROUP, subjects.ANON_SENDER)


async def test_heartbeat_from_an_unknown_agent(hub: Hub, nc: NATS) -> None:
    (tid,) = await submit(nc, spec("kept"))
    beat = Heartbeat(agent_id="stranger", session="s1", ts=time.time())
    await nc.publish(HEARTBEAT, encode(beat))
    row = await refusal(hub, HEARTBEAT, ErrorCode.UNKNOWN_AGENT)
    assert row.agent_id == "stranger"
    assert "stranger" in row.message
    assert "stranger" not in hub.board.agents
    assert list(await list_tasks(nc)) == [tid]


async def test_undecodable_publish_is_recorded(hub: Hub, nc: NATS) -> None:
    await nc.publish(HEARTBEAT, b"not json at all")
    await refusal(hub, HEARTBEAT, ErrorCode.MALFORMED)
    await nc.publish(PROGRESS, encode(ListTasks()))
    await refusal(hub, PROGRESS, ErrorCode.UNKNOWN_TYPE)
    assert await submit(nc, spec("after")) == ["after"]


async def test_an_agent_id_registered_by_two_sessions(
    hub: Hub, nc: NATS, worker: FakeAgent
) -> None:
    (tid,) = await submit(nc, spec("real", skills={"python": 0.5}))
    offer = await worker.next_offer()
    twin = Register(
        profile=AgentProfile(id="w1", name="twin", skills={"go": 1.0}), session="other-session"
    )
    reply = await ask_error(nc, REGISTER, encode(twin))
    assert reply.code is ErrorCode.WRONG_SESSION
    await refusal(hub, REGISTER, ErrorCode.WRONG_SESSION)
    agent = hub.board.agents["w1"]
    assert (agent.session, agent.profile.name) == (worker.session, "w1")
    # the first session keeps its work and finishes it
    ack = await worker.finish(offer)
    assert (ack.accepted, ack.state) == (True, TaskState.DONE)
    assert (await list_tasks(nc))[tid].state is TaskState.DONE
