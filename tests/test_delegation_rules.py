"""Delegation's rules on a real hub (nats-server, SQLite and PostgreSQL): fencing and
identity of a ``Delegate``, no deadlock on one slot, a cancelled parent, a failed child,
and the links kept across a hub restart. Agents run in process here (nobody is killed)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import hub_settings
from nats.aio.client import Client as NATS
from test_identity import Refusals, ask
from test_security import nats_as

from agents_sdk import Agent, DelegationFailed, HubClient, TaskContext
from clawhub.gateway import HubProcess
from clawhub.runtime import EmbeddedNats, Hub
from clawhub.store import Store
from protocols import (
    Child,
    Constraints,
    Delegate,
    Delegated,
    ErrorCode,
    ErrorReply,
    GetTask,
    Plan,
    ReassignTask,
    SubmitTasks,
    TaskSpec,
    TaskState,
    Timeouts,
    Usage,
    subjects,
)


async def until(pred: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def worker(agent_id: str, skill: str, ran: list[str], fail: set[str] | None = None) -> Agent:
    agent = Agent(agent_id, id=agent_id, skills={skill: 1.0})

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        ran.append(ctx.task_id)
        part = ctx.input.get("part") if isinstance(ctx.input, dict) else None
        if fail is not None and part in fail:
            fail.discard(str(part))
            raise RuntimeError(f"cannot do {part}")
        await ctx.progress(1.0)
        return {"by": agent_id, "part": part}

    return agent


def part(title: str, skill: str = "x", **extra: object) -> TaskSpec:
    return TaskSpec.model_validate(
        {"title": title, "skills": {skill: 0.5}, "input": {"part": title}, **extra}
    )


async def test_one_agent_with_one_slot_delegates_to_itself_without_deadlock(hub: Hub) -> None:
    solo = Agent("solo", id="solo", skills={"plan": 1.0, "x": 0.8}, capacity=1)
    ran: list[str] = []
    skills: list[dict[str, float]] = []

    @solo.handler
    async def work(ctx: TaskContext) -> object:
        ran.append(ctx.task_id)
        if ctx.spec.parent is None:  # the parent: its children need this very slot
            skills.append(await ctx.group_skills())
            return await ctx.delegate_all([part("p1"), part("p2")])
        return {"part": ctx.input}

    await solo.start(hub.url)
    try:
        async with HubClient(hub.url) as client:
            [tid] = await client.submit(TaskSpec(id="top", title="top", skills={"plan": 0.5}))
            status = await client.wait(tid, timeout=60)
            kids = [await client.task(c) for c in status.children]
    finally:
        await solo.stop()
    assert status.state is TaskState.DONE, status.error
    assert status.output == [{"part": {"part": "p1"}}, {"part": {"part": "p2"}}]
    assert [k.history[-1].agent_id for k in kids] == ["solo", "solo"]
    assert ran[0] == "top" and sorted(ran[1:]) == ["top-c1", "top-c2"]
    assert skills == [{"plan": 1.0, "x": 0.8}]  # what a supervisor may ask the group for
    assert hub.board.agents["solo"].lent == set()  # the slot came back when the wait ended


async def past(seconds: float) -> None:
    """Let ``seconds`` go by (the hub's watcher sweeps every 0.05 s meanwhile)."""
    ends = time.monotonic() + seconds
    await until(lambda: time.monotonic() > ends)


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)  # the rule is the board's
async def test_waiting_on_an_open_child_is_not_a_stall_and_its_progress_shows_on_the_parent(
    hub: Hub,
) -> None:
    """The parent's stall timeout is 1.5 s. Its child waits longer than that for an agent
    with its skill, then runs longer than that on a slow agent that says nothing; the
    parent's one attempt is never stalled, and the SDK's summary of its children reaches
    the hub as the parent's progress meanwhile. (Waiting past the stall timeout is the
    subject: the issue names that bound.)"""
    stall = 1.5
    boss = Agent("boss", id="boss", skills={"plan": 1.0})

    @boss.handler
    async def work(ctx: TaskContext) -> object:
        return await ctx.delegate("rare part", skills={"rare": 0.5}, timeouts={"stall": 60})

    release = asyncio.Event()
    ran: list[str] = []
    slowpoke = Agent("slowpoke", id="slowpoke", skills={"rare": 1.0})

    @slowpoke.handler
    async def silent(ctx: TaskContext) -> object:
        ran.append(ctx.task_id)
        await release.wait()  # no progress at all meanwhile
        return "the rare part"

    await boss.start(hub.url)
    try:
        spec = TaskSpec(id="top", title="top", skills={"plan": 0.5}, timeouts=Timeouts(stall=stall))
        hub.board.submit([spec])
        rec = hub.board.tasks["top"]
        await until(lambda: rec.progress_message == "delegated 1: 1 ready")
        child = hub.board.tasks["top-c1"]
        await past(stall + 1.0)  # nobody has the skill: the child stays ready
        assert (rec.state, rec.attempt, child.state) == (TaskState.RUNNING, 1, TaskState.READY)
        await slowpoke.start(hub.url)
        await until(lambda: rec.progress_message == "delegated 1: 1 running (top-c1 slowpoke)")
        await past(stall + 1.0)  # the child runs, silent
        assert (rec.state, rec.attempt, child.state) == (TaskState.RUNNING, 1, TaskState.RUNNING)
        release.set()
        await until(lambda: rec.state.terminal)
    finally:
        release.set()
        await boss.stop()
        await slowpoke.stop()
    assert rec.state is TaskState.DONE, rec.error
    assert rec.output == "the rare part"
    assert [(h.agent_id, h.outcome) for h in rec.history] == [("boss", "done")]
    assert ran == ["top-c1"]


