"""Credit (``Register.credit``): assignments pushed to an agent with free capacity, no
offer, no accept. Against a real hub over a real nats-server and store: a pushed attempt
runs end to end; a decline gives it back as a declined offer would; one the agent never
runs goes back after the accept timeout (and an agent that never runs any is unreachable);
a withdrawn pushed attempt's result is refused; credit agents and offer/accept agents work
side by side."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from conftest import hub_settings
from fakes import GROUP, FakeAgent, ask
from nats.aio.client import Client as NATS
from test_bad_input import refusals, spec, submit, wait_for, wait_state
from test_e2e import echo_agent, started

from agents_sdk import HubClient
from clawhub.board.credit import UNCONFIRMED_AFTER
from clawhub.runtime import EmbeddedNats, Hub
from clawhub.store import Store
from protocols import (
    CancelTask,
    Decline,
    ErrorCode,
    ErrorReply,
    TaskSpec,
    TaskState,
    encode,
    subjects,
)

DECLINE = subjects.hub_decline(GROUP, subjects.ANON_SENDER)


def kinds(hub: Hub, task_id: str) -> list[str]:
    return [e.kind for e in hub.store.events(hub.group, task_id=task_id)]


async def test_a_pushed_assignment_runs_at_once_with_no_reply_expected(hub: Hub, nc: NATS) -> None:
    agent = FakeAgent(nc, "pushy", {"python": 0.9}, credit=True)
    await agent.start()
    try:
        assert hub.board.agents["pushy"].credit
        (task_id,) = await submit(nc, spec("job", skills={"python": 0.5}))
        assignment = await agent.next_offer()
        (_, reply), *_ = agent.pushed
        assert assignment.pushed and reply == ""  # a plain publish: nothing to answer
        rec = hub.board.tasks[task_id]
        assert rec.state is TaskState.RUNNING  # running before any answer
        assert rec.history[0].outcome == "running" and rec.history[0].started_at is not None
        await wait_for(lambda: rec.unconfirmed == 0.0, "the heartbeat confirms it")
        ack = await agent.finish(assignment, "done")
        assert ack.accepted and ack.state is TaskState.DONE
        await hub.durable()
        seen = kinds(hub, task_id)
        # pushed: assigned and running are one event, whose state says it runs
        assert seen == ["task.submitted", "task.assigned", "task.done"], seen
        events = hub.store.events(hub.group, task_id=task_id, kind="task.assigned")
        [assigned] = events
        assert assigned.state == "running" and json.loads(assigned.data)["pushed"] is True
    finally:
        await agent.stop()


async def test_a_declined_pushed_assignment_goes_back_as_a_declined_offer(
    hub: Hub, nc: NATS
) -> None:
    agent = FakeAgent(nc, "picky", {"python": 0.9}, credit=True, declines=1)
    await agent.start()
    try:
        (task_id,) = await submit(nc, spec("job", skills={"python": 0.5}))
        assignment = await agent.next_offer()  # the second push, taken
        assert assignment.attempt == 2 and len(agent.pushed) == 2
        rec = hub.board.tasks[task_id]
        first = rec.history[0]
        assert (first.outcome, first.reason, first.agent_id) == ("declined", "no", "picky")
        assert rec.failures == 0  # a decline is not a failure
        await agent.finish(assignment, "done")
        await wait_state(nc, task_id, TaskState.DONE)
        await hub.durable()
        (declined,) = hub.store.events(hub.group, kind="task.declined", task_id=task_id)
        assert json.loads(declined.data)["outcome"] == "declined"
        # a decline of an attempt that ended meanwhile changes nothing, and is not refused
        before = len(refusals(hub))
        late = Decline(task_id=task_id, attempt=2, agent_id="picky")
        await nc.publish(DECLINE, encode(late))
        # one for an attempt the sender never held, or of a task nobody knows, is refused
        await nc.publish(DECLINE, encode(Decline(task_id=task_id, attempt=1, agent_id="ghost")))
        await nc.publish(DECLINE, encode(Decline(task_id="nope", attempt=1, agent_id="picky")))
        await nc.flush()

        async def codes() -> list[str]:
            await hub.durable()
            return [json.loads(e.data)["code"] for e in refusals(hub)[before:]]

        for _ in range(100):
            if len(await codes()) >= 2:
                break
            await asyncio.sleep(0.02)
        assert sorted(await codes()) == ["unknown_agent", "unknown_task"]
        assert hub.board.tasks[task_id].state is TaskState.DONE
    finally:
        await agent.stop()


async def test_a_decline_on_hub_decline_of_an_offered_attempt_is_refused(
    hub: Hub, nc: NATS
) -> None:
    """An offer is answered in its reply; a Decline on ``hub_decline`` cannot drop one."""
    agent = FakeAgent(nc, "classic", {"python": 0.9})  # no credit: offers
    await agent.start()
    try:
        (task_id,) = await submit(nc, spec("job", skills={"python": 0.5}))
        offer = await agent.next_offer()
        assert not offer.pushed
        rec = hub.board.tasks[task_id]
        await hub.durable()
        before = len(refusals(hub))
        await nc.publish(DECLINE, encode(Decline(task_id=task_id, attempt=1, agent_id="classic")))
        await nc.flush()
        for _ in range(100):
            await hub.durable()
            if len(refusals(hub)) > before:
                break
            await asyncio.sleep(0.02)
        (row,) = refusals(hub)[before:]
        assert json.loads(row.data)["code"] == "conflict"
        assert rec.state is TaskState.RUNNING and rec.attempt == 1
        await agent.finish(offer)
        await wait_state(nc, task_id, TaskState.DONE)
    finally:
        await agent.stop()


async def test_a_pushed_assignment_never_run_goes_back_after_the_timeout(
    hub: Hub, nc: NATS
) -> None:
    """The agent heart-beats but never lists the attempt pushed to it: after the accept
    timeout (plus one heartbeat interval) it is ``no_reply``, the agent is told to stop it,
    and another agent does the task."""
    deaf = FakeAgent(nc, "deaf", {"python": 0.9}, credit=True, runs_pushed=False)
    await deaf.start()
    hearing = FakeAgent(nc, "hearing", {"python": 0.5})
    try:
        (task_id,) = await submit(nc, spec("job", skills={"python": 0.5}, timeouts={"accept": 0.3}))
        rec = hub.board.tasks[task_id]
        await wait_for(lambda: deaf.pushed, "the push")
        assert rec.state is TaskState.RUNNING and rec.assigned_to == "deaf"
        await hearing.start()
        offer = await hearing.next_offer()
        assert offer.attempt == 2 and not offer.pushed
        first = rec.history[0]
        assert (first.outcome, first.agent_id) == ("no_reply", "deaf")
        assert "not seen running" in first.reason
        assert first.ended_at is not None and first.started_at is not None
        assert first.ended_at - first.started_at >= 0.3 + hub.settings.heartbeat_interval - 0.05
        await wait_for(lambda: deaf.cancels, "a cancel for the unconfirmed attempt")
        assert (deaf.cancels[0].task_id, deaf.cancels[0].attempt) == (task_id, 1)
        await hearing.finish(offer)
        await wait_state(nc, task_id, TaskState.DONE)
        assert hub.board.agents["deaf"].state == "online"  # one miss: not unreachable yet
    finally:
        await deaf.stop()
        await hearing.stop()


async def test_an_agent_that_never_runs_what_is_pushed_becomes_unreachable(
    hub: Hub, nc: NATS
) -> None:
    deaf = FakeAgent(nc, "deaf", {"python": 0.9}, credit=True, runs_pushed=False)
    await deaf.start()
    try:
        (task_id,) = await submit(nc, spec("job", skills={"python": 0.5}, timeouts={"accept": 0.1}))
        await wait_for(lambda: hub.board.agents["deaf"].state == "lost", "deaf unreachable")
        rec = hub.board.tasks[task_id]
        assert rec.attempt == UNCONFIRMED_AFTER, rec.history
        assert [a.outcome for a in rec.history] == ["no_reply"] * UNCONFIRMED_AFTER
        assert rec.state is TaskState.READY
        await hub.durable()
        (why,) = hub.store.events(hub.group, kind="agent.unreachable")
        assert "never seen running" in why.message
        await asyncio.sleep(0.5)  # heart-beating alone does not bring it back
        assert hub.board.agents["deaf"].state == "lost"
        assert rec.attempt == UNCONFIRMED_AFTER
    finally:
        await deaf.stop()


async def test_a_result_of_a_withdrawn_pushed_attempt_is_refused(hub: Hub, nc: NATS) -> None:
    agent = FakeAgent(nc, "pushy", {"python": 0.9}, credit=True)
    await agent.start()
    try:
        (task_id,) = await submit(nc, spec("job", skills={"python": 0.5}))
        assignment = await agent.next_offer()
        cancelled = await ask(
            nc,
            subjects.api(GROUP, subjects.ANON_SENDER, subjects.API_CANCEL),
            encode(CancelTask(task_id=task_id, reason="changed my mind")),
        )
        assert not isinstance(cancelled, ErrorReply), cancelled
        await wait_for(lambda: agent.cancels, "the agent told to stop")
        reply = await ask(
            nc,
            subjects.hub_result(GROUP, subjects.ANON_SENDER),
            encode(agent.result_msg(task_id, assignment.attempt, "too late")),
        )
        assert isinstance(reply, ErrorReply) and reply.code is ErrorCode.STALE_ATTEMPT, reply
        rec = hub.board.tasks[task_id]
        assert rec.state is TaskState.CANCELLED and rec.output is None
        assert rec.history[0].outcome == "cancelled"
    finally:
        await agent.stop()


async def test_credit_and_offer_accept_agents_work_side_by_side(hub: Hub, nc: NATS) -> None:
    """An SDK agent on NATS (credit) and a raw offer/accept agent share the work."""
    sdk = echo_agent("sdk", {"python": 0.9}, capacity=2)
    raw = FakeAgent(nc, "raw", {"rust": 0.9})
    await raw.start()
    try:
        async for _ in started([sdk], hub.url):
            assert hub.board.agents["sdk"].credit and not hub.board.agents["raw"].credit
            async with HubClient(hub.url) as client:
                ids = await client.submit(
                    [TaskSpec(title=f"py{i}", skills={"python": 0.5}) for i in range(6)]
                    + [TaskSpec(id="rs", title="rs", skills={"rust": 0.5})]
                )
                offer = await raw.next_offer()
                assert offer.task_id == "rs" and not offer.pushed
                await raw.finish(offer, "by raw")
                for tid in ids:
                    status = await client.wait(tid, timeout=10)
                    assert status.state is TaskState.DONE, status
                    assert len(status.history) == 1, status.history  # no decline, no retry
                    assert status.history[0].agent_id == ("raw" if tid == "rs" else "sdk")
    finally:
        await raw.stop()


async def test_a_running_attempt_its_holder_does_not_name_after_a_restart_goes_out_again(
    hub: Hub, nc: NATS, nats_server: EmbeddedNats, store: Store, tmp_path: Path
) -> None:
    """The store says an attempt runs, not that a pushed one reached its holder (it may have
    died in the old hub's buffers): a holder alive but not naming it gets it revoked."""
    deaf = FakeAgent(nc, "deaf", {"python": 0.9}, credit=True, runs_pushed=False)
    await deaf.start()
    try:
        (task_id,) = await submit(nc, spec("job", skills={"python": 0.5}))
        await wait_for(lambda: deaf.pushed, "the push")
        await hub.durable()
        await hub.stop()  # before the accept timeout: the attempt is running in the store
        again = Hub(hub_settings(nats_server, tmp_path, accept_timeout=30.0), store=store)
        await again.start()
        try:
            rec = again.board.tasks[task_id]
            assert rec.state is TaskState.RUNNING and rec.attempt == 1 and not rec.pushed
            await wait_for(lambda: rec.attempt == 2, "revoked and pushed again")
            first = rec.history[0]
            assert (first.outcome, first.agent_id) == ("revoked", "deaf"), first
            assert "since the hub restarted" in first.reason
            assert rec.failures == 0  # not the holder's failure
            await wait_for(
                lambda: any(c.task_id == task_id and c.attempt == 1 for c in deaf.cancels),
                "the holder told to stop attempt 1",
            )
        finally:
            await again.stop()
    finally:
        await deaf.stop()
