"""Scenario 2, latency: one task at a time, submit → the agent's handler starts, and
submit → done (the ``task.done`` event reaches the client), p50 and p99, with 10, 100 and
1,000 agents in worker processes; baseline: raw nats-py request/reply round trips on the
same server, measured in the same run."""

from __future__ import annotations

import time

from agents_sdk import HubClient
from protocols import TaskSpec

from .common import (
    Fleet,
    Row,
    Watcher,
    bus,
    echo_server,
    hub_process,
    pct,
    raw_round_trips,
)

S = "latency"


async def one_size(agents: int, samples: int) -> list[Row]:
    async with bus() as (server, tmp):
        url = server.url
        async with echo_server(url):
            raw = await raw_round_trips(url, max(1000, samples))
        raw50, raw99 = pct(raw, 50), pct(raw, 99)
        per_proc = 50 if agents <= 100 else 250
        async with hub_process(server, tmp / "hub"):
            watcher = Watcher(url)
            await watcher.start()
            try:
                async with (
                    Fleet(url, agents, per_proc=per_proc, log=tmp / "agents.log"),
                    HubClient(url) as client,
                ):
                    starts: list[float] = []
                    dones: list[float] = []
                    for i in range(samples + 10):
                        spec = TaskSpec(title=f"lat {i}", skills={"work": 0.5})
                        t = time.time()  # from the call, as the raw round trip
                        [task_id] = await client.submit(spec)
                        state = await watcher.expect(task_id)
                        done = time.time()
                        status = await client.task(task_id)
                        if state != "done" or not isinstance(status.output, dict):
                            raise RuntimeError(f"latency task {task_id} ended {state}")
                        start = status.output["start"]
                        assert isinstance(start, float)
                        if i >= 10:  # the first ten warm up
                            starts.append(start - t)
                            dones.append(done - t)
            finally:
                await watcher.stop()
    base = "raw req/reply"
    rows = [
        Row(
            S,
            f"raw nats-py round trip p50 / p99 ({agents} agents run)",
            raw50 * 1e3,
            "ms",
            note=f"p99 {raw99 * 1e3:.3f} ms; baseline",
        ),
    ]
    s50, s99, d50, d99 = pct(starts, 50), pct(starts, 99), pct(dones, 50), pct(dones, 99)
    rows += [
        Row(
            S,
            f"submit → agent start p50, {agents} agents",
            s50 * 1e3,
            "ms",
            raw50 * 1e3,
            base + " p50",
            s50 / raw50,
            "<= 2x raw",
            s50 / raw50 <= 2,
        ),
        Row(
            S,
            f"submit → agent start p99, {agents} agents",
            s99 * 1e3,
            "ms",
            raw99 * 1e3,
            base + " p99",
            s99 / raw99,
        ),
        Row(
            S,
            f"submit → done p50, {agents} agents",
            d50 * 1e3,
            "ms",
            raw50 * 1e3,
            base + " p50",
            d50 / raw50,
        ),
        Row(
            S,
            f"submit → done p99, {agents} agents",
            d99 * 1e3,
            "ms",
            raw99 * 1e3,
            base + " p99",
            d99 / raw99,
            "<= 4x raw p99",
            d99 / raw99 <= 4,
        ),
    ]
    return rows


async def run(quick: bool) -> list[Row]:
    sizes = (10,) if quick else (10, 100, 1000)
    samples = 20 if quick else 200
    rows: list[Row] = []
    for agents in sizes:
        rows += await one_size(agents, samples)
    return rows