async def test_a_failed_parent_cancels_its_open_child_with_its_reason(hub: Hub) -> None:
    """The parent delegates, does not wait for the child's result, and raises while the
    child runs: with no attempt left the parent fails, and the child is cancelled (not
    left to fail on its own) with the parent's reason, its running handler stopped."""
    boss = Agent("boss", id="boss", skills={"plan": 1.0})
    child_runs = asyncio.Event()

    @boss.handler
    async def work(ctx: TaskContext) -> object:
        with contextlib.suppress(TimeoutError):  # timeout=0: delegated, not waited on
            await ctx.delegate("a part", skills={"x": 0.5}, timeout=0)
        await child_runs.wait()
        raise RuntimeError("the plan fell through")

    stopped: list[str] = []
    helper = Agent("helper", id="helper", skills={"x": 1.0})

    @helper.handler
    async def do(ctx: TaskContext) -> object:
        child_runs.set()
        try:
            await asyncio.Event().wait()  # until it is cancelled
        except asyncio.CancelledError:
            stopped.append(ctx.task_id)
            raise
        return "unreachable"

    await boss.start(hub.url)
    await helper.start(hub.url)
    try:
        async with HubClient(hub.url) as client:
            spec = TaskSpec(id="top", title="top", skills={"plan": 0.5}, max_attempts=1)
            [tid] = await client.submit(spec)
            status = await client.wait(tid, timeout=60)
            await until(lambda: hub.board.tasks["top-c1"].state.terminal)
            kid = await client.task("top-c1")
            log = await client.history("top-c1")
            await until(lambda: stopped == ["top-c1"])
    finally:
        await boss.stop()
        await helper.stop()
    assert status.state is TaskState.FAILED
    assert "RuntimeError: the plan fell through" in (status.error or "")
    assert kid.state is TaskState.CANCELLED
    assert kid.error == f"parent top failed: {status.error}"
    assert [(h.agent_id, h.outcome) for h in kid.history] == [("helper", "cancelled")]
    assert log[-1].kind == "task.cancelled"


