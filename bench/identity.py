"""Scenario 7, identity: what knowing the sender costs. The same no-op task flow through a
``clawhub up`` process (``HubProcess``: embedded nats-server, SQLite) twice in one run:
with auth, where every agent has its own token, nats-server confines each token to
publishing under its own id and the hub resolves every message's sender and holds the
message to it; and without auth, where no sender is checked. The ratio of the CPU each task
costs (hub and agents share this process) is the price of identity; the cost of the
check per message is measured on its own too."""

from __future__ import annotations

import tempfile
import time
import timeit
from pathlib import Path

from agents_sdk import Agent, HubClient, TaskContext
from clawhub.gateway import HubProcess
from clawhub.runtime.auth import Principal, act_as
from clawhub.settings import HubSettings
from protocols import Progress, TaskSpec, subjects

from .common import GROUP, Row

S = "identity"


async def flow(auth: bool, tasks: int, agents: int, tmp: Path) -> float:
    """CPU seconds of this process per task for ``tasks`` no-op tasks."""
    settings = HubSettings(
        data_dir=tmp / ("auth" if auth else "open"),
        auth=auth,
        gateway=False,
        submit_rate=1e9,
        submit_burst=1e9,
    )
    server = HubProcess(settings, [GROUP])
    await server.start()
    fleet: list[Agent] = []
    try:
        admin = None
        if auth:
            admin, _ = await server.create_token(GROUP, "admin", None)
        for i in range(agents):
            agent = Agent(f"w{i}", id=f"w{i}", skills={"noop": 0.9}, capacity=10, group=GROUP)

            @agent.handler
            async def work(ctx: TaskContext) -> str:
                return "ok"

            token = None
            if auth:
                token, _ = await server.create_token(GROUP, "agent", agent.id)
            await agent.start(server.url, token=token)
            fleet.append(agent)
        async with HubClient(server.url, GROUP, timeout=120, token=admin) as client:
            start = time.process_time()
            ids: list[str] = []
            for first in range(0, tasks, 500):  # batches under the message size limit
                batch = range(first, min(tasks, first + 500))
                ids += await client.submit(
                    [TaskSpec(title=f"t{i}", skills={"noop": 0.5}) for i in batch]
                )
            await client.wait_all(ids, timeout=300)
            return (time.process_time() - start) / tasks
    finally:
        for agent in fleet:
            await agent.stop()
        await server.stop()


def check_cost() -> float:
    """Microseconds to hold one agent message to its sender (``act_as``), as the hub does
    for every message on a hub with auth."""
    who = Principal(token_id="tk-000000000001", group=GROUP, role="agent", agent_id="w1")
    message = Progress(task_id="t1", attempt=1, agent_id="w1", message="step", ts=time.time())
    subject = subjects.hub_progress(GROUP, who.token_id)
    runs = 200_000

    def one() -> None:
        subjects.sender_of(subject)
        act_as(who, None, message)

    return timeit.timeit(one, number=runs) / runs * 1e6


async def run(quick: bool) -> list[Row]:
    tasks = 500 if quick else 3000
    agents = 10 if quick else 50
    with tempfile.TemporaryDirectory() as tmp:
        open_cpu = await flow(False, tasks, agents, Path(tmp))
        auth_cpu = await flow(True, tasks, agents, Path(tmp))
    micro = check_cost()
    return [
        Row(
            S,
            f"CPU per task with auth and identity checks ({tasks} tasks, {agents} agents)",
            auth_cpu * 1e6,
            "µs",
            open_cpu * 1e6,
            "the same flow without auth",
            auth_cpu / open_cpu,
            "<= 1.10x",
            auth_cpu / open_cpu <= 1.10,
            note="hub and agents share one process here",
        ),
        Row(
            S,
            "holding one message to its sender (sender from the subject, act_as)",
            micro,
            "µs",
            note="per agent → hub message on a hub with auth",
        ),
    ]
