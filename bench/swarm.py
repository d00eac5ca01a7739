"""Scenario 5, swarm: a 4,000-task dependency graph across 300 agents (the scale Moonshot
quotes for its Agent Swarm), agents in ten worker processes, one of them (10% of the agents)
killed with SIGKILL mid-run. Makespan against the ideal (the larger of the critical path
and the total work divided by the agents), steps per second with instant handlers, and
lost tasks (any task not done)."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

from agents_sdk import HubClient
from protocols import TaskSpec

from .common import ENDINGS, Fleet, Row, Watcher, bus, hub_process

S = "swarm"


def graph(
    tasks: int, width: int, seed: int, timed: bool, prefix: str
) -> tuple[list[TaskSpec], float, float]:
    """Layers of ``width`` tasks, each depending on two tasks of the layer before; with
    ``timed``, handlers sleep 50-250 ms. Returns specs, critical path and total work (s)."""
    rnd = random.Random(seed)
    specs: list[TaskSpec] = []
    finish: dict[str, float] = {}
    total = 0.0
    layers = [list(range(start, min(tasks, start + width))) for start in range(0, tasks, width)]
    for k, layer in enumerate(layers):
        for i in layer:
            deps = (
                [f"{prefix}{d}" for d in rnd.sample(layers[k - 1], min(2, len(layers[k - 1])))]
                if k
                else []
            )
            seconds = round(rnd.uniform(0.05, 0.25), 3) if timed else 0.0
            total += seconds
            specs.append(
                TaskSpec(
                    id=f"{prefix}{i}",
                    title=f"step {i}",
                    skills={"work": 0.5},
                    depends_on=deps,
                    input={"sleep": seconds},
                )
            )
            finish[f"{prefix}{i}"] = seconds + max((finish[d] for d in deps), default=0.0)
    return specs, max(finish.values()), total


async def run_graph(
    url: str, tmp: Path, agents: int, specs: list[TaskSpec], name: str
) -> tuple[float, int, int]:
    """(makespan s, tasks done, agents killed); kills one worker process when 40% are done."""
    per_proc = max(1, agents // 10)
    watcher = Watcher(url, ENDINGS)
    await watcher.start()
    try:
        async with (
            Fleet(url, agents, per_proc=per_proc, prefix=name, log=tmp / "agents.log") as fleet,
            HubClient(url, timeout=60) as client,
        ):
            t = time.perf_counter()
            for start in range(0, len(specs), 500):
                await client.submit(specs[start : start + 500])
            await watcher.wait_count(int(len(specs) * 0.4), 600)
            fleet.procs[0].signal(signal.SIGKILL)
            killed = len(fleet.ids[0])
            await watcher.wait_count(len(specs), 600)
            await client.history(limit=1, after=2**62)  # answered once all is committed
            makespan = time.perf_counter() - t
    finally:
        await watcher.stop()
    done = sum(1 for s in watcher.terminal.values() if s == "done")
    return makespan, done, killed


async def run(quick: bool) -> list[Row]:
    tasks, agents, width = (400, 30, 20) if quick else (4000, 300, 100)
    rows: list[Row] = []
    async with bus() as (server, tmp), hub_process(server, tmp / "hub"):
        specs, critical, work = graph(tasks, width, 5, timed=True, prefix="t")
        ideal = max(critical, work / agents)
        makespan, done, killed = await run_graph(server.url, tmp, agents, specs, "timed")
        rows.append(
            Row(
                S,
                f"makespan, {tasks:,} tasks (50-250 ms), {agents} agents, {killed} killed",
                makespan,
                "s",
                ideal,
                "ideal",
                makespan / ideal,
                "<= 1.15x",
                makespan / ideal <= 1.15,
                note=f"critical path {critical:.2f}s, work/agents {work / agents:.2f}s",
            )
        )
        lost = tasks - done
        specs, _, _ = graph(tasks, width, 6, timed=False, prefix="i")
        span2, done2, killed2 = await run_graph(server.url, tmp, agents, specs, "instant")
        steps = tasks / span2
        rows.append(
            Row(
                S,
                f"steps/s, {tasks:,} instant tasks, {agents} agents, {killed2} killed",
                steps,
                "steps/s",
                target=">= 6000",
                ok=steps >= 6000,
            )
        )
        lost += tasks - done2
        rows.append(
            Row(S, "lost tasks (both runs)", float(lost), "tasks", target="0", ok=lost == 0)
        )
    return rows
