"""A replica whose lease renewal came late holds its offers back, and offers them once it
has renewed: the renewal wakes its scheduler. (Found by ``bench --only groups``: with
``clawhub up --workers 2`` on a loaded machine a renewal came more than 80% of the lease
time late while the last tasks were submitted; the scheduler's pass offered nothing, then
slept until a wake-up that never came, since the agents were idle: 438 tasks stayed
``ready`` with 20 agents online.) A real nats-server, a real SQLite store, a real agent."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from conftest import until

from agents_sdk import Agent, HubClient, TaskContext
from clawhub.gateway import HubProcess
from clawhub.runtime import EmbeddedNats
from clawhub.settings import HubSettings
from protocols import TaskSpec, TaskState

#: Long enough that the replica's own rounds (every third of it) stay out of the test's way:
#: the test runs the rounds itself.
TTL = 30.0


def replica_settings(nats_server: EmbeddedNats, tmp_path: Path) -> HubSettings:
    """One replica of group ``g`` on the test's nats-server and a SQLite file, its lease
    renewed only when the test says (``replicas.step``)."""
    return HubSettings(
        group="g",
        nats_url=nats_server.url,
        auth=False,
        gateway=False,
        replica=True,
        replica_id="r0",
        lease_ttl=TTL,
        recovery_grace=0,
        data_dir=tmp_path,
        store_url=f"sqlite:///{tmp_path / 'hub.db'}",
    )


async def test_a_late_renewal_holds_offers_back_then_offers_them(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    settings = replica_settings(nats_server, tmp_path)
    agent = Agent("w", id="w", skills={"x": 0.8}, group="g")

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        return {"ok": True}

    async with HubProcess(settings, ["g"]) as server:
        replicas = server.replicas
        assert replicas is not None and replicas.held == {"g": 1}
        await agent.start(nats_server.url)
        try:
            async with HubClient(nats_server.url, group="g", timeout=10) as client:
                warm = (await client.submit(TaskSpec(title="warm", skills={"x": 0.5})))[0]
                assert (await client.wait(warm, timeout=20)).state == TaskState.DONE
                # the last renewal is now older than SURE of the lease time: unsure
                replicas._held["g"].renewed = time.monotonic() - TTL
                assert not replicas.sure("g")
                task_id = (await client.submit(TaskSpec(title="t", skills={"x": 0.5})))[0]
                await asyncio.sleep(1.0)
                assert (await client.task(task_id)).state == TaskState.READY  # held back
                await replicas.step()  # renews the lease
                assert replicas.sure("g")
                assert (await client.wait(task_id, timeout=20)).state == TaskState.DONE
        finally:
            await agent.stop()


async def test_a_late_renewal_holds_events_back_then_publishes_them(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    """What the hub decides while unsure (a result taken: the task done) is published once
    it has renewed, not dropped. (Found by ``bench --only groups``: the bench's event
    watcher never saw some ``task.done`` of tasks the store had as done.)"""
    settings = replica_settings(nats_server, tmp_path)
    agent = Agent("w", id="w", skills={"x": 0.8}, group="g")
    release = asyncio.Event()

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        await release.wait()
        return {"ok": True}

    async with HubProcess(settings, ["g"]) as server:
        replicas = server.replicas
        assert replicas is not None
        await agent.start(nats_server.url)
        try:
            async with HubClient(nats_server.url, group="g", timeout=10) as client:
                done: list[str] = []

                async def watch() -> None:
                    async for event in client.events(["task.done"]):
                        done.append(event.task_id or "")

                watching = asyncio.create_task(watch())
                await asyncio.sleep(0.3)  # subscribed
                task_id = (await client.submit(TaskSpec(title="t", skills={"x": 0.5})))[0]
                board = server.hubs["g"].board
                await until(lambda: board.tasks[task_id].state is TaskState.RUNNING)
                replicas._held["g"].renewed = time.monotonic() - TTL  # unsure from here
                release.set()
                await until(lambda: board.tasks[task_id].state is TaskState.DONE)
                assert (await client.task(task_id)).state == TaskState.DONE
                await asyncio.sleep(0.5)
                assert task_id not in done  # held back while unsure
                await replicas.step()  # renews the lease: what waited goes out
                await until(lambda: task_id in done)
                watching.cancel()
                assert done.count(task_id) == 1
        finally:
            await agent.stop()
