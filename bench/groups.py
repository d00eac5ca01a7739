"""Scenario 9, groups: does a hub of several groups use every core? ``clawhub up`` as users
run it (its embedded nats-server, SQLite in its data dir, the gateway), no-op tasks through
the whole lifecycle, the same total work and the same agents in every case:

- **one group, one process** (the baseline): every task in one group, ``4 x AGENTS`` agents
  in four processes;
- **4 groups, one process**: ``clawhub up --group g0 ... --group g3``;
- **4 groups, N worker processes**: ``clawhub up --workers N`` (N = 2: one per core of this
  machine, and N = 4: one per group), the groups spread over the workers.

The agents of each group run in a process of their own. Each case runs ``ROUNDS`` times,
interleaved; the rows give medians. Each row also gives where the CPU went meanwhile (the
hub processes, the nats-server, the agent processes, this process: the clients and the
event watcher) and the machine's busy share (which includes whatever else runs on it).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from agents_sdk import HubClient
from clawhub.store import Store
from clawhub.store.lease import Leases

from .common import Fleet, Proc, Row
from .replicas import Events, _submit_all, until

S = "groups"
GROUPS = [f"g{i}" for i in range(4)]
ENV = {
    "CLAWHUB_HEARTBEAT_INTERVAL": "2.0",
    "CLAWHUB_MISSED_BEATS": "5",
    "CLAWHUB_STALL_TIMEOUT": "60",
    "CLAWHUB_SUBMIT_RATE": "1000000",
}


@dataclass
class Case:
    name: str
    groups: list[str]
    workers: int


@dataclass
class Run:
    rate: float
    cpu: dict[str, float]
    """CPU µs per task by part: hub, nats-server, agents, bench."""
    busy: float
    """The machine's busy share of its cores during the run (0..1)."""


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            total += sum(psutil.Process(pid).cpu_times()[:2])
    return total


class Up:
    """One ``clawhub up`` (with ``--workers``) in a data dir of its own."""

    def __init__(self, tmp: Path, case: Case) -> None:
        self.dir = tmp / case.name.replace(" ", "-").replace(",", "")
        self.case = case
        args = ["up", "--port", "0", "--gateway-port", "0", "--no-auth"]
        args += ["--data-dir", str(self.dir), "--workers", str(case.workers)]
        for group in case.groups:
            args += ["--group", group]
        self.proc = Proc("clawhub.cli", *args, log=tmp / "up.log", env=ENV, ready=False)
        self.url = ""

    async def start(self) -> None:
        await asyncio.to_thread(self.dir.mkdir, parents=True, exist_ok=True)
        await self.proc.start()
        hub_file = self.dir / "hub.json"

        def ready() -> bool:
            with contextlib.suppress(OSError, ValueError):
                self.url = json.loads(hub_file.read_text())["url"]
                return bool(self.url)
            return False

        await until(ready, "clawhub up serving", 120)
        if self.case.workers > 1:
            await self._spread()

    async def _spread(self) -> None:
        """Wait until every group is active and no worker holds more than its share."""
        store = await asyncio.to_thread(Store, f"sqlite:///{self.dir / 'clawhub.db'}")
        leases = Leases(store.engine)
        share = math.ceil(len(self.case.groups) / self.case.workers)

        def spread() -> bool:
            held = {g: h.holder for g, h in leases.holdings().items() if h.left > 0}
            counts = collections.Counter(held.values())
            return sorted(held) == sorted(self.case.groups) and max(counts.values()) <= share

        try:
            await until(lambda: asyncio.to_thread(spread), "groups spread over the workers", 120)
        finally:
            await asyncio.to_thread(store.close)

    def pids(self) -> tuple[list[int], list[int]]:
        """(hub processes, nats-server processes) of this ``clawhub up``."""
        root = psutil.Process(self.proc.pid)
        hubs, nats = [root.pid], list[int]()
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                (nats if "nats-server" in child.name() else hubs).append(child.pid)
        return hubs, nats

    def stored_done(self) -> int:
        with contextlib.closing(sqlite3.connect(self.dir / "clawhub.db")) as conn:
            row = conn.execute("select count(*) from claw_tasks where state = 'done'").fetchone()
        return int(row[0])

    async def stop(self) -> None:
        await self.proc.stop(60)


