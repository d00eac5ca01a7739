"""Goals: planned by the coordinator model (litellm ``mock_response``) or given as a plan,
approved by humans, run as a task graph to a deliverable, within a budget. Real hub, real
nats-server, real store."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import MakeHub, hub_settings
from fakes import FakeAgent, ask

from agents_sdk import Agent, HubClient, RequestRefused, TaskContext
from clawhub.runtime import EmbeddedNats, Hub
from clawhub.store import Store
from protocols import (
    ErrorCode,
    GoalSpec,
    Plan,
    ResultAck,
    TaskSpec,
    TaskState,
    Usage,
    encode,
    subjects,
)

S = TaskState


def plan_of(*tasks: tuple[str, str, list[str]], deliverable: str | None = None) -> Plan:
    """A plan from ``(id, skill, depends_on)`` triples."""
    return Plan(
        tasks=[
            TaskSpec(id=i, title=f"do {i}", instructions=f"step {i}", skills={s: 0.5}, depends_on=d)
            for i, s, d in tasks
        ],
        deliverable=deliverable,
    )


DIAMOND = plan_of(
    ("research", "research", []),
    ("code", "python", ["research"]),
    ("docs", "writing", ["research"]),
    ("final", "writing", ["code", "docs"]),
)


def echo(name: str, skills: dict[str, float]) -> Agent:
    agent = Agent(name, id=name, skills=skills, capacity=2)

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        local = ctx.spec.metadata.get("goal_task", ctx.task_id)
        return {"step": local, "by": agent.id, "deps": sorted(ctx.dependency_outputs)}

    return agent


@pytest.fixture
async def fleet(make_hub: MakeHub) -> AsyncIterator[list[Agent]]:
    agents = [
        echo("researcher", {"research": 0.9}),
        echo("coder", {"python": 0.9}),
        echo("writer", {"writing": 0.8}),
    ]
    yield agents
    await asyncio.gather(*(a.stop() for a in agents), return_exceptions=True)


async def join(agents: list[Agent], url: str) -> None:
    await asyncio.gather(*(a.start(url) for a in agents))


async def test_a_given_plan_runs_to_its_deliverable(make_hub: MakeHub, fleet: list[Agent]) -> None:
    hub = await make_hub()
    await join(fleet, hub.url)
    async with HubClient(hub.url) as client:
        status = await client.submit_goal("ship the parser", plan=DIAMOND)
        assert status.state == "running"
        assert status.task_ids == [
            f"{status.id}-{t}" for t in ("research", "code", "docs", "final")
        ]
        done = await client.wait_goal(status.id, timeout=20)
        assert done.state == "done", done.error
        assert (done.tasks_total, done.tasks_done, done.tasks_failed) == (4, 4, 0)
        assert done.deliverable == {
            "step": "final",
            "by": "writer",
            "deps": [f"{status.id}-code", f"{status.id}-docs"],
        }
        task = await client.task(f"{status.id}-code")
        assert task.spec.goal == status.id
        kinds = [e.kind for e in await client.history(kind="goal.")]
        assert kinds[:3] == ["goal.submitted", "goal.planned", "goal.running"]
        assert kinds[-1] == "goal.done"
        assert "goal.progress" in kinds


async def test_a_free_text_goal_is_planned_by_the_coordinator_model(
    make_hub: MakeHub, fleet: list[Agent]
) -> None:
    answer = {
        "tasks": [
            {"id": "find", "title": "Find sources", "skills": {"research": 0.5}},
            {
                "id": "write",
                "title": "Write the report",
                "instructions": "merge what was found",
                "skills": {"writing": 0.5},
                "depends_on": ["find"],
                "acceptance": ["cites every source"],
            },
        ],
        "deliverable": "write",
        "rationale": "research, then write",
    }
    hub = await make_hub(["```json\n" + json.dumps(answer) + "\n```"])
    await join(fleet, hub.url)
    async with HubClient(hub.url) as client:
        status = await client.submit_goal("a report on NATS", budget=5.0)
        assert status.state == "planning"
        done = await client.wait_goal(status.id, timeout=20)
        assert done.state == "done", done.error
        assert done.plan is not None and [t.id for t in done.plan.tasks] == ["find", "write"]
        assert done.planning_attempts == 1
        assert done.deliverable == {"step": "write", "by": "writer", "deps": [f"{done.id}-find"]}
        assert done.usage.calls == 1 and done.usage.cost > 0  # litellm priced the plan


async def test_an_invalid_plan_is_sent_back_with_its_errors_and_repaired(
    make_hub: MakeHub, fleet: list[Agent]
) -> None:
    cyclic = {
        "tasks": [
            {"id": "a", "title": "A", "skills": {"research": 0.5}, "depends_on": ["b"]},
            {"id": "b", "title": "B", "skills": {"writing": 0.5}, "depends_on": ["a"]},
        ]
    }
    good = {
        "tasks": [
            {"id": "a", "title": "A", "skills": {"research": 0.5}},
            {"id": "b", "title": "B", "skills": {"writing": 0.5}, "depends_on": ["a"]},
        ]
    }
    hub = await make_hub([json.dumps(cyclic), json.dumps(good)])
    await join(fleet, hub.url)
    async with HubClient(hub.url) as client:
        status = await client.submit_goal("two steps")
        done = await client.wait_goal(status.id, timeout=20)
        assert done.state == "done", done.error
        assert done.planning_attempts == 2
        [invalid] = await client.history(kind="goal.plan_invalid")
        assert "dependency cycle" in invalid.message


async def test_a_plan_that_stays_invalid_fails_the_goal_clearly(
    make_hub: MakeHub, fleet: list[Agent]
) -> None:
    unknown_skill = {"tasks": [{"id": "a", "title": "A", "skills": {"juggling": 0.5}}]}
    hub = await make_hub(["not a plan at all", json.dumps(unknown_skill)])
    await join(fleet, hub.url)
    async with HubClient(hub.url) as client:
        status = await client.submit_goal("impossible")
        failed = await client.wait_goal(status.id, timeout=20)
        assert failed.state == "failed"
        assert failed.planning_attempts == 3
        assert failed.error is not None
        assert "no usable plan after 3 tries" in failed.error
        assert "juggling" in failed.error  # the last problem is named
        assert failed.task_ids == []


async def test_with_no_api_key_planning_fails_saying_which_key(
    make_hub: MakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    hub = await make_hub(coordinator_model="anthropic/claude-sonnet-4-5")
    async with HubClient(hub.url) as client:
        status = await client.submit_goal("plan me")
        failed = await client.wait_goal(status.id, timeout=10)
        assert failed.state == "failed"
        assert failed.error is not None and "ANTHROPIC_API_KEY" in failed.error
        # a given plan needs no model at all
        given = await client.submit_goal("plan given", plan=plan_of(("x", "python", [])))
        assert given.state == "running"


async def test_a_human_approves_an_edited_plan_or_rejects_it(
    make_hub: MakeHub, fleet: list[Agent]
) -> None:
    hub = await make_hub()
    await join(fleet, hub.url)
    async with HubClient(hub.url) as client:
        status = await client.submit_goal(
            GoalSpec(text="supervised", approve_plan=True), plan=DIAMOND
        )
        assert status.state == "awaiting_approval"
        assert (await client.tasks()) == []  # nothing starts before the approval
        smaller = plan_of(("research", "research", []), ("final", "writing", ["research"]))
        approved = await client.decide_plan(status.id, True, by="alice", plan=smaller)
        assert approved.state == "running"
        done = await client.wait_goal(status.id, timeout=20)
        assert done.state == "done" and done.tasks_total == 2
        with pytest.raises(RequestRefused) as late:
            await client.decide_plan(status.id, True, by="alice")
        assert late.value.code is ErrorCode.CONFLICT

        other = await client.submit_goal(GoalSpec(text="no", approve_plan=True), plan=DIAMOND)
        rejected = await client.decide_plan(other.id, False, by="alice", reason="too big")
        assert rejected.state == "failed"
        assert rejected.error == "plan rejected by alice: too big"


async def test_a_given_plan_with_errors_is_refused_whole(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub()
    async with HubClient(hub.url) as client:
        loose = plan_of(("a", "python", []), ("b", "python", []), deliverable="b")
        with pytest.raises(RequestRefused) as refused:
            await client.submit_goal("loose ends", plan=loose)
        assert refused.value.code is ErrorCode.INVALID
        assert "must consolidate every other task" in refused.value.message
        assert await client.goals() == []


async def test_deadline_and_validation_pass_down_and_cancel_stops_the_goal(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub()
    deadline = time.time() + 3600
    async with HubClient(hub.url) as client:
        status = await client.submit_goal(
            GoalSpec(text="later", deadline=deadline), plan=plan_of(("x", "nobody", []))
        )
        [task] = await client.tasks()
        assert task.spec.deadline == deadline
        cancelled = await client.cancel_goal(status.id, "not needed", by="alice")
        assert cancelled.state == "cancelled"
        assert (await client.task(task.id)).state is S.CANCELLED


async def test_a_budget_stops_the_goal_before_more_tasks_start(
    make_hub: MakeHub, nats_server: EmbeddedNats
) -> None:
    hub = await make_hub()
    import nats

    nc = await nats.connect(hub.url)
    fake = FakeAgent(nc, "pricey", {"python": 0.9})
    await fake.start()
    try:
        async with HubClient(hub.url) as client:
            chain = plan_of(
                ("one", "python", []), ("two", "python", ["one"]), ("three", "python", ["two"])
            )
            status = await client.submit_goal(GoalSpec(text="costly", budget=1.0), plan=chain)
            for _ in range(2):
                offer = await fake.next_offer()
                result = fake.result_msg(
                    offer.task_id,
                    offer.attempt,
                    {"ok": True},
                    usage=Usage(prompt_tokens=100, completion_tokens=50, cost=0.6, calls=1),
                )
                ack = await ask(
                    nc, subjects.hub_result("default", subjects.ANON_SENDER), encode(result)
                )
                assert isinstance(ack, ResultAck)
                fake.running.pop(offer.task_id, None)
            failed = await client.wait_goal(status.id, timeout=10)
            assert failed.state == "failed"
            assert failed.error == "budget exceeded: spent $1.2000 of $1.0000"
            assert failed.usage.cost == pytest.approx(1.2)
            assert failed.usage.prompt_tokens == 200
            third = await client.task(f"{status.id}-three")
            assert third.state is S.CANCELLED and third.history == []  # never started
            info = await client.group_info()
            assert info.usage.cost == pytest.approx(1.2)
            [agent] = await client.agents()
            assert agent.usage.cost == pytest.approx(1.2)
    finally:
        await fake.stop()
        await nc.drain()


async def test_goals_survive_a_hub_restart(nats_server: EmbeddedNats, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'goals.db'}"
    settings = hub_settings(nats_server, tmp_path)
    first = Hub(settings, store=Store(url))
    await first.start()
    async with HubClient(first.url) as client:
        status = await client.submit_goal(GoalSpec(text="keep me", approve_plan=True), plan=DIAMOND)
    await first.stop()
    first.store.close()
    second = Hub(settings, store=Store(url))
    await second.start()
    try:
        async with HubClient(second.url) as client:
            again = await client.goal(status.id)
            assert again.state == "awaiting_approval"
            assert again.plan == DIAMOND
            running = await client.decide_plan(status.id, True, by="alice")
            assert running.tasks_total == 4 and len(running.task_ids) == 4
    finally:
        await second.stop()
        second.store.close()
