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
        agent_id: str, skill: str, seconds: float = 0.5, capacity: int = 1
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
