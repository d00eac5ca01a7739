"""Scenario 4, recovery: agents in their own processes; the time from an agent's death
(SIGKILL) to its task running on another agent, from a freeze (SIGSTOP) against the
missed-beat window, from a hung handler against the stall timeout, all read from the
event stream's timestamps; and false alarms (lost agents, revoked attempts) over a long run
of healthy work with every CPU saturated by busy processes."""

from __future__ import annotations

import asyncio
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from agents_sdk import HubClient
from protocols import TaskSpec, Timeouts, attempt_runs

from .common import Fleet, Row, Watcher, bus, hub_process

S = "recovery"
BEAT = 0.5
MISSED = 3
WINDOW = BEAT * MISSED
STALL = 2.0
HUB = {"heartbeat_interval": BEAT, "missed_beats": MISSED, "sweep_interval": 0.05}


async def _running_on(
    watcher: Watcher, task_id: str, not_agent: str | None, timeout: float
) -> tuple[float, str]:
    """Hub timestamp of the first event of ``task_id`` saying it runs (``attempt_runs``) on
    an agent other than ``not_agent``, and that agent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in reversed(watcher.log):
            if (
                event.get("task_id") == task_id
                and attempt_runs(event["kind"], event.get("state"))
                and event.get("agent_id") != not_agent
            ):
                return float(event["ts"]), str(event["agent_id"])
        await asyncio.sleep(0.005)
    raise TimeoutError(f"task {task_id} did not run on another agent within {timeout}s")


async def one_failure(
    url: str, tmp: Path, kind: str, round_no: int, client: HubClient, watcher: Watcher
) -> float:
    """Seconds from the failure to the task running elsewhere (for a hang: from the
    attempt's start, when its stall timer starts)."""
    victim = Fleet(url, 1, prefix=f"victim{kind}{round_no}", level=0.9, log=tmp / "agents.log")
    backup = Fleet(url, 1, prefix=f"backup{kind}{round_no}", level=0.5, log=tmp / "agents.log")
    victim_id = victim.ids[0][0]
    work: dict[str, Any] = {"sleep": 60, "progress": 0.2}
    if kind == "hang":
        work = {"hang_on": victim_id, "sleep": 60, "progress": 0.2}
    async with victim:
        spec = TaskSpec(
            title=f"{kind} {round_no}",
            skills={"work": 0.5},
            input=work,
            timeouts=Timeouts(stall=STALL),
        )
        [task_id] = await client.submit(spec)
        started, holder = await _running_on(watcher, task_id, None, 30)
        if holder != victim_id:
            raise RuntimeError(f"{task_id} ran on {holder}, expected {victim_id}")
        async with backup:
            await asyncio.sleep(0.3)  # the backup heart-beats; the victim is mid-task
            proc = victim.procs[0]
            t = time.time()
            if kind == "kill":
                proc.signal(signal.SIGKILL)
            elif kind == "freeze":
                proc.signal(signal.SIGSTOP)
            else:
                t = started
            again, _ = await _running_on(watcher, task_id, victim_id, 30)
            await client.cancel(task_id, "measured")
            proc.signal(signal.SIGCONT)
    return again - t


async def false_alarms(
    url: str, tmp: Path, client: HubClient, watcher: Watcher, seconds: float
) -> tuple[int, int]:
    """(alarms, tasks done) over ``seconds`` of 1-second tasks reporting progress every
    0.25 s on 20 agents, with every CPU kept busy by spinning processes."""
    spinners = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", "while True: pass")
        for _ in range(max(1, __import__("os").cpu_count() or 1))
    ]
    try:
        async with Fleet(url, 20, per_proc=10, prefix="steady", log=tmp / "agents.log"):
            watcher.reset()
            n = int(seconds) * 20
            specs = [
                TaskSpec(
                    title=f"steady {i}",
                    skills={"work": 0.5},
                    input={"sleep": 1.0, "progress": 0.25},
                    timeouts=Timeouts(stall=STALL),
                )
                for i in range(n)
            ]
            ids = await client.submit(specs)
            await watcher.wait_count(len(ids), seconds * 3 + 60)
            alarms = [e for e in watcher.log if e["kind"] in ("agent.lost", "task.revoked")]
            done = sum(1 for s in watcher.terminal.values() if s == "done")
    finally:
        for p in spinners:
            p.kill()
            await p.wait()
    return len(alarms), done


async def run(quick: bool) -> list[Row]:
    rounds = 1 if quick else 3
    soak = 5.0 if quick else 60.0
    rows: list[Row] = []
    async with bus() as (server, tmp):
        url = server.url
        async with hub_process(server, tmp / "hub", **HUB):
            watcher = Watcher(url)
            await watcher.start()
            try:
                async with HubClient(url) as client:
                    times: dict[str, list[float]] = {"kill": [], "freeze": [], "hang": []}
                    for r in range(rounds):
                        for kind, values in times.items():
                            values.append(await one_failure(url, tmp, kind, r, client, watcher))
                    alarms, done = await false_alarms(url, tmp, client, watcher, soak)
            finally:
                await watcher.stop()
    for kind, base, name, target in (
        ("kill", None, "crash (SIGKILL) → task running elsewhere", 0.25),
        ("freeze", WINDOW, "freeze (SIGSTOP) → task running elsewhere", WINDOW + 0.25),
        ("hang", STALL, "hung handler (attempt start) → running elsewhere", STALL + 0.25),
    ):
        values = times[kind]
        worst = max(values)
        rows.append(
            Row(
                S,
                name,
                statistics.median(values) * 1e3,
                "ms",
                None if base is None else base * 1e3,
                ""
                if base is None
                else ("missed-beat window" if kind == "freeze" else "stall timeout"),
                None if base is None else statistics.median(values) / base,
                f"<= {target * 1e3:.0f} ms",
                worst <= target,
                note=f"median of {len(values)}, worst {worst * 1e3:.0f} ms",
            )
        )
    rows.append(
        Row(
            S,
            f"false alarms, {soak:.0f}s of work, CPU saturated",
            float(alarms),
            "alarms",
            target="0",
            ok=alarms == 0,
            note=f"{done} tasks done, 20 agents, beat {BEAT}s x {MISSED}",
        )
    )
    return rows
