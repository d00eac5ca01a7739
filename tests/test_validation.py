"""Validation through to done, and the powers of humans: real hub, real nats-server, real
SQLite store, SDK agents. The judge model is called through litellm with ``mock_response``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from conftest import MakeHub, hub_settings

from agents_sdk import Agent, HubClient, RequestRefused, TaskContext
from clawhub.runtime import EmbeddedNats, Hub
from clawhub.store import Store
from protocols import ErrorCode, TaskState, ValidationStep, subjects

S = TaskState
HUMAN = ValidationStep(kind="human")


async def wait_until(pred: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def in_state(client: HubClient, task_id: str, state: TaskState) -> None:
    async def check() -> bool:
        return (await client.task(task_id)).state is state

    await wait_until(check)


def worker(
    name: str,
    skills: dict[str, float],
    *,
    seen: list[tuple[str, int, list[str]]] | None = None,
    reviews: list[bool] | None = None,
    kind: str = "agent",
    hold: asyncio.Event | None = None,
) -> Agent:
    """An agent whose default handler echoes; with ``reviews``, its review handler answers
    the verdicts in turn; with ``hold``, work waits until the event is set."""
    agent = Agent(name, id=name, skills=skills, kind=kind)  # type: ignore[arg-type]

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        if seen is not None:
            reasons = [v.reasons for v in ctx.assignment.feedback]
            seen.append((ctx.task_id, ctx.attempt, reasons))
        if hold is not None:
            await hold.wait()
        return {"by": agent.id, "attempt": ctx.attempt}

    if reviews is not None:

        @agent.handler(skill="review")
        async def review(ctx: TaskContext) -> object:
            accept = reviews.pop(0) if reviews else True
            return {"accept": accept, "reasons": "looks right" if accept else "missing tests"}

    return agent


async def running(agents: list[Agent], url: str) -> None:
    await asyncio.gather(*(a.start(url) for a in agents))


async def stopped(agents: list[Agent]) -> None:
    await asyncio.gather(*(a.stop() for a in agents), return_exceptions=True)


async def test_human_approves_a_result_and_the_task_completes(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub()
    agent = worker("coder", {"python": 0.9})
    await running([agent], hub.url)
    try:
        async with HubClient(hub.url) as client:
            tid = await client.submit_task("ship it", skills={"python": 0.5}, validation=[HUMAN])
            await in_state(client, tid, S.NEEDS_HUMAN)
            waiting = await client.task(tid)
            assert waiting.output == {"by": "coder", "attempt": 1}
            assert waiting.history[-1].outcome == "delivered"
            assert (await client.agents())[0].load == 0  # the author is free meanwhile
            done = await client.decide(tid, True, "good work", by="alice")
            assert done.state is S.DONE
            assert [(v.step, v.by, v.accepted, v.reasons) for v in done.verdicts] == [
                ("human", "alice", True, "good work")
            ]
            assert done.history[-1].outcome == "done"
            with pytest.raises(RequestRefused) as again:
                await client.decide(tid, False, "changed my mind", by="alice")
            assert again.value.code is ErrorCode.CONFLICT
            log = await client.history(tid, kind="task.verdict")
            assert log[0].data["by"] == "alice"
    finally:
        await stopped([agent])


async def test_human_rejects_and_another_agent_reworks_with_the_reasons(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub()
    seen: list[tuple[str, int, list[str]]] = []
    first = worker("first", {"python": 0.9}, seen=seen)
    second = worker("second", {"python": 0.6}, seen=seen)
    await running([first, second], hub.url)
    try:
        async with HubClient(hub.url) as client:
            tid = await client.submit_task("fix bug", skills={"python": 0.5}, validation=[HUMAN])
            await in_state(client, tid, S.NEEDS_HUMAN)
            author = (await client.task(tid)).history[-1].agent_id
            back = await client.decide(tid, False, "the bug is still there", by="alice")
            assert back.state in (S.READY, S.ASSIGNED, S.RUNNING, S.NEEDS_HUMAN)
            await in_state(client, tid, S.NEEDS_HUMAN)
            status = await client.task(tid)
            assert [h.outcome for h in status.history] == ["rejected", "delivered"]
            reworker = status.history[1].agent_id
            assert reworker != author
            assert status.failures == 1
            # the rework came with the reason attached
            assert seen[-1] == (tid, 2, ["the bug is still there"])
            done = await client.decide(tid, True, by="bob")
            assert done.state is S.DONE
            assert done.output == {"by": reworker, "attempt": 2}
            assert [v.accepted for v in done.verdicts] == [False, True]
    finally:
        await stopped([first, second])


async def test_reviewer_agent_validates_and_is_never_the_author(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub()
    # both can review, so only the rule keeps an author from reviewing its own work
    author = worker("author", {"python": 0.9, "review": 0.9}, reviews=[True, True])
    reviewer = worker("reviewer", {"review": 0.8}, reviews=[False, True])
    await running([author, reviewer], hub.url)
    try:
        async with HubClient(hub.url) as client:
            tid = await client.submit_task(
                "write parser",
                skills={"python": 0.5},
                acceptance=["parses every example"],
                validation=[ValidationStep(kind="reviewer", skill="review", level=0.5)],
                rework="any",
            )
            status = await client.wait(tid, timeout=20)
            assert status.state is S.DONE
            verdicts = [(v.step, v.by, v.accepted) for v in status.verdicts]
            assert verdicts == [("reviewer", "reviewer", False), ("reviewer", "reviewer", True)]
            assert status.verdicts[0].reasons == "missing tests"
            reviews = [t for t in await client.tasks() if t.review_of == tid]
            assert len(reviews) == 2
            for review in reviews:
                assert review.state is S.DONE
                assert review.spec.input["author"] == "author"  # type: ignore[index]
                assert [h.agent_id for h in review.history] == ["reviewer"]
    finally:
        await stopped([author, reviewer])


async def test_judge_model_accepts_after_a_malformed_verdict(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub(["I think it is fine!", '{"accept": true, "reasons": "meets criteria"}'])
    agent = worker("coder", {"python": 0.9})
    await running([agent], hub.url)
    try:
        async with HubClient(hub.url) as client:
            tid = await client.submit_task(
                "summarise",
                skills={"python": 0.5},
                acceptance=["under 100 words"],
                validation=[ValidationStep(kind="judge", model="openai/gpt-4o-mini")],
            )
            status = await client.wait(tid, timeout=30)
            assert status.state is S.DONE
            [verdict] = status.verdicts
            assert (verdict.step, verdict.by, verdict.accepted, verdict.reasons) == (
                "judge",
                "model:openai/gpt-4o-mini",
                True,
                "meets criteria",
            )
            assert status.usage.calls == 2  # the malformed answer was asked again
            assert status.usage.cost > 0  # litellm priced the mocked tokens
    finally:
        await stopped([agent])


async def test_judge_model_rejects_and_the_task_is_reworked(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub(
        ['{"accept": false, "reasons": "too long"}', '{"accept": true, "reasons": "ok now"}']
    )
    seen: list[tuple[str, int, list[str]]] = []
    agent = worker("coder", {"python": 0.9}, seen=seen)
    other = worker("other", {"python": 0.9}, seen=seen)
    await running([agent, other], hub.url)
    try:
        async with HubClient(hub.url) as client:
            tid = await client.submit_task(
                "summarise", skills={"python": 0.5}, validation=[ValidationStep(kind="judge")]
            )
            status = await client.wait(tid, timeout=30)
            assert status.state is S.DONE
            assert [v.accepted for v in status.verdicts] == [False, True]
            assert status.history[0].outcome == "rejected"
            assert status.history[0].agent_id != status.history[1].agent_id
            assert seen[-1][2] == ["too long"]
    finally:
        await stopped([agent, other])


async def test_judge_that_never_answers_usably_escalates_to_a_human(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub(["no JSON here"])  # every call answers this
    agent = worker("coder", {"python": 0.9})
    await running([agent], hub.url)
    try:
        async with HubClient(hub.url) as client:
            tid = await client.submit_task(
                "summarise", skills={"python": 0.5}, validation=[ValidationStep(kind="judge")]
            )
            await in_state(client, tid, S.NEEDS_HUMAN)  # never silently accepted
            escalated = await client.history(tid, kind="task.escalated")
            assert "no usable verdict" in escalated[0].message
            assert "3 tries" in escalated[0].message
            assert (await client.task(tid)).usage.calls == 3
            done = await client.decide(tid, True, "checked by hand", by="alice")
            assert done.state is S.DONE
            assert [v.step for v in done.verdicts] == ["human"]
    finally:
        await stopped([agent])


async def test_schema_then_human_steps_run_in_order(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub()
    agent = worker("coder", {"python": 0.9})
    await running([agent], hub.url)
    try:
        async with HubClient(hub.url) as client:
            tid = await client.submit_task(
                "typed",
                skills={"python": 0.5},
                output_schema={"type": "object", "required": ["by"]},
                validation=[HUMAN],
            )
            await in_state(client, tid, S.NEEDS_HUMAN)
            status = await client.task(tid)
            assert [(v.step, v.accepted) for v in status.verdicts] == [("schema", True)]
            assert status.validation_step == 1
            done = await client.decide(tid, True, by="alice")
            assert [v.step for v in done.verdicts] == ["schema", "human"]
    finally:
        await stopped([agent])


async def test_a_human_takes_a_task_and_submits_its_result(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub()
    submitted = asyncio.Event()
    human = worker("alice", {"design": 0.9}, kind="human", hold=submitted)
    await running([human], hub.url)
    try:
        async with HubClient(hub.url) as client:
            await client.set_agent_mode("alice", "paused", by="alice")  # no offers unasked
            tid = await client.submit_task("draw the logo", skills={"design": 0.5})
            await in_state(client, tid, S.READY)
            claimed = await client.claim(tid, "alice")
            assert claimed.state is S.READY
            await in_state(client, tid, S.RUNNING)
            # humans send no progress: the stall timer does not apply to them
            assert (await client.task(tid)).assigned_to == "alice"
            submitted.set()
            done = await client.wait(tid, timeout=10)
            assert done.output == {"by": "alice", "attempt": 1}
            with pytest.raises(RequestRefused) as late:
                await client.claim(tid, "alice")
            assert late.value.code is ErrorCode.CONFLICT
    finally:
        submitted.set()
        await stopped([human])


async def test_reassign_moves_a_running_task_to_the_chosen_agent(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub()
    never = asyncio.Event()
    stuck = worker("stuck", {"python": 0.9}, hold=never)
    fresh = worker("fresh", {"python": 0.6})
    await running([stuck, fresh], hub.url)
    try:
        async with HubClient(hub.url) as client:
            await client.set_agent_mode("fresh", "paused", by="alice")
            tid = await client.submit_task("slow job", skills={"python": 0.5})
            await in_state(client, tid, S.RUNNING)
            assert (await client.task(tid)).assigned_to == "stuck"
            moved = await client.reassign(tid, to="fresh", reason="too slow", by="alice")
            assert moved.history[0].outcome == "revoked"
            assert moved.failures == 0  # a reassignment is not the agent's failure
            done = await client.wait(tid, timeout=10)
            assert [h.agent_id for h in done.history] == ["stuck", "fresh"]
            assert done.output == {"by": "fresh", "attempt": 2}
            assert stuck.running == []  # the old holder was told to stop
    finally:
        never.set()
        await stopped([stuck, fresh])


async def test_paused_agents_get_no_work_until_resumed_and_draining_is_announced(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub()
    agent = worker("solo", {"python": 0.9})
    await running([agent], hub.url)
    try:
        async with HubClient(hub.url) as client:
            info = await client.set_agent_mode("solo", "paused", "lunch", by="alice")
            assert info.mode == "paused"
            tid = await client.submit_task("later", skills={"python": 0.5})
            await asyncio.sleep(0.3)  # give the scheduler passes to (wrongly) offer it
            assert (await client.task(tid)).state is S.READY
            await client.set_agent_mode("solo", "active", by="alice")
            assert (await client.wait(tid, timeout=10)).state is S.DONE
            drained = await client.set_agent_mode("solo", "draining", by="alice")
            assert drained.mode == "draining"
            assert [e.agent_id for e in await client.history(kind="agent.drained")] == ["solo"]
    finally:
        await stopped([agent])


async def test_chat_group_info_and_who_may_act(make_hub: MakeHub) -> None:
    hub = await make_hub()
    agent = worker("bot", {"python": 0.9})
    await running([agent], hub.url)
    try:
        async with HubClient(hub.url) as client:
            await client.chat("alice", "hello, group")
            await client.chat("bot", "hi alice")
            lines = await client.history(kind="chat.message")
            assert [(e.agent_id, e.message) for e in lines] == [
                ("alice", "hello, group"),
                ("bot", "hi alice"),
            ]
            tid = await client.submit_task("x", skills={"python": 0.5}, validation=[HUMAN])
            await in_state(client, tid, S.NEEDS_HUMAN)
            # an agent may not approve, cancel, or pause another participant
            await client.set_agent_mode("bot", "active", by="bot")  # itself: allowed
            for call in (
                lambda: client.decide(tid, True, by="bot"),
                lambda: client.cancel(tid, "mine now", by="bot"),
                lambda: client.reassign(tid, by="bot"),
            ):
                with pytest.raises(RequestRefused) as refused:
                    await call()
                assert refused.value.code is ErrorCode.FORBIDDEN
            info = await client.group_info()
            assert info.tasks == {"needs_human": 1}
            assert (info.agents_online, info.agents_total) == (1, 1)
            assert info.coordinator_model == "moonshot/kimi-k2.6"
    finally:
        await stopped([agent])


async def test_group_info_says_plainly_when_the_coordinator_has_no_key(
    make_hub: MakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MOONSHOT_API_KEY", raising=False)
    hub = await make_hub()
    async with HubClient(hub.url) as client:
        info = await client.group_info()
        assert not info.coordinator_ready
        assert "MOONSHOT_API_KEY" in info.coordinator_note
        started = await client.history(kind="hub.started")
        assert "MOONSHOT_API_KEY" in started[-1].message


async def test_validation_resumes_after_a_hub_restart(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    store_url = f"sqlite:///{tmp_path / 'restart.db'}"
    settings = hub_settings(nats_server, tmp_path)
    agent = worker("coder", {"python": 0.9})
    first = Hub(settings, store=Store(store_url))
    await first.start()
    await running([agent], first.url)
    try:
        async with HubClient(first.url) as client:
            tid = await client.submit_task("x", skills={"python": 0.5}, validation=[HUMAN])
            await in_state(client, tid, S.NEEDS_HUMAN)
        await first.stop()
        first.store.close()
        second = Hub(settings, store=Store(store_url))
        await second.start()
        try:
            async with HubClient(second.url) as client:
                status = await client.task(tid)
                assert status.state is S.NEEDS_HUMAN
                assert status.output == {"by": "coder", "attempt": 1}
                done = await client.decide(tid, True, by="alice")
                assert done.state is S.DONE
        finally:
            await second.stop()
            second.store.close()
    finally:
        await stopped([agent])


async def test_bad_human_requests_get_clear_errors_are_recorded_and_lose_nothing(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub()
    agent = worker("coder", {"python": 0.9})
    await running([agent], hub.url)
    try:
        async with HubClient(hub.url) as client:
            tid = await client.submit_task("x", skills={"python": 0.5}, validation=[HUMAN])
            await in_state(client, tid, S.NEEDS_HUMAN)
            idle = await client.submit_task("nobody can", skills={"cobol": 0.5})
            ghost = "ghost"
            cases = [
                (lambda: client.decide("no-such-task", True, by="alice"), ErrorCode.UNKNOWN_TASK),
                (lambda: client.decide(idle, True, by="alice"), ErrorCode.CONFLICT),
                (lambda: client.reassign(idle, to=ghost, by="alice"), ErrorCode.UNKNOWN_AGENT),
                (lambda: client.claim(idle, ghost), ErrorCode.UNKNOWN_AGENT),
                (lambda: client.claim(idle, "coder"), ErrorCode.CONFLICT),  # lacks cobol
                (lambda: client.claim(tid, "coder"), ErrorCode.CONFLICT),  # not ready
                (lambda: client.set_agent_mode(ghost, "paused", by="a"), ErrorCode.UNKNOWN_AGENT),
                (lambda: client.goal("g-nothing"), ErrorCode.UNKNOWN_TASK),
                (lambda: client.decide_plan("g-nothing", True, by="a"), ErrorCode.UNKNOWN_TASK),
            ]
            for call, code in cases:
                with pytest.raises(RequestRefused) as refused:
                    await call()
                assert refused.value.code is code, refused.value
            # a malformed decision on the wire: refused as invalid and recorded
            raw = b'{"type": "claw.v1.api.decide", "task_id": "' + tid.encode() + b'", "by": "a"}'
            reply = await client.nc.request(
                subjects.api("default", subjects.ANON_SENDER, subjects.API_DECIDE), raw
            )
            assert b'"code":"invalid"' in reply.data.replace(b" ", b"")
            log = await client.history(kind="message.refused")
            assert {e.data["code"] for e in log} >= {"unknown_task", "unknown_agent", "invalid"}
            # nothing was lost: the result still waits, and a good decision still works
            status = await client.task(tid)
            assert status.state is S.NEEDS_HUMAN and status.output == {"by": "coder", "attempt": 1}
            assert (await client.decide(tid, True, by="alice")).state is S.DONE
    finally:
        await stopped([agent])
