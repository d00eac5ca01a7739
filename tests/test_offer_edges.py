"""Offers with hard edges, against a real hub over a real nats-server: an ``Accept`` that
names another task, attempt or participant is refused (never taken as acceptance); an
answer to an offer that is not open gets an error reply; an inbox nobody listens on stops
being offered work (its participant is lost, and the event log says why)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

from fakes import GROUP, FakeAgent, ask
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from test_bad_input import refusals, spec, submit, wait_for, wait_state

from clawhub.runtime import Hub
from clawhub.runtime.offers import UNREACHABLE_AFTER
from protocols import (
    Accept,
    AgentProfile,
    Assignment,
    ErrorCode,
    ErrorReply,
    Heartbeat,
    Register,
    RegisterAck,
    TaskState,
    decode_any,
    encode,
    subjects,
)


class Tamperer(FakeAgent):
    """Answers its first offers with the Accepts in ``wrong`` (each made from the offer),
    then accepts honestly."""

    def __init__(self, nc: NATS, agent_id: str, wrong: list[dict[str, Any]]) -> None:
        super().__init__(nc, agent_id, {"python": 0.9})
        self.wrong = list(wrong)

    async def _inbox(self, msg: Msg) -> None:
        message = decode_any(msg.data)
        if isinstance(message, Assignment) and self.wrong:
            fields = {"task_id": message.task_id, "attempt": message.attempt, "agent_id": self.id}
            fields.update(self.wrong.pop(0))
            await msg.respond(encode(Accept(**fields)))
            return
        await super()._inbox(msg)


def refused_on(hub: Hub, subject: str) -> list[str]:
    return [
        json.loads(e.data)["code"]
        for e in refusals(hub)
        if json.loads(e.data).get("subject") == subject
    ]


async def test_an_accept_for_another_attempt_task_or_agent_is_refused(hub: Hub, nc: NATS) -> None:
    agent = Tamperer(
        nc, "tamper", [{"attempt": 99}, {"task_id": "someone-else"}, {"agent_id": "ghost"}]
    )
    await agent.start()
    try:
        (task_id,) = await submit(nc, spec("job", skills={"python": 0.5}))
        offer = await agent.next_offer()  # the fourth offer, accepted honestly
        assert offer.attempt == 4
        rec = hub.board.tasks[task_id]
        await wait_for(lambda: rec.state is TaskState.RUNNING, "the honest accept taken")
        assert rec.attempt == 4
        outcomes = [a.outcome for a in rec.history[:3]]
        assert outcomes == ["no_reply"] * 3, rec.history  # none was taken as acceptance
        assert all("bad answer" in a.reason for a in rec.history[:3]), rec.history
        await hub.durable()
        inbox = subjects.agent_inbox(GROUP, "tamper")
        assert sorted(refused_on(hub, inbox)) == ["conflict", "conflict", "forbidden"]
        ack = await agent.finish(offer, "done")  # the real attempt still completes
        assert ack.accepted
        await wait_state(nc, task_id, TaskState.DONE)
    finally:
        await agent.stop()


async def test_an_answer_to_an_offer_that_is_not_open_gets_an_error(hub: Hub, nc: NATS) -> None:
    await hub.durable()
    before = len(refusals(hub))
    late = Accept(task_id="t1", attempt=1, agent_id="nobody")
    subject = subjects.reply_to(hub.offers.inbox, "424242")
    reply = await ask(nc, subject, encode(late))
    assert isinstance(reply, ErrorReply) and reply.code is ErrorCode.CONFLICT, reply
    await hub.durable()
    (row,) = refusals(hub)[before:]
    assert json.loads(row.data)["code"] == "conflict"
    (kept,) = await submit(nc, spec("still-serving"))  # the hub keeps serving
    assert kept == "still-serving"


async def test_an_inbox_nobody_listens_on_stops_being_offered_work(hub: Hub, nc: NATS) -> None:
    """The README's mistake: an agent registers and heart-beats, but nothing listens on its
    inbox. It used to be offered the task every second for ever."""
    session = "s" + secrets.token_hex(4)
    profile = AgentProfile(id="deaf", name="deaf", skills={"python": 0.9})
    ack = await ask(
        nc,
        subjects.hub_register(GROUP, subjects.ANON_SENDER),
        encode(Register(profile=profile, session=session)),
    )
    assert isinstance(ack, RegisterAck), ack

    async def beat() -> None:
        while True:
            msg = Heartbeat(agent_id="deaf", session=session, ts=time.time())
            await nc.publish(subjects.hub_heartbeat(GROUP, subjects.ANON_SENDER), encode(msg))
            await asyncio.sleep(0.1)

    beats = asyncio.create_task(beat())
    try:
        (task_id,) = await submit(nc, spec("job", skills={"python": 0.5}))
        await wait_for(lambda: hub.board.agents["deaf"].state == "lost", "deaf marked lost")
        rec = hub.board.tasks[task_id]
        assert rec.attempt == UNREACHABLE_AFTER, rec.history
        assert all(a.outcome == "no_reply" for a in rec.history), rec.history
        await hub.durable()
        (why,) = hub.store.events(hub.group, kind="agent.unreachable")
        assert "unreachable" in why.message and subjects.agent_inbox(GROUP, "deaf") in why.message
        # heart-beating alone does not bring it back: no more offers go to the deaf inbox
        beats_seen = hub.board.agents["deaf"].last_seen
        await wait_for(lambda: hub.board.agents["deaf"].last_seen > beats_seen, "still beating")
        await asyncio.sleep(0.5)  # several beats: none may bring it back
        assert hub.board.agents["deaf"].state == "lost"
        assert hub.board.tasks[task_id].attempt == UNREACHABLE_AFTER
        # registering again (its inbox set up anew) lets it back in
        again = await ask(
            nc,
            subjects.hub_register(GROUP, subjects.ANON_SENDER),
            encode(Register(profile=profile, session=session)),
        )
        assert isinstance(again, RegisterAck), again
        assert hub.board.agents["deaf"].state == "online"
    finally:
        beats.cancel()
        await asyncio.gather(beats, return_exceptions=True)
    # a real agent then takes the task: nothing was lost
    worker = FakeAgent(nc, "hearing", {"python": 0.9})
    await worker.start()
    try:
        offer = await worker.next_offer()
        assert offer.task_id == task_id
        await worker.finish(offer)
        await wait_state(nc, task_id, TaskState.DONE)
    finally:
        await worker.stop()