async def one_run(tmp: Path, case: Case, total: int, agents: int) -> Run:
    """``total`` no-op tasks spread evenly over the case's groups."""
    up = Up(tmp, case)
    per_group = total // len(case.groups)
    each = agents * len(GROUPS) // len(case.groups)  # the same agents in every case
    fleets: list[Fleet] = []
    try:
        await up.start()
        for group in case.groups:
            fleets += [Fleet(up.url, each, per_proc=agents, prefix=f"a-{group}", group=group)]
        for fleet in fleets:
            await fleet.start()
        async with Events(up.url, case.groups) as events, contextlib.AsyncExitStack() as stack:
            clients = [HubClient(up.url, group=g, timeout=60) for g in case.groups]
            for client in clients:
                await stack.enter_async_context(client)
            warm = await _submit_all(clients, 10)
            await until(lambda: events.ended(warm) >= warm, "warm-up done")
            hubs, nats = up.pids()
            agent_pids = [p.pid for f in fleets for p in f.procs]
            me = [psutil.Process().pid]
            parts = {"hub": hubs, "nats-server": nats, "agents": agent_pids, "bench": me}
            before = {k: _cpu(v) for k, v in parts.items()}
            machine = psutil.cpu_times()
            began = time.perf_counter()
            ids = await _submit_all(clients, per_group)
            await until(lambda: events.ended(ids) >= ids, "every task ended")
            for client in clients:  # answered once everything is committed
                await client.history(limit=1, after=2**62)
            elapsed = time.perf_counter() - began
            cpu = {k: (_cpu(v) - before[k]) / len(ids) * 1e6 for k, v in parts.items()}
            after = psutil.cpu_times()
            if events.done(ids) != ids:
                states = collections.Counter(events.final.get(i, "?") for i in ids)
                raise RuntimeError(f"{case.name}: not every task done: {states}")
        stored = await asyncio.to_thread(up.stored_done)
        if stored != len(ids) + len(warm):
            raise RuntimeError(f"{case.name}: {stored} tasks stored done of {len(ids) + len(warm)}")
        idle = (after.idle - machine.idle) + (after.iowait - machine.iowait)
        spent = sum(after) - sum(machine)
        busy = 1 - idle / spent if spent > 0 else float("nan")
        return Run(len(ids) / elapsed, cpu, busy)
    finally:
        await asyncio.gather(*(f.stop() for f in fleets))
        await up.stop()


async def run(quick: bool) -> list[Row]:
    total = 400 if quick else 2400
    agents = 4 if quick else 20
    rounds = 1 if quick else 2
    cases = [
        Case("one group, one process", ["g0"], 1),
        Case("4 groups, one process", GROUPS, 1),
        Case("4 groups, 2 workers", GROUPS, 2),
        Case("4 groups, 4 workers", GROUPS, 4),
    ]
    runs: dict[str, list[Run]] = {c.name: [] for c in cases}
    for _ in range(rounds):
        for case in cases:
            tmp = Path(tempfile.mkdtemp(prefix="clawhub-bench-groups-"))
            try:
                runs[case.name].append(await one_run(tmp, case, total, agents))
            except BaseException as exc:  # the logs stay for a look
                exc.add_note(f"logs in {tmp} (up.log, */workers/w*/worker.log, */clawhub.db)")
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    base = statistics.median(r.rate for r in runs[cases[0].name])
    rows = []
    for case in cases:
        got = runs[case.name]
        rate = statistics.median(r.rate for r in got)
        cpu = {k: statistics.median(r.cpu[k] for r in got) for k in got[0].cpu}
        busy = statistics.median(r.busy for r in got)
        where = ", ".join(f"{k} {v:.0f}" for k, v in cpu.items())
        target = ">= 1.7x" if case.workers == 2 else ""
        ratio = rate / base
        extra: dict[str, Any] = {
            "rates": [round(r.rate, 1) for r in got],
            "cpu_us_per_task": {k: round(v) for k, v in cpu.items()},
            "machine_busy": round(busy, 3),
        }
        rows.append(
            Row(
                S,
                f"throughput, {case.name}, {total} tasks, {agents * len(GROUPS)} agents",
                rate,
                "tasks/s",
                base,
                "one group, one process",
                ratio,
                target,
                ratio >= 1.7 if target else None,
                note=f"median of {len(got)}; CPU µs/task: {where}; machine {busy:.0%} busy",
                extra=extra,
            )
        )
    rows.append(ceiling(statistics.median(r.cpu["hub"] for r in runs[cases[0].name]), runs))
    return rows


def ceiling(hub: float, runs: dict[str, list[Run]]) -> Row:
    """What N workers could gain at best on this machine, from the CPU per task of the
    baseline: one process runs the hub on one core, so it reaches at most ``1 / hub`` (or
    what the cores give everything, if less); N workers at most ``cores / everything``.
    Agents, nats-server and the clients on the same cores: ``max(1, cores * hub / all)``;
    with the agents and clients on other machines, only the hub and nats-server here."""
    first = next(iter(runs.values()))
    cpu = {k: statistics.median(r.cpu[k] for r in first) for k in first[0].cpu}
    cores = os.cpu_count() or 1
    here = max(1.0, cores * hub / sum(cpu.values()))
    alone = max(1.0, cores * hub / (hub + cpu["nats-server"]))
    return Row(
        S,
        f"ceiling of N workers against one process on {cores} cores, from the CPU per task "
        "of the one-group run",
        here,
        "x",
        note=f"everything on these cores; {alone:.2f}x with the agents and clients elsewhere",
        extra={"agents_elsewhere": round(alone, 3), "cores": cores},
    )
