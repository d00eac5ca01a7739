"""Several results in one message (``Results`` → ``ResultAcks``): each result is taken or
refused as if it had come alone; the SDK sends the results finishing together as one.

Real nats-server, real store, the real hub and the real SDK agent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from conftest import until
from fakes import GROUP, FakeAgent, ask
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from test_bad_input import refusals, spec, submit, wait_for
from test_e2e import started

from agents_sdk import Agent, HubClient, TaskContext
from clawhub.gateway import HubProcess
from clawhub.runtime import Hub
from protocols import (
    MAX_RESULT_BATCH,
    ErrorCode,
    ErrorReply,
    ResultAck,
    ResultAcks,
    Results,
    TaskSpec,
    TaskState,
    decode,
    encode,
    subjects,
)

RESULTS = subjects.hub_results(GROUP, subjects.ANON_SENDER)


def together_agent(
    agent_id: str, group: str, skill: str, count: int, output: Callable[[TaskContext], object]
) -> Agent:
    """An SDK agent of capacity ``count`` whose handlers all wait until ``count`` of them
    run, so that their attempts finish in the same turn of its event loop."""
    agent = Agent(agent_id, id=agent_id, group=group, skills={skill: 0.9}, capacity=count)
    arrived = 0
    all_in = asyncio.Event()

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        nonlocal arrived
        arrived += 1
        if arrived == count:
            all_in.set()
        await all_in.wait()
        return output(ctx)

    return agent


async def test_a_batch_is_taken_result_by_result(hub: Hub, nc: NATS) -> None:
    agent = FakeAgent(nc, "batcher", {"python": 0.9}, credit=True)
    await agent.start()
    try:
        ids = await submit(nc, *(spec(f"b{i}", skills={"python": 0.5}) for i in range(3)))
        offers = {o.task_id: o for o in [await agent.next_offer() for _ in ids]}
        before = len(refusals(hub))
        good = [agent.result_msg(t, offers[t].attempt, f"out {t}") for t in ids]
        stale = agent.result_msg("b0", 7, "an attempt it never held")
        reply = await ask(nc, RESULTS, encode(Results(agent_id="batcher", results=[*good, stale])))
        assert isinstance(reply, ResultAcks), reply
        *acks, refused = reply.acks
        assert [(a.task_id, a.accepted, a.state) for a in acks if isinstance(a, ResultAck)] == [
            (t, True, TaskState.DONE) for t in ids
        ]
        assert isinstance(refused, ErrorReply) and refused.code is ErrorCode.NOT_HOLDER
        await hub.durable()
        for t in ids:
            assert hub.board.tasks[t].output == f"out {t}"
        [row] = refusals(hub)[before:]  # the bad one is recorded, as if it came alone
        assert json.loads(row.data)["code"] == "not_holder" and row.agent_id == "batcher"
        # the same batch again: every result a duplicate, nothing applied twice
        again = await ask(nc, RESULTS, encode(Results(agent_id="batcher", results=good)))
        assert isinstance(again, ResultAcks)
        assert all(isinstance(a, ResultAck) and a.duplicate for a in again.acks), again
        done = [e for e in hub.store.events(hub.group, kind="task.done")]
        assert sorted(e.task_id or "" for e in done) == ids
    finally:
        await agent.stop()


async def test_a_batch_carrying_another_agents_result_is_refused_whole(hub: Hub, nc: NATS) -> None:
    mine = FakeAgent(nc, "mine", {"python": 0.9}, credit=True)
    other = FakeAgent(nc, "other", {"rust": 0.9}, credit=True)
    await mine.start()
    await other.start()
    try:
        [a] = await submit(nc, spec("m1", skills={"python": 0.5}))
        [b] = await submit(nc, spec("o1", skills={"rust": 0.5}))
        offer_a, offer_b = await mine.next_offer(), await other.next_offer()
        batch = Results(
            agent_id="mine",
            results=[
                mine.result_msg(a, offer_a.attempt, "mine"),
                other.result_msg(b, offer_b.attempt, "not yours to send"),
            ],
        )
        before = len(refusals(hub))
        reply = await ask(nc, RESULTS, encode(batch))
        assert isinstance(reply, ErrorReply) and reply.code is ErrorCode.FORBIDDEN, reply
        assert "other" in reply.message
        for t in (a, b):  # nothing of it was applied
            assert hub.board.tasks[t].state is TaskState.RUNNING
        await wait_for(lambda: len(refusals(hub)) > before, "the refusal in the event log")
    finally:
        await mine.stop()
        await other.stop()


async def test_bad_batches_get_a_clear_error(hub: Hub, nc: NATS) -> None:
    empty = await ask(nc, RESULTS, b'{"type":"claw.v1.task.results","agent_id":"x","results":[]}')
    assert isinstance(empty, ErrorReply) and empty.code is ErrorCode.INVALID, empty
    assert "results" in empty.message
    wrong = await ask(nc, RESULTS, encode(spec("not-a-result")))
    assert isinstance(wrong, ErrorReply) and wrong.code is ErrorCode.UNKNOWN_TYPE, wrong
    before = len(refusals(hub))
    too_many = Results.model_construct(
        agent_id="x",
        results=[FakeAgent(nc, "x", {}).result_msg("t", 1) for _ in range(MAX_RESULT_BATCH + 1)],
    )
    over = await ask(nc, RESULTS, encode(too_many))
    assert isinstance(over, ErrorReply) and over.code is ErrorCode.INVALID, over
    await wait_for(lambda: len(refusals(hub)) >= before + 1, "the refusal in the event log")


async def test_the_sdk_sends_results_finishing_together_as_one(hub: Hub, nc: NATS) -> None:
    count = 12
    agent = together_agent("together", GROUP, "python", count, lambda ctx: {"task": ctx.task_id})

    batches: list[Results] = []
    singles: list[str] = []

    async def seen(msg: Msg) -> None:
        if msg.subject.endswith(".results"):
            message = decode(msg.data, Results)
            batches.append(message)
        else:
            singles.append(msg.subject)

    await nc.subscribe(subjects.hub_call(GROUP, subjects.ANY, "results"), cb=seen)
    await nc.subscribe(subjects.hub_call(GROUP, subjects.ANY, "result"), cb=seen)
    async for _ in started([agent], hub.url):
        async with HubClient(hub.url) as client:
            ids = await client.submit(
                [TaskSpec(title=f"t{i}", skills={"python": 0.5}) for i in range(count)]
            )
            for tid in ids:
                status = await client.wait(tid, timeout=30)
                assert status.state is TaskState.DONE and status.output == {"task": tid}
    carried = sum(len(b.results) for b in batches)
    assert batches and max(len(b.results) for b in batches) > 1, (batches, singles)
    assert carried + len(singles) == count  # each result sent once: none lost, none twice
    assert {r.task_id for b in batches for r in b.results} <= set(ids)
    await hub.durable()
    assert len(hub.store.events(hub.group, kind="task.done")) == count


@pytest.mark.parametrize("transport", ["nats", "ws"])
async def test_batches_carry_the_senders_identity_on_both_transports(
    hub_server: HubProcess, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With tokens on, a batch is tied to the agent's credential like any result (over NATS
    by the subject's token, over the WebSocket by the socket's)."""
    count = 6
    agent_id = f"many-{transport}"
    token, _ = await hub_server.create_token("alpha", "agent", agent_id)
    url = hub_server.url if transport == "nats" else str(hub_server.ws_url)
    agent = together_agent(agent_id, "alpha", "sums", count, lambda ctx: ctx.input)

    hub = hub_server.hubs["alpha"]
    sizes: list[int] = []
    take = hub.board.results

    def counted(msg: Results) -> ResultAcks:
        sizes.append(len(msg.results))
        return take(msg)

    monkeypatch.setattr(hub.board, "results", counted)
    hub.routes = hub._routes()
    before = len(refusals(hub))
    await agent.start(url, token=token)
    try:
        specs = [TaskSpec(title=f"s{i}", skills={"sums": 0.5}, input=i) for i in range(count)]
        ids = hub.board.submit(specs)
        await until(lambda: all(hub.board.tasks[t].state is TaskState.DONE for t in ids))
        assert [hub.board.tasks[t].output for t in ids] == list(range(count))
        assert sizes and max(sizes) > 1, sizes
        await hub.durable()
        assert refusals(hub)[before:] == []
    finally:
        await agent.stop()
