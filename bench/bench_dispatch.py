"""Claw Hub dispatch benchmark, reported as ratios against raw nats-py request/reply
measured in the same run on the same nats-server.

    .venv/bin/python bench/bench_dispatch.py [--tasks 2000] [--agents 20]

What it measures (all on one machine, hub + agents + client in one process, SQLite store):
- baseline: sequential raw request/reply round trip, and raw concurrent request rate;
- hub latency: submit one task and wait until done, one at a time (offer, accept, result,
  durable write, event), as a multiple of the raw round trip;
- hub throughput: N tasks over K agents, tasks per second, as a fraction of the raw rate;
- memory: Python memory per task the hub holds (10,000 tasks submitted, none run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import nats

from agents_sdk import Agent, HubClient, TaskContext
from clawhub.embedded import EmbeddedNats
from clawhub.hub import Hub
from clawhub.settings import HubSettings
from protocols import TaskSpec


async def raw_baseline(url: str, n: int, concurrency: int) -> tuple[float, float]:
    server = await nats.connect(url)
    client = await nats.connect(url)

    async def echo(msg: nats.aio.msg.Msg) -> None:
        await msg.respond(msg.data)

    await server.subscribe("bench.echo", cb=echo)
    await server.flush()
    payload = b"x" * 300
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        await client.request("bench.echo", payload, timeout=5)
        samples.append(time.perf_counter() - t)
    rtt = statistics.median(samples)

    async def worker(count: int) -> None:
        for _ in range(count):
            await client.request("bench.echo", payload, timeout=5)

    t = time.perf_counter()
    await asyncio.gather(*(worker(n // concurrency) for _ in range(concurrency)))
    rate = (n // concurrency * concurrency) / (time.perf_counter() - t)
    await client.close()
    await server.close()
    return rtt, rate


def noop_agent(i: int, capacity: int) -> Agent:
    agent = Agent(f"bench-{i}", id=f"bench-{i}", skills={"work": 0.8}, capacity=capacity)

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        return ctx.input

    return agent


async def main(tasks: int, n_agents: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="clawhub-bench-"))
    bus = EmbeddedNats(tmp / "nats")
    url = bus.start()
    try:
        rtt, raw_rate = await raw_baseline(url, 2000, n_agents)
        settings = HubSettings(nats_url=url, data_dir=tmp / "hub", heartbeat_interval=1.0)
        async with Hub(settings) as hub:
            agents = [noop_agent(i, 4) for i in range(n_agents)]
            await asyncio.gather(*(a.start(url) for a in agents))
            async with HubClient(url) as client:
                lat = []
                for i in range(100):
                    t = time.perf_counter()
                    [tid] = await client.submit(TaskSpec(title=f"lat {i}", input=i))
                    await client.wait(tid, timeout=30)
                    lat.append(time.perf_counter() - t)
                latency = statistics.median(lat)
                specs = [
                    TaskSpec(title=f"t{i}", skills={"work": 0.5}, input=i) for i in range(tasks)
                ]
                t = time.perf_counter()
                ids = []
                for start in range(0, tasks, 1000):  # one batch must fit max_message_bytes
                    ids += await client.submit(specs[start : start + 1000])
                await client.wait_all(ids, timeout=600)
                rate = tasks / (time.perf_counter() - t)
            await asyncio.gather(*(a.stop() for a in agents))
        mem_settings = HubSettings(nats_url=url, data_dir=tmp / "mem", heartbeat_interval=1.0)
        async with Hub(mem_settings) as hub:
            specs = [
                TaskSpec(title=f"m{i}", skills={"nobody": 0.5}, input=i) for i in range(10_000)
            ]
            tracemalloc.start()
            before = tracemalloc.take_snapshot()
            for start in range(0, 10_000, 1000):
                hub.board.submit(specs[start : start + 1000])
            await hub.durable()
            grown = tracemalloc.take_snapshot().compare_to(before, "filename")
            tracemalloc.stop()
            per_task_kb = sum(d.size_diff for d in grown) / 1024 / 10_000
    finally:
        bus.stop()
    rows = [
        ("raw nats-py request/reply, median round trip", f"{rtt * 1e3:.3f} ms", "1.0 (baseline)"),
        (
            "hub: one task submit → done, median",
            f"{latency * 1e3:.2f} ms",
            f"{latency / rtt:.1f}x the raw round trip",
        ),
        (f"raw nats-py requests/s ({n_agents} concurrent)", f"{raw_rate:,.0f}/s", "1.0 (baseline)"),
        (
            f"hub: {tasks} tasks over {n_agents} agents",
            f"{rate:,.0f} tasks/s",
            f"{rate / raw_rate:.3f}x the raw request rate",
        ),
        ("hub memory per task held (10,000 tasks, tracemalloc)", f"{per_task_kb:.1f} KB", "-"),
    ]
    print("| measure | value | ratio |")
    print("|---|---|---|")
    for row in rows:
        print(f"| {row[0]} | {row[1]} | {row[2]} |")
    print(f"\npython {sys.version.split()[0]}, {os.cpu_count()} cores, SQLite store")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--agents", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.tasks, args.agents))
