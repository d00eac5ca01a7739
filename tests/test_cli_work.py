"""``clawhub`` commands for people: decisions, reassignment, modes, chat, task detail, goals.
Real processes against a real hub on a real nats-server and SQLite store."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from test_cli import clawhub, clawhub_sync, worker

from agents_sdk import HubClient
from clawhub.runtime import Hub
from clawhub.store import Store
from protocols import GoalList, TaskState, ValidationStep

PLAN_YAML = """\
deliverable: report
tasks:
  - id: gather
    title: Gather the facts
    skills: {text: 0.5}
    input: {topic: nats}
  - id: report
    title: Write the report
    skills: {text: 0.5}
    depends_on: [gather]
    acceptance: [mentions every fact]
"""


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    """SQLite only: the CLI is the subject here."""
    return sqlite_store


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CLAWHUB_") and not k.endswith("_API_KEY")
    }
    return {**clean, "HOME": str(home), "COLUMNS": "200", "CLAWHUB_USER": "alice"}


async def test_goal_from_a_plan_file_runs_and_is_listed(
    hub: Hub, env: dict[str, str], tmp_path: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN_YAML)
    async with worker(hub.url):
        run = await clawhub(
            env, "goal", "a report", "--plan", str(plan), "--wait", "--url", hub.url
        )
    assert run.code == 0, run
    assert "done" in run.out and "2/2" in run.out
    assert "deliverable:" in run.out and '"echo"' in run.out
    listed = await clawhub(env, "goals", "--url", hub.url, "--json")
    [goal] = GoalList.model_validate_json(listed.out).goals
    assert goal.state == "done" and goal.plan is not None
    assert [t.id for t in goal.plan.tasks] == ["gather", "report"]
    one = await clawhub(env, "goals", goal.id, "--url", hub.url)
    assert "gather: Gather the facts" in one.out and "report: Write the report" in one.out


async def test_free_text_goal_without_a_key_fails_naming_it(hub: Hub, env: dict[str, str]) -> None:
    info = await clawhub(env, "group", "--url", hub.url)
    assert info.code == 0, info
    assert "moonshot/kimi-k2.6" in info.out and "MOONSHOT_API_KEY" in info.out
    run = await clawhub(env, "goal", "plan this for me", "--wait", "--url", hub.url)
    assert run.code == 1, run
    assert "failed: cannot plan goal" in run.out and "set MOONSHOT_API_KEY" in run.out


async def test_plan_approval_from_the_cli(hub: Hub, env: dict[str, str], tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN_YAML)
    run = await clawhub(
        env, "goal", "supervised", "--plan", str(plan), "--approve-plan", "--url", hub.url
    )
    assert "awaiting_approval" in run.out, run
    async with HubClient(hub.url) as client:
        [goal] = await client.goals()
        assert await client.tasks() == []
        async with worker(hub.url):
            ok = await clawhub(env, "approve-plan", goal.id, "--url", hub.url)
            assert "running" in ok.out, ok
            done = await client.wait_goal(goal.id, timeout=20)
        assert done.state == "done"
        other = await client.submit_goal("second", approve_plan=True, plan=goal.plan)
    no = await clawhub(env, "reject-plan", other.id, "--reason", "not now", "--url", hub.url)
    assert "plan rejected by alice: not now" in no.out, no


async def test_reject_then_approve_and_show_the_verdicts(hub: Hub, env: dict[str, str]) -> None:
    async with worker(hub.url, "w1"), worker(hub.url, "w2"), HubClient(hub.url) as client:
        tid = await client.submit_task(
            "needs a look", skills={"text": 0.5}, validation=[ValidationStep(kind="human")]
        )

        async def until(wanted: TaskState) -> None:
            for _ in range(300):
                if (await client.task(tid)).state is wanted:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError(f"task {tid} never reached {wanted.value}")

        await until(TaskState.NEEDS_HUMAN)
        no = await clawhub(env, "reject", tid, "--reason", "too short", "--url", hub.url)
        assert no.code == 0, no
        await until(TaskState.NEEDS_HUMAN)
        yes = await clawhub(env, "approve", tid, "--reason", "better", "--url", hub.url)
        assert f"{tid} done" in yes.out, yes
        show = await clawhub(env, "show", tid, "--url", hub.url)
    assert "verdict #1 human by alice: rejected too short" in show.out, show
    assert "verdict #2 human by alice: accepted better" in show.out
    assert "chosen among:" in show.out


async def test_pause_chat_and_reassign(hub: Hub, env: dict[str, str]) -> None:
    async with worker(hub.url, "w1"), HubClient(hub.url) as client:
        paused = await clawhub(env, "pause", "w1", "--reason", "coffee", "--url", hub.url)
        assert "w1 paused" in paused.out, paused
        tid = await client.submit_task("waits", skills={"text": 0.5})
        moved = await clawhub(env, "reassign", tid, "--to", "w1", "--url", hub.url)
        assert f"{tid} ready → w1" in moved.out, moved
        done = await client.wait(tid, timeout=10)  # the pin beats the pause
        assert done.state is TaskState.DONE
        said = await clawhub(env, "chat", "all done?", "--url", hub.url)
        assert said.code == 0, said
        [line] = await client.history(kind="chat.message")
        assert (line.agent_id, line.message) == ("alice", "all done?")
        resumed = await clawhub(env, "resume", "w1", "--url", hub.url)
        assert "w1 active" in resumed.out


def test_plan_file_errors_are_reported(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [{title: no id}]\nbogus: 1\n")
    run = clawhub_sync(env, "goal", "x", "--plan", str(bad), "--url", "nats://127.0.0.1:1")
    assert run.code == 2, run
    assert "bad goal" in run.err and "bogus" in run.err
