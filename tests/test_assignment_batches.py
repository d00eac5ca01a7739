"""Several assignments in one message (``Assignments``): what one scheduler pass pushes to
a credit agent that registered with ``batches`` goes in one inbox message; each is taken as
if it came alone. Against a real hub on a real nats-server and store, with raw nats-py
participants (what goes on the inbox, exactly) and an SDK agent: an agent that did not ask
for batches gets one ``Assignment`` per message; a decline inside a batch goes back as a
declined push; a batch the bus cannot carry goes one by one; over the WebSocket each
becomes its own push frame."""

from __future__ import annotations

from pathlib import Path

import nats
import pytest
from conftest import hub_settings, until
from fakes import FakeAgent
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from test_bad_input import spec, submit
from test_e2e import started
from test_results_batch import together_agent

from agents_sdk import HubClient
from clawhub.board import Offer
from clawhub.gateway import HubProcess
from clawhub.runtime import EmbeddedNats, Hub
from clawhub.store import Store
from protocols import Assignment, Assignments, TaskSpec, TaskState, decode, subjects

GROUP = "default"


def attempts(hub: Hub, task_id: str) -> list[tuple[int, str, str]]:
    return [(a.attempt, a.agent_id, a.outcome) for a in hub.board.tasks[task_id].history]


async def test_what_one_pass_pushes_goes_in_one_message(hub: Hub, nc: NATS) -> None:
    ids = await submit(nc, *(spec(f"p{i}", skills={"python": 0.5}) for i in range(4)))
    agent = FakeAgent(nc, "many", {"python": 0.9}, credit=True, batches=True)
    await agent.start()  # capacity 4: the pass its registration wakes pushes all four
    try:
        assert hub.board.agents["many"].batches
        got = [await agent.next_offer() for _ in ids]
        assert sorted(o.task_id for o in got) == sorted(ids)  # each once
        assert agent.messages == [4], agent.messages
        for offer in got:
            ack = await agent.finish(offer, f"out {offer.task_id}")
            assert ack.accepted and ack.state is TaskState.DONE
        await hub.durable()
        for task_id in ids:  # the log as if each had come alone
            kinds = [e.kind for e in hub.store.events(hub.group, task_id=task_id)]
            assert kinds == ["task.submitted", "task.assigned", "task.done"], kinds
    finally:
        await agent.stop()


async def test_an_agent_that_did_not_ask_for_batches_gets_one_per_message(
    hub: Hub, nc: NATS
) -> None:
    ids = await submit(nc, *(spec(f"s{i}", skills={"python": 0.5}) for i in range(4)))
    agent = FakeAgent(nc, "single", {"python": 0.9}, credit=True)
    await agent.start()
    try:
        assert not hub.board.agents["single"].batches
        got = [await agent.next_offer() for _ in ids]
        assert sorted(o.task_id for o in got) == sorted(ids)
        assert agent.messages == [1, 1, 1, 1], agent.messages
    finally:
        await agent.stop()


async def test_batches_without_credit_mean_offers_as_before(hub: Hub, nc: NATS) -> None:
    (task_id,) = await submit(nc, spec("o1", skills={"python": 0.5}))
    agent = FakeAgent(nc, "offered", {"python": 0.9}, batches=True)  # no credit
    await agent.start()
    try:
        assert not hub.board.agents["offered"].batches
        offer = await agent.next_offer()
        assert offer.task_id == task_id and not offer.pushed and agent.messages == []
    finally:
        await agent.stop()


async def test_a_decline_inside_a_batch_goes_back_as_a_declined_push(hub: Hub, nc: NATS) -> None:
    ids = await submit(nc, *(spec(f"d{i}", skills={"python": 0.5}) for i in range(3)))
    agent = FakeAgent(nc, "picky", {"python": 0.9}, credit=True, batches=True, declines=1)
    await agent.start()
    try:
        got = [await agent.next_offer() for _ in ids]  # two of the batch, then the declined
        assert sorted(o.task_id for o in got) == sorted(ids)
        assert agent.messages[0] == 3, agent.messages
        declined = [t for t in ids if attempts(hub, t)[0][2] == "declined"]
        assert len(declined) == 1, [attempts(hub, t) for t in ids]
        [again] = [o for o in got if o.task_id == declined[0]]
        assert again.attempt == 2 and hub.board.tasks[declined[0]].failures == 0
    finally:
        await agent.stop()


