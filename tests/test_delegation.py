"""Delegation on real processes: a parent hands parts of its task to the group
(``ctx.delegate_all``); children run on other agents (in their own processes, killed with
SIGKILL where the test says so), on a real nats-server and a real store."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from agents_sdk import HubClient
from clawhub.runtime import Hub
from protocols import TaskSpec, TaskState, TaskStatus

HERE = Path(__file__).parent

Spawn = Callable[..., subprocess.Popen[bytes]]


async def wait_until(pred: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


@pytest.fixture
def spawn(hub: Hub, tmp_path: Path) -> Iterator[Spawn]:
    """Start ``tests/delegate_proc.py`` agents on the test's hub; all killed at the end."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(
        agent_id: str, skill: str, seconds: float = 0.5, capacity: int = 1, hold: Path | None = None
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "delegate_proc.py"),
                "--url",
                hub.url,
                "--id",
                agent_id,
                "--skill",
                skill,
                "--seconds",
                str(seconds),
                "--capacity",
                str(capacity),
                "--runs",
                str(tmp_path / "runs.txt"),
                *(["--hold", str(hold)] if hold is not None else []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def runs(tmp_path: Path) -> list[str]:
    path = tmp_path / "runs.txt"
    return path.read_text().splitlines() if path.exists() else []


async def online(client: HubClient, *ids: str) -> bool:
    have = {a.profile.id for a in await client.agents()}
    return set(ids) <= have


def parent_spec(children: list[tuple[str, str]], **extra: object) -> TaskSpec:
    parts = [{"title": t, "skill": s} for t, s in children]
    return TaskSpec(
        id="report", title="report", skills={"plan": 0.5}, input={"children": parts, **extra}
    )


async def children_of(client: HubClient, parent: TaskStatus) -> list[TaskStatus]:
    return [await client.task(c) for c in parent.children]


async def child_running(client: HubClient, tid: str, agent_id: str) -> bool:
    """True when the first child of ``tid`` runs on ``agent_id``."""
    st = await client.task(tid)
    if not st.children:
        return False
    kid = await client.task(st.children[0])
    return kid.state is TaskState.RUNNING and kid.assigned_to == agent_id


async def test_a_parent_delegates_three_children_to_three_agents(
    hub: Hub, spawn: Spawn, tmp_path: Path
) -> None:
    spawn("boss", "plan")
    for n, skill in (("wa", "a"), ("wb", "b"), ("wc", "c")):
        spawn(n, skill)
    async with HubClient(hub.url) as client:
        await wait_until(lambda: online(client, "boss", "wa", "wb", "wc"))
        [tid] = await client.submit(parent_spec([("pa", "a"), ("pb", "b"), ("pc", "c")]))
        status = await client.wait(tid, timeout=90)
        kids = await children_of(client, status)
        log = await client.history(tid)
    assert status.state is TaskState.DONE, status.error
    assert status.output == {
        "by": "boss",
        "parts": [
            {"by": "wa", "part": "pa"},
            {"by": "wb", "part": "pb"},
            {"by": "wc", "part": "pc"},
        ],
    }
    assert [k.id for k in kids] == ["report-c1", "report-c2", "report-c3"]
    assert {k.spec.parent for k in kids} == {"report"}
    assert [k.state for k in kids] == [TaskState.DONE] * 3
    kinds = [e.kind for e in log]
    assert "task.delegated" in kinds
    child_lines = [e.message for e in log if e.kind == "task.child"]
    assert sorted(child_lines) == [f"child report-c{n} done" for n in (1, 2, 3)]
    assert kinds.index("task.delegated") < kinds.index("task.done")


async def test_a_killed_childs_agent_the_child_is_reassigned_and_the_parent_completes(
    hub: Hub, spawn: Spawn, tmp_path: Path
) -> None:
    spawn("boss", "plan")
    doomed = spawn("doomed", "x", seconds=60.0)
    async with HubClient(hub.url) as client:
        await wait_until(lambda: online(client, "boss", "doomed"))
        [tid] = await client.submit(parent_spec([("part", "x")]))
        await wait_until(lambda: child_running(client, tid, "doomed"))
        spawn("backup", "x", seconds=0.3)
        await wait_until(lambda: online(client, "backup"))
        doomed.kill()  # SIGKILL: no goodbye; the hub sees the connection close
        status = await client.wait(tid, timeout=90)
        [kid] = await children_of(client, status)
    assert status.state is TaskState.DONE, status.error
    assert status.output == {"by": "boss", "parts": [{"by": "backup", "part": "part"}]}
    assert [(h.agent_id, h.outcome) for h in kid.history] == [
        ("doomed", "lost"),
        ("backup", "done"),
    ]
    # the parent waited the whole time on one attempt: never stalled, never reassigned
    assert [(h.agent_id, h.outcome) for h in status.history] == [("boss", "done")]


async def test_a_killed_parents_next_attempt_reuses_the_finished_children(
    hub: Hub, spawn: Spawn, tmp_path: Path
) -> None:
    first = spawn("boss1", "plan")
    for n in ("wa", "wb", "wc"):
        spawn(n, "x", seconds=0.2)
    async with HubClient(hub.url) as client:
        await wait_until(lambda: online(client, "boss1", "wa", "wb", "wc"))
        spec = parent_spec([("pa", "x"), ("pb", "x"), ("pc", "x")], linger=True)
        [tid] = await client.submit(spec)
        await wait_until(lambda: _async(f"gathered {tid} 1" in runs(tmp_path)))
        spawn("boss2", "plan")
        await wait_until(lambda: online(client, "boss2"))
        first.kill()
        status = await client.wait(tid, timeout=90)
        kids = await children_of(client, status)
        log = await client.history(tid)
    assert status.state is TaskState.DONE, status.error
    assert [(h.agent_id, h.outcome) for h in status.history] == [
        ("boss1", "lost"),
        ("boss2", "done"),
    ]
    assert [k.id for k in kids] == ["report-c1", "report-c2", "report-c3"]
    parts = status.output["parts"] if isinstance(status.output, dict) else None
    assert parts == [k.output for k in kids]
    # each child ran exactly once: the second attempt was handed the finished ones
    child_runs = [line for line in runs(tmp_path) if line.startswith("report-c")]
    assert sorted(line.split()[0] for line in child_runs) == ["report-c1", "report-c2", "report-c3"]
    assert [len(k.history) for k in kids] == [1, 1, 1]
    delegated = [e for e in log if e.kind == "task.delegated"]
    assert [e.attempt for e in delegated] == [1, 2]
    assert delegated[1].data["reused"] == ["report-c1", "report-c2", "report-c3"]


async def _async(value: bool) -> bool:
    return value


async def test_a_killed_parents_next_attempt_is_handed_its_still_running_child(
    hub: Hub, spawn: Spawn, tmp_path: Path
) -> None:
    """The parent's agent is killed while its child runs on another agent: the child runs
    on, the parent's next attempt (another agent) is handed the child while it is still
    open, and gets its output when it finishes; the child ran once."""
    hold = tmp_path / "release-the-child"
    first = spawn("boss1", "plan")
    spawn("wx", "x", seconds=0.1, hold=hold)
    async with HubClient(hub.url) as client:
        await wait_until(lambda: online(client, "boss1", "wx"))
        [tid] = await client.submit(parent_spec([("pa", "x")]))
        await wait_until(lambda: child_running(client, tid, "wx"))
        spawn("boss2", "plan")
        await wait_until(lambda: online(client, "boss2"))
        first.kill()
        rec = hub.board.tasks[tid]
        await wait_until(lambda: _async(rec.delegated.get("2:d1") == "report-c1"))
        assert hub.board.tasks["report-c1"].state is TaskState.RUNNING  # handed over open
        hold.touch()  # now the child may finish
        status = await client.wait(tid, timeout=90)
        [kid] = await children_of(client, status)
        log = await client.history(tid)
    assert status.state is TaskState.DONE, status.error
    assert [(h.agent_id, h.outcome) for h in status.history] == [
        ("boss1", "lost"),
        ("boss2", "done"),
    ]
    assert status.output == {"by": "boss2", "parts": [{"by": "wx", "part": "pa"}]}
    assert [(h.agent_id, h.outcome) for h in kid.history] == [("wx", "done")]
    child_runs = [line for line in runs(tmp_path) if line.startswith("report-c")]
    assert child_runs == ["report-c1 1 wx"]  # its work done once, for both attempts
    delegated = [e for e in log if e.kind == "task.delegated"]
    assert [e.attempt for e in delegated] == [1, 2]
    assert delegated[1].data["reused"] == ["report-c1"]
    [done] = [e for e in log if e.kind == "task.child"]
    assert done.message == "child report-c1 done"
    assert log.index(delegated[1]) < log.index(done)


async def test_a_passed_deadline_ends_the_parent_and_its_children_with_the_reason(
    hub: Hub, spawn: Spawn, tmp_path: Path
) -> None:
    spawn("boss", "plan")
    spawn("slow", "x", seconds=120.0)
    async with HubClient(hub.url) as client:
        await wait_until(lambda: online(client, "boss", "slow"))
        spec = parent_spec([("pa", "x"), ("pb", "x")])
        spec = spec.model_copy(update={"deadline": time.time() + 6.0})
        [tid] = await client.submit(spec)
        status = await client.wait(tid, timeout=90)
        await wait_until(lambda: _all_ended(client, status.children))
        kids = await children_of(client, status)
    assert status.state is TaskState.FAILED
    assert status.error == "deadline passed"
    # a child's deadline is the parent's (never later)
    assert {k.spec.deadline for k in kids} == {spec.deadline}
    for kid in kids:
        assert kid.state in (TaskState.FAILED, TaskState.CANCELLED)
        assert "deadline passed" in (kid.error or ""), kid.error


async def _all_ended(client: HubClient, ids: list[str]) -> bool:
    states = [(await client.task(i)).state for i in ids]
    return all(s.terminal for s in states)