async def test_cancelling_the_parent_cancels_its_open_children(hub: Hub) -> None:
    boss = Agent("boss", id="boss", skills={"plan": 1.0})

    @boss.handler
    async def work(ctx: TaskContext) -> object:
        return await ctx.delegate_all([part("never-a"), part("never-b")])

    await boss.start(hub.url)
    try:
        async with HubClient(hub.url) as client:
            [tid] = await client.submit(TaskSpec(id="top", title="top", skills={"plan": 0.5}))
            await until(lambda: len(hub.board.tasks["top"].children) == 2)
            await client.cancel(tid, "changed my mind")
            kids = [await client.task(c) for c in ("top-c1", "top-c2")]
            log = await client.history("top-c1")
    finally:
        await boss.stop()
    assert [k.state for k in kids] == [TaskState.CANCELLED] * 2
    assert all(k.error and k.error.startswith("parent top cancelled") for k in kids)
    assert "changed my mind" in (kids[0].error or "")
    assert log[-1].kind == "task.cancelled"


async def test_a_failed_child_fails_the_attempt_and_the_retry_reuses_the_done_one(
    hub: Hub,
) -> None:
    boss = Agent("boss", id="boss", skills={"plan": 1.0})
    ran: list[str] = []
    seen: list[str] = []

    @boss.handler
    async def work(ctx: TaskContext) -> object:
        try:
            return await ctx.delegate_all([part("ok"), part("flaky", max_attempts=1)])
        except DelegationFailed as exc:
            seen.append(f"{exc.task_id} {exc.state}")
            raise

    helper = worker("helper", "x", ran, fail={"flaky"})
    await boss.start(hub.url)
    await helper.start(hub.url)
    try:
        async with HubClient(hub.url) as client:
            spec = TaskSpec(id="top", title="top", skills={"plan": 0.5}, max_attempts=2)
            [tid] = await client.submit(spec)
            status = await client.wait(tid, timeout=60)
            kids = {c: await client.task(c) for c in status.children}
    finally:
        await boss.stop()
        await helper.stop()
    assert status.state is TaskState.DONE, status.error
    assert [h.outcome for h in status.history] == ["error", "done"]
    assert "DelegationFailed: delegated task top-c2 failed" in status.history[0].reason
    assert seen == ["top-c2 failed"]
    assert {c: k.state for c, k in kids.items()} == {
        "top-c1": TaskState.DONE,
        "top-c2": TaskState.FAILED,
        "top-c3": TaskState.DONE,
    }
    assert status.output == [{"by": "helper", "part": "ok"}, {"by": "helper", "part": "flaky"}]
    assert sorted(ran) == ["top-c1", "top-c2", "top-c3"]  # ok ran once, flaky twice