async def test_a_batch_too_large_for_the_bus_goes_one_by_one(tmp_path: Path) -> None:
    """Four pushed assignments of 700 KB each, on a bus whose messages stop at 2 MB: the
    batch cannot go whole, each goes alone, and every task is pushed once."""
    server = EmbeddedNats(tmp_path / "nats", max_payload=2 * 1024 * 1024)
    server.start()
    store = Store(f"sqlite:///{tmp_path / 'clawhub.db'}")
    hub = Hub(hub_settings(server, tmp_path), store=store)
    await hub.start()
    nc = await nats.connect(server.url)
    agent = FakeAgent(nc, "big", {"python": 0.9}, credit=True, batches=True)
    try:
        ids = []
        for i in range(4):  # one submit each: a submit must stay under max_message_bytes
            ids += await submit(nc, spec(f"big{i}", skills={"python": 0.5}, input="x" * 700_000))
        await agent.start()
        got = [await agent.next_offer() for _ in ids]
        assert sorted(o.task_id for o in got) == sorted(ids)
        assert agent.messages == [1, 1, 1, 1], agent.messages
        assert all(attempts(hub, t) == [(1, "big", "running")] for t in ids)
    finally:
        await agent.stop()
        await nc.drain()
        await hub.stop()
        store.close()
        server.stop()


async def test_the_sdk_takes_a_batch_and_its_results_go_back_together(hub: Hub, nc: NATS) -> None:
    count = 8
    seen: list[int] = []

    async def inbox(msg: Msg) -> None:
        message = decode(msg.data, Assignment, Assignments)
        seen.append(len(message.assignments) if isinstance(message, Assignments) else 1)

    await nc.subscribe(subjects.agent_inbox(GROUP, "sdk-many"), cb=inbox)
    agent = together_agent("sdk-many", GROUP, "python", count, lambda ctx: ctx.task_id)
    async with HubClient(hub.url) as client:
        ids = await client.submit(
            [TaskSpec(title=f"t{i}", skills={"python": 0.5}) for i in range(count)]
        )
        async for _ in started([agent], hub.url):
            for task_id in ids:
                status = await client.wait(task_id, timeout=30)
                assert status.state is TaskState.DONE and status.output == task_id
    assert sum(seen) == count and max(seen) > 1, seen  # each pushed once, several together
    assert all(len(hub.board.tasks[t].history) == 1 for t in ids)  # none pushed twice


async def test_over_the_websocket_each_of_a_batch_is_its_own_push(
    hub_server: HubProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An SDK agent on the gateway registers with batches: the gateway gets one
    ``Assignments`` from the hub and hands the agent a push frame for each."""
    count = 6
    token, _ = await hub_server.create_token("alpha", "agent", "ws-many")
    hub = hub_server.hubs["alpha"]
    sizes: list[int] = []
    push_batch = hub.offers._push_batch

    async def counted(agent_id: str, batch: list[Offer]) -> None:
        sizes.append(len(batch))
        await push_batch(agent_id, batch)

    monkeypatch.setattr(hub.offers, "_push_batch", counted)
    ids = hub.board.submit(
        [TaskSpec(title=f"w{i}", skills={"python": 0.5}, input=i) for i in range(count)]
    )
    agent = together_agent("ws-many", "alpha", "python", count, lambda ctx: ctx.input)
    await agent.start(str(hub_server.ws_url), token=token)
    try:
        await until(lambda: all(hub.board.tasks[t].state is TaskState.DONE for t in ids))
        assert [hub.board.tasks[t].output for t in ids] == list(range(count))
        assert sizes and max(sizes) > 1, sizes
        assert all(len(hub.board.tasks[t].history) == 1 for t in ids)  # none pushed twice
    finally:
        await agent.stop()
