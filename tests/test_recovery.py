"""Stalled and lost agents, fencing, hub crashes and bus restarts: nothing lost, nothing
completed twice. Real nats-server, real store, agents in real processes where they die."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from conftest import hub_settings

from agents_sdk import Agent, HubClient, TaskContext
from clawhub.runtime import EmbeddedNats, Hub
from clawhub.settings import HubSettings
from clawhub.store import Store
from protocols import AgentInfo, TaskSpec, TaskState, TaskStatus, Timeouts

HERE = Path(__file__).parent


async def wait_until(pred: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def spawn_agent(
    url: str,
    agent_id: str,
    runs: Path,
    seconds: float = 5.0,
    level: float = 1.0,
    *,
    block: bool = False,
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            str(HERE / "agent_proc.py"),
            "--url",
            url,
            "--id",
            agent_id,
            "--runs",
            str(runs),
            "--seconds",
            str(seconds),
            "--level",
            str(level),
            *(["--block"] if block else []),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def quick_agent(
    agent_id: str, level: float, log: list[str] | None = None, delay: float = 0.0, capacity: int = 1
) -> Agent:
    agent = Agent(agent_id, id=agent_id, skills={"x": level}, capacity=capacity)

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        if log is not None:
            log.append(ctx.task_id)
        if delay:
            await asyncio.sleep(delay)
        await ctx.progress(1.0)
        return {"by": agent_id}

    return agent


async def running_on(client: HubClient, task_id: str, agent_id: str) -> bool:
    status = await client.task(task_id)
    return status.state is TaskState.RUNNING and status.assigned_to == agent_id


async def handling(client: HubClient, task_id: str, agent_id: str) -> bool:
    """The agent's handler runs the task: it has reported progress. A pushed assignment is
    ``running`` on the hub before the agent has even read it."""
    status = await client.task(task_id)
    running = status.state is TaskState.RUNNING and status.assigned_to == agent_id
    return running and status.progress is not None


async def test_killed_agent_is_lost_at_once_and_its_task_reassigned(
    hub: Hub, tmp_path: Path
) -> None:
    runs = tmp_path / "runs.txt"
    doomed = spawn_agent(hub.url, "doomed", runs)
    backup = quick_agent("backup", 0.5)
    try:
        async with HubClient(hub.url) as client:
            await wait_until(lambda: _has_agent(client, "doomed"))
            [tid] = await client.submit(TaskSpec(title="work", skills={"x": 0.5}))
            await wait_until(lambda: running_on(client, tid, "doomed"))
            await backup.start(hub.url)
            doomed.kill()  # SIGKILL: the connection closes, no goodbye
            status = await client.wait(tid, timeout=20)
            log = await client.history(tid)
    finally:
        doomed.kill()
        doomed.wait()
        await backup.stop()
    assert status.state is TaskState.DONE
    assert [(h.agent_id, h.outcome) for h in status.history] == [
        ("doomed", "lost"),
        ("backup", "done"),
    ]
    assert "connection closed" in status.history[0].reason
    kinds = [e.kind for e in log]
    assert kinds.index("task.revoked") < kinds.index("task.retry") < kinds.index("task.done")
    revoked = next(e for e in log if e.kind == "task.revoked")
    assert (revoked.agent_id, revoked.data["outcome"]) == ("doomed", "lost")
    assert "connection closed" in revoked.message
    assert [e.seq for e in log] == sorted(e.seq for e in log)
    await hub.durable()
    lost = hub.store.events(hub.group, kind="agent.lost")
    assert [e.agent_id for e in lost] == ["doomed"]
    assert json.loads(lost[0].data)["revoked"] == [tid]
    info = {a.profile.id: a for a in await _agents(hub)}
    assert info["doomed"].state == "lost"
    assert info["doomed"].reliability < info["backup"].reliability


async def test_frozen_agent_is_lost_by_missed_beats_and_its_late_result_refused(
    hub: Hub, tmp_path: Path
) -> None:
    runs = tmp_path / "runs.txt"
    # blocking: woken, it finishes before it reads the cancel sent meanwhile (an agent
    # asleep on its loop may read the cancel first, stop, and send nothing late)
    frozen = spawn_agent(hub.url, "frozen", runs, seconds=1.0, block=True)
    backup = quick_agent("backup", 0.5)
    try:
        async with HubClient(hub.url) as client:
            await wait_until(lambda: _has_agent(client, "frozen"))
            [tid] = await client.submit(TaskSpec(title="work", skills={"x": 0.5}))
            await backup.start(hub.url)
            # frozen mid-handler, so that it wakes with work in hand; frozen before it read
            # the pushed assignment, it would wake to the hub's cancel and send nothing late
            await wait_until(lambda: handling(client, tid, "frozen"))
            frozen.send_signal(signal.SIGSTOP)  # the connection stays open: only beats tell
            status = await client.wait(tid, timeout=20)
            frozen.send_signal(signal.SIGCONT)  # it wakes, finishes, and reports attempt 1

            async def refused() -> bool:
                await hub.durable()
                return any(
                    json.loads(e.data).get("code") == "stale_attempt"
                    for e in hub.store.events(hub.group, kind="message.refused")
                )

            await wait_until(refused, timeout=20)
            after = await client.task(tid)
    finally:
        frozen.send_signal(signal.SIGCONT)
        frozen.terminate()
        frozen.wait(10)
        await backup.stop()
    assert status.state is TaskState.DONE
    assert [(h.agent_id, h.outcome) for h in status.history] == [
        ("frozen", "lost"),
        ("backup", "done"),
    ]
    assert "no heartbeat" in status.history[0].reason
    assert after.output == {"by": "backup"}  # the late result was never applied
    assert after.history == status.history
    assert runs.read_text().split()[:3] == [tid, "1", "frozen"]


async def test_stalled_attempt_is_revoked_cancelled_and_reassigned(hub: Hub) -> None:
    cancelled = asyncio.Event()
    hanger = Agent("hanger", id="hanger", skills={"x": 1.0})

    @hanger.handler
    async def hang(ctx: TaskContext) -> object:
        await ctx.progress(0.1, "calling a model that never answers")
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return None

    backup = quick_agent("backup", 0.5)
    await hanger.start(hub.url)
    await backup.start(hub.url)
    try:
        async with HubClient(hub.url) as client:
            [tid] = await client.submit(
                TaskSpec(title="work", skills={"x": 0.5}, timeouts=Timeouts(stall=0.5))
            )
            status = await client.wait(tid, timeout=20)
            await asyncio.wait_for(cancelled.wait(), 5)
            agents = {a.profile.id: a for a in await client.agents()}
    finally:
        await hanger.stop()
        await backup.stop()
    assert status.state is TaskState.DONE
    assert [(h.agent_id, h.outcome) for h in status.history] == [
        ("hanger", "stalled"),
        ("backup", "done"),
    ]
    assert "stall timeout 0.5s" in status.history[0].reason
    assert agents["hanger"].state == "online"  # alive, just stuck on that task
    assert agents["hanger"].reliability < agents["backup"].reliability
    assert agents["hanger"].load == 0


async def test_exhausted_attempts_fail_with_the_full_history(hub: Hub) -> None:
    hangers = []
    for name in ("h1", "h2"):
        agent = Agent(name, id=name, skills={"x": 1.0})

        @agent.handler
        async def hang(ctx: TaskContext) -> object:
            await asyncio.sleep(60)
            return None

        hangers.append(agent)
    for agent in hangers:
        await agent.start(hub.url)
    try:
        async with HubClient(hub.url) as client:
            [tid] = await client.submit(
                TaskSpec(title="hopeless", timeouts=Timeouts(stall=0.3), max_attempts=2)
            )
            status = await client.wait(tid, timeout=20)
    finally:
        for agent in hangers:
            await agent.stop()
    assert status.state is TaskState.FAILED
    assert [h.outcome for h in status.history] == ["stalled", "stalled"], [
        (h.agent_id, h.reason) for h in status.history
    ]
    assert {h.agent_id for h in status.history} == {"h1", "h2"}  # the second try went elsewhere
    assert "2 failed attempts (max 2)" in (status.error or "")
    await hub.durable()
    kinds = [e.kind for e in hub.store.events(hub.group, task_id=tid)]
    assert kinds.count("task.revoked") == 2
    assert kinds[-1] == "task.failed"


async def test_run_timeout_and_deadline(hub: Hub) -> None:
    slow = quick_agent("slow", 1.0, delay=3.0, capacity=2)
    await slow.start(hub.url)
    try:
        async with HubClient(hub.url) as client:
            ids = await client.submit(
                [
                    TaskSpec(
                        id="capped",
                        title="capped",
                        max_attempts=1,
                        timeouts=Timeouts(run=0.4, stall=30),
                    ),
                    TaskSpec(id="late", title="late", deadline=time.time() + 0.4),
                ]
            )
            final = {s.id: s for s in await client.wait_all(ids, timeout=20)}
    finally:
        await slow.stop()
    assert final["capped"].state is TaskState.FAILED
    assert final["capped"].history[0].outcome == "timed_out"
    assert final["late"].state is TaskState.FAILED
    assert final["late"].error == "deadline passed"


async def test_bus_restart_mid_run_completes_everything_once(
    nats_server: EmbeddedNats, store: Store, tmp_path: Path
) -> None:
    log: list[str] = []
    agents = [quick_agent(f"w{i}", 0.8, log, delay=0.05, capacity=2) for i in range(4)]
    async with Hub(hub_settings(nats_server, tmp_path, stall_timeout=30.0), store=store) as hub:
        for agent in agents:
            await agent.start(hub.url)
        try:
            async with HubClient(hub.url) as client:
                ids = await client.submit(
                    [TaskSpec(title=f"t{i}", skills={"x": 0.5}) for i in range(60)]
                )

            async def some_done() -> bool:
                return sum(1 for r in hub.board.tasks.values() if r.state is TaskState.DONE) >= 10

            await wait_until(some_done)
            await asyncio.to_thread(nats_server.restart)  # same port: everyone reconnects

            async def all_done() -> bool:
                return all(hub.board.tasks[i].state is TaskState.DONE for i in ids)

            await wait_until(all_done, timeout=60)
        finally:
            for agent in agents:
                await agent.stop()
        for tid in ids:
            done = [h for h in hub.board.tasks[tid].history if h.outcome == "done"]
            assert len(done) == 1
        await hub.durable()
        assert hub.store.events(hub.group, kind="hub.reconnected")


def _clawhub(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "clawhub.cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


async def _hub_url(data_dir: Path, not_pid: int | None = None) -> str:
    async def ready() -> bool:
        try:
            info = json.loads((data_dir / "hub.json").read_text())
        except (OSError, ValueError):
            return False
        return bool(info.get("url")) and info.get("pid") != not_pid

    await wait_until(ready)
    return str(json.loads((data_dir / "hub.json").read_text())["url"])


async def test_hub_killed_mid_run_recovers_on_restart(tmp_path: Path) -> None:
    """kill -9 the hub (embedded nats-server and SQLite), start it again: nothing is lost,
    nothing completes twice, the agents re-attach by themselves."""
    data = tmp_path / "hub"
    env = {**os.environ, "CLAWHUB_HEARTBEAT_INTERVAL": "0.3", "CLAWHUB_STALL_TIMEOUT": "30"}
    first = _clawhub("up", "--data-dir", str(data), "--no-auth", env=env)
    second: subprocess.Popen[bytes] | None = None
    log: list[str] = []
    agents = [quick_agent(f"w{i}", 0.8, log, delay=0.2, capacity=2) for i in range(3)]
    try:
        url = await _hub_url(data)
        for agent in agents:
            await agent.start(url)
        async with HubClient(url) as client:
            ids = await client.submit(
                [TaskSpec(title=f"t{i}", skills={"x": 0.5}) for i in range(40)]
            )

            async def some_done() -> bool:
                done = await client.tasks(states=[TaskState.DONE])
                return len(done) >= 8

            await wait_until(some_done)
        first.kill()  # kill -9: no goodbye, no flush; the embedded nats-server dies with it
        first.wait()
        second = _clawhub("up", "--data-dir", str(data), "--no-auth", env=env)
        url2 = await _hub_url(data, not_pid=first.pid)
        assert url2 == url  # the same port, so agents find it again
        async with HubClient(url2) as client:
            final: list[TaskStatus] = await client.wait_all(ids, timeout=60)
            agents_seen = await client.agents()
    finally:
        for agent in agents:
            await agent.stop()
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(15)
    assert all(s.state is TaskState.DONE for s in final)
    for status in final:
        assert sum(1 for h in status.history if h.outcome == "done") == 1
    assert {a.profile.id for a in agents_seen} == {"w0", "w1", "w2"}
    assert set(collections.Counter(log)) == set(ids)
    recovered = Store(f"sqlite:///{data / 'clawhub.db'}").events("default", kind="hub.recovered")
    assert len(recovered) == 2  # one per start


async def _has_agent(client: HubClient, agent_id: str) -> bool:
    return any(a.profile.id == agent_id for a in await client.agents())


async def _agents(hub: Hub) -> list[AgentInfo]:
    async with HubClient(hub.url) as client:
        return await client.agents(include_gone=True)


async def test_embedded_bus_killed_mid_run_is_restarted_and_the_run_completes(
    sqlite_store: Store, tmp_path: Path
) -> None:
    settings = HubSettings(
        data_dir=tmp_path / "hub", heartbeat_interval=0.2, sweep_interval=0.05, stall_timeout=30
    )
    log: list[str] = []
    agents = [quick_agent(f"w{i}", 0.8, log, delay=0.05, capacity=2) for i in range(3)]
    async with Hub(settings, store=sqlite_store) as hub:
        assert hub.embedded is not None
        url = hub.url
        for agent in agents:
            await agent.start(url)
        try:
            async with HubClient(url) as client:
                ids = await client.submit(
                    [TaskSpec(title=f"t{i}", skills={"x": 0.5}) for i in range(40)]
                )

            async def some_done() -> bool:
                return sum(r.state is TaskState.DONE for r in hub.board.tasks.values()) >= 8

            await wait_until(some_done)
            old_pid = hub.embedded.pid
            assert old_pid is not None
            os.kill(old_pid, signal.SIGKILL)  # the bus crashes under the hub

            async def all_done() -> bool:
                return all(hub.board.tasks[i].state is TaskState.DONE for i in ids)

            await wait_until(all_done, timeout=60)
            assert hub.embedded.pid not in (None, old_pid)
            assert hub.url == url  # same port: nobody had to be told a new address
        finally:
            for agent in agents:
                await agent.stop()
        for tid in ids:
            assert sum(h.outcome == "done" for h in hub.board.tasks[tid].history) == 1
        await hub.durable()
        assert hub.store.events(hub.group, kind="bus.restarted")