async def test_a_stale_attempt_or_another_participant_cannot_delegate(
    hub_server: HubProcess,
) -> None:
    hub = hub_server.hubs["alpha"]
    refused = Refusals(hub)
    boss_token, _ = await hub_server.create_token("alpha", "agent", "boss")
    mallory_token, _ = await hub_server.create_token("alpha", "agent", "mallory")
    release = asyncio.Event()
    boss = Agent("boss", id="boss", group="alpha", skills={"plan": 1.0})

    @boss.handler
    async def work(ctx: TaskContext) -> object:
        await release.wait()
        return "done"

    await boss.start(hub_server.url, token=boss_token)
    as_boss = await nats_as(hub_server, boss_token, [])
    as_mallory = await nats_as(hub_server, mallory_token, [])
    try:
        hub.board.submit([TaskSpec(id="top", title="top", skills={"plan": 0.5})])
        rec = hub.board.tasks["top"]
        await until(lambda: rec.state is TaskState.RUNNING)

        def delegate(attempt: int, session: str, key: str = "d1") -> Delegate:
            child = Child(key=key, spec=part("sneaky"))
            return Delegate(
                task_id="top", attempt=attempt, agent_id="boss", session=session, children=[child]
            )

        mine = subjects.hub_delegate("alpha", subjects.sender_for(boss_token))
        theirs = subjects.hub_delegate("alpha", subjects.sender_for(mallory_token))
        # another participant may not delegate in the holder's name
        reply = await ask(as_mallory, theirs, delegate(1, boss.session))
        assert isinstance(reply, ErrorReply) and reply.code is ErrorCode.FORBIDDEN
        # the holder's token, but another session
        reply = await ask(as_boss, mine, delegate(1, "not-the-session"))
        assert isinstance(reply, ErrorReply) and reply.code is ErrorCode.WRONG_SESSION
        # the holder, right now: a child is made
        reply = await ask(as_boss, mine, delegate(1, boss.session))
        assert isinstance(reply, Delegated) and reply.ids == ["top-c1"]
        again = await ask(as_boss, mine, delegate(1, boss.session))  # a retried request
        assert isinstance(again, Delegated) and again.ids == ["top-c1"]
        # the attempt is taken back: it may delegate no more
        hub.board.reassign(ReassignTask(task_id="top", reason="test"))
        reply = await ask(as_boss, mine, delegate(1, boss.session, key="d2"))
        assert isinstance(reply, ErrorReply) and reply.code is ErrorCode.STALE_ATTEMPT
        assert "attempt 1 of task top was revoked" in reply.message
        # a plain submission may not make itself someone's child
        who = hub_server.tokens.principal(subjects.sender_for(mallory_token))
        answer = await hub.handle("api.submit", _submit_child(), who=who)
        assert isinstance(answer, ErrorReply) and answer.code is ErrorCode.INVALID
        assert "parent is set by the hub" in answer.message
    finally:
        release.set()
        await as_boss.close()
        await as_mallory.close()
        await boss.stop()
    assert hub.board.tasks["top"].children == ["top-c1"]
    assert len(refused.of(ErrorCode.FORBIDDEN)) == 1
    assert len(refused.of(ErrorCode.WRONG_SESSION)) == 1
    assert len(refused.of(ErrorCode.STALE_ATTEMPT)) == 1
    assert len(refused.of(ErrorCode.INVALID)) == 1


def _submit_child() -> SubmitTasks:
    return SubmitTasks(tasks=[TaskSpec(title="orphan", parent="top")])


async def test_children_and_their_claims_survive_a_hub_restart(
    nats_server: EmbeddedNats, store: Store, tmp_path: Path
) -> None:
    settings = hub_settings(nats_server, tmp_path)
    ran: list[str] = []
    release = asyncio.Event()
    boss = Agent("boss", id="boss", skills={"plan": 1.0})

    @boss.handler
    async def work(ctx: TaskContext) -> object:
        outputs = await ctx.delegate_all([part("a"), part("b")])
        await release.wait()
        return outputs

    helper = worker("helper", "x", ran)
    first = Hub(settings, store=store)
    await first.start()
    await boss.start(first.url)
    await helper.start(first.url)
    try:
        first.board.submit([TaskSpec(id="top", title="top", skills={"plan": 0.5})])

        def children_done() -> bool:
            kids = [first.board.tasks.get(c) for c in ("top-c1", "top-c2")]
            return all(k is not None and k.state is TaskState.DONE for k in kids)

        await until(children_done)
        before = dict(first.board.tasks["top"].delegated)
    finally:
        await boss.lose("test: the parent's agent goes with the old hub")
        await first.stop()
    second = Hub(settings, store=store)
    await second.start()
    try:
        rec = second.board.tasks["top"]
        assert rec.children == ["top-c1", "top-c2"]
        assert rec.delegated == before == {"1:d1": "top-c1", "1:d2": "top-c2"}
        assert second.board.tasks["top-c1"].spec.parent == "top"
        status = await second.handle("api.task", _get("top"))
        assert status is not None and getattr(status, "children", None) == ["top-c1", "top-c2"]
        # a new parent agent on the new hub: its attempt is handed the finished children
        release.set()
        again = Agent("boss2", id="boss2", skills={"plan": 1.0})
        again.handler(work)
        await again.start(second.url)
        try:
            await until(lambda: rec.state is TaskState.DONE)
        finally:
            await again.stop()
    finally:
        await helper.stop()
        await second.stop()
    assert rec.output == [{"by": "helper", "part": "a"}, {"by": "helper", "part": "b"}]
    assert sorted(ran) == ["top-c1", "top-c2"]  # each child's work done once
    assert rec.history[-1].agent_id == "boss2" and rec.children == ["top-c1", "top-c2"]


def _get(task_id: str) -> GetTask:
    return GetTask(task_id=task_id)


@pytest.mark.parametrize("transport", ["nats", "ws"])
async def test_a_parent_delegates_with_its_own_token_on_both_transports(
    hub_server: HubProcess, transport: str
) -> None:
    """With identity on: ``Delegate`` and the children's status on NATS (the token's own
    subjects) and over the gateway's WebSocket, each tied to the token."""
    hub = hub_server.hubs["alpha"]
    boss_token, _ = await hub_server.create_token("alpha", "agent", "ws-boss")
    helper_token, _ = await hub_server.create_token("alpha", "agent", "helper")
    boss = Agent("ws-boss", id="ws-boss", group="alpha", skills={"plan": 1.0})

    @boss.handler
    async def work(ctx: TaskContext) -> object:
        return await ctx.delegate("a part", skills={"x": 0.5}, input={"part": "p"})

    ran: list[str] = []
    helper = Agent("helper", id="helper", group="alpha", skills={"x": 1.0})

    @helper.handler
    async def do(ctx: TaskContext) -> object:
        ran.append(ctx.task_id)
        return {"done": ctx.input}

    url = hub_server.url if transport == "nats" else str(hub_server.ws_url)
    await boss.start(url, token=boss_token)
    await helper.start(hub_server.url, token=helper_token)
    try:
        hub.board.submit([TaskSpec(id=f"{transport}-top", title="top", skills={"plan": 0.5})])
        rec = hub.board.tasks[f"{transport}-top"]
        await until(lambda: rec.state is TaskState.DONE)
    finally:
        await boss.stop()
        await helper.stop()
    assert rec.output == {"done": {"part": "p"}}
    assert rec.children == [f"{transport}-top-c1"] and ran == [f"{transport}-top-c1"]


async def test_children_keep_the_parents_goal_budget_and_data(hub: Hub) -> None:
    """A child of a goal's task spends the goal's budget: over it, the goal fails, which
    cancels the parent, which cancels its open children. A child is as private as its
    parent and never due later."""
    boss = Agent("boss", id="boss", skills={"plan": 1.0}, clearance="private")
    spender = Agent("spender", id="spender", skills={"x": 1.0}, clearance="private", capacity=2)
    release = asyncio.Event()

    @boss.handler
    async def work(ctx: TaskContext) -> object:
        return await ctx.delegate_all([part("costly"), part("late", deadline=time.time() + 3600)])

    @spender.handler
    async def spend(ctx: TaskContext) -> object:
        if ctx.input == {"part": "late"}:
            await release.wait()  # still open when the budget runs out
        ctx.add_usage(Usage(calls=1, prompt_tokens=10, cost=0.7, models=["m"]))
        return "spent"

    await boss.start(hub.url)
    await spender.start(hub.url)
    try:
        async with HubClient(hub.url) as client:
            deadline = time.time() + 600
            plan = Plan(
                tasks=[
                    TaskSpec(
                        id="lead",
                        title="lead",
                        skills={"plan": 0.5},
                        constraints=Constraints(data="private"),
                    )
                ]
            )
            goal = await client.submit_goal(
                "spend wisely", plan=plan, budget=0.6, deadline=deadline
            )
            await until(lambda: hub.board.goals[goal.id].state == "failed")
            lead = next(r for r in hub.board.tasks.values() if r.spec.goal and not r.spec.parent)
            await until(lambda: all(hub.board.tasks[c].state.terminal for c in lead.children))
            kids = [hub.board.tasks[c] for c in lead.children]
    finally:
        release.set()
        await boss.stop()
        await spender.stop()
    assert "budget exceeded" in (hub.board.goals[goal.id].error or "")
    assert lead.state is TaskState.CANCELLED
    assert {k.spec.goal for k in kids} == {goal.id}
    assert {k.spec.constraints.data for k in kids} == {"private"}
    assert {k.spec.deadline for k in kids} == {lead.spec.deadline}
    states = sorted(k.state.value for k in kids)
    assert "cancelled" in states  # the open child went with its parent
    cancelled = next(k for k in kids if k.state is TaskState.CANCELLED)
    assert (cancelled.error or "").startswith(f"parent {lead.id} cancelled")


async def test_bad_delegate_requests_get_clear_errors_and_are_recorded(hub: Hub, nc: NATS) -> None:
    refused = Refusals(hub)
    subject = subjects.hub_delegate(hub.group, subjects.ANON_SENDER)
    child = Child(key="d1", spec=part("x"))
    unknown = Delegate(task_id="nope", attempt=1, agent_id="a", session="s", children=[child])
    reply = await ask(nc, subject, unknown)
    assert isinstance(reply, ErrorReply) and reply.code is ErrorCode.UNKNOWN_TASK
    raw = await nc.request(subject, b"{not json", timeout=5)
    assert b'"malformed"' in raw.data
    too_many = unknown.model_dump(mode="json")
    too_many["children"] = [child.model_dump(mode="json") | {"key": f"d{i}"} for i in range(21)]
    raw = await nc.request(subject, json.dumps(too_many).encode(), timeout=5)
    assert b'"invalid"' in raw.data and b"children" in raw.data
    # a child naming its own id is refused before anything is made
    boss = Agent("boss", id="boss", skills={"plan": 1.0})
    release = asyncio.Event()

    @boss.handler
    async def work(ctx: TaskContext) -> object:
        await release.wait()
        return "ok"

    await boss.start(hub.url)
    try:
        hub.board.submit([TaskSpec(id="top", title="top", skills={"plan": 0.5})])
        rec = hub.board.tasks["top"]
        await until(lambda: rec.state is TaskState.RUNNING)
        named = Child(key="d1", spec=part("x").model_copy(update={"id": "mine"}))
        bad = Delegate(
            task_id="top", attempt=1, agent_id="boss", session=boss.session, children=[named]
        )
        reply = await ask(nc, subject, bad)
        assert isinstance(reply, ErrorReply) and reply.code is ErrorCode.INVALID
        assert "id of a delegated task are set by the hub" in reply.message
        assert rec.children == [] and rec.delegated == {}
        release.set()
        await until(lambda: rec.state is TaskState.DONE)  # the attempt, and the hub, go on
    finally:
        release.set()
        await boss.stop()
    assert len(refused.of(ErrorCode.UNKNOWN_TASK)) == 1
    assert len(refused.of(ErrorCode.MALFORMED)) == 1
    assert len(refused.of(ErrorCode.INVALID)) == 2


async def test_a_goals_plan_may_not_make_its_task_some_tasks_child(hub: Hub) -> None:
    hub.board.submit([TaskSpec(id="victim", title="someone's task", skills={"nobody": 1.0})])
    async with HubClient(hub.url) as client:
        plan = Plan(tasks=[TaskSpec(id="t", title="t", parent="victim")])
        goal = await client.submit_goal("adopt me", plan=plan)
    assert goal.state == "failed"
    assert "parent is set by the hub" in (goal.error or "")
    assert hub.board.tasks["victim"].children == []
