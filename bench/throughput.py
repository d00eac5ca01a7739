"""Scenario 1, throughput: no-op tasks through the whole lifecycle (submit, match, offer,
accept, result, validation, done, durable in the store) with 100 agents in worker
processes, against raw nats-py request/reply at the same concurrency on the same server,
Celery with a Redis broker (acks_late, results) and taskiq on NATS JetStream."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import psutil

from agents_sdk import HubClient
from protocols import TaskSpec

from .common import (
    ENDINGS,
    Fleet,
    Proc,
    Row,
    Watcher,
    bus,
    echo_server,
    hub_process,
    missing,
    raw_rate,
)

S = "throughput"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by these processes."""
    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)


def done_rows(db: Path) -> int:
    """Tasks stored as done in the hub's SQLite file."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        count: int = conn.execute(
            "select count(*) from claw_tasks where state = 'done'"
        ).fetchone()[0]
    return count


async def hub_rate(
    url: str, watcher: Watcher, n: int, db: Path, hub: int, agents: list[int]
) -> tuple[float, float, float]:
    """Tasks per second for ``n`` no-op tasks, until the last one is committed as done; and
    the CPU seconds per task the hub process and the agent processes spent meanwhile."""
    before = done_rows(db)
    async with HubClient(url, timeout=60) as client:
        warm = [TaskSpec(title=f"warm {i}", skills={"work": 0.5}) for i in range(200)]
        watcher.reset()  # a run before this one in the same hub: its tasks are not these
        await client.submit(warm)
        await watcher.wait_count(len(warm), 60)
        watcher.reset()
        specs = [TaskSpec(title=f"t{i}", skills={"work": 0.5}, input=i) for i in range(n)]
        hub0, agents0 = cpu_seconds([hub]), cpu_seconds(agents)
        t = time.perf_counter()
        for start in range(0, n, 500):
            await client.submit(specs[start : start + 500])
        await watcher.wait_count(n, 600)
        await client.history(limit=1, after=2**62)  # answered once everything is committed
        elapsed = time.perf_counter() - t
        hub_cpu = (cpu_seconds([hub]) - hub0) / n
        agents_cpu = (cpu_seconds(agents) - agents0) / n
    done = sum(1 for state in watcher.terminal.values() if state == "done")
    stored = done_rows(db)
    if done != n or stored - before != n + len(warm):
        raise RuntimeError(f"throughput run lost tasks: {done}/{n} done, {stored} stored")
    return n / elapsed, hub_cpu, agents_cpu


async def celery_rate(n: int, concurrency: int, tmp: Path) -> float:
    """Celery (Redis broker and results, acks_late), two worker processes of threads."""
    import redis

    redis.Redis.from_url(REDIS_URL).ping()  # reachable, or reported missing
    queue = f"bench-{os.getpid()}"
    env = {"BENCH_REDIS_URL": REDIS_URL}
    argv = ["-A", "bench.peers.celery_app", "worker", "-P", "threads", "-Q", queue]
    argv += ["-c", str(concurrency // 2), "--without-gossip", "--without-mingle"]
    argv += ["--without-heartbeat", "-l", "WARNING"]
    workers = [
        Proc("celery", *argv, "-n", f"w{i}@bench", log=tmp / "celery.log", env=env, ready=False)
        for i in range(2)
    ]
    await asyncio.gather(*(w.start() for w in workers))
    try:
        return await asyncio.to_thread(_celery_client, n, queue)
    finally:
        await asyncio.gather(*(w.stop() for w in workers))


def _celery_client(n: int, queue: str) -> float:
    from celery.exceptions import TimeoutError as CeleryTimeout
    from celery.result import ResultSet

    from .peers.celery_app import noop

    noop.apply_async((0,), queue=queue).get(timeout=60)  # the workers are up
    warm = ResultSet([noop.apply_async((i,), queue=queue) for i in range(200)])
    warm.join_native(timeout=120)
    t = time.perf_counter()
    results = ResultSet([noop.apply_async((i,), queue=queue) for i in range(n)])
    patience = 60 + n / 20
    try:
        values = results.join_native(timeout=patience)
    except CeleryTimeout:
        done = results.completed_count()
        raise RuntimeError(f"{done} of {n} results after {patience:.0f}s") from None
    elapsed = time.perf_counter() - t
    if sorted(values) != list(range(n)):
        raise RuntimeError("celery lost results")
    return n / elapsed


async def taskiq_rate(url: str, n: int, concurrency: int, tmp: Path) -> float:
    """taskiq on NATS JetStream (taskiq-nats), results in the NATS object store, acked once
    saved; two worker processes."""
    os.environ["BENCH_NATS_URL"] = url
    from .peers import taskiq_app

    env = {"BENCH_NATS_URL": url}
    argv = ["worker", "bench.peers.taskiq_app:broker", "--workers", "2"]
    argv += ["--max-async-tasks", str(concurrency // 2), "--ack-type", "when_saved"]
    argv += ["--log-level", "WARNING"]
    worker = Proc("taskiq", *argv, log=tmp / "taskiq.log", env=env, ready=False)
    broker = taskiq_app.broker
    await broker.startup()
    await worker.start()
    try:
        # taskiq-nats' result backend opens a JetStream consumer for every result read (and
        # every poll of one not there yet), and the stream soon refuses more: so completion
        # is read from the task stream's consumer (nothing pending, nothing unacknowledged,
        # and a task is acknowledged only once its result is saved), then a sample of
        # results is read back
        first = await taskiq_app.noop.kiq(0)
        await first.wait_result(check_interval=0.1, timeout=60)
        await _taskiq_batch(broker, taskiq_app.noop, 200)
        t = time.perf_counter()
        values = await _taskiq_batch(broker, taskiq_app.noop, n)
        elapsed = time.perf_counter() - t
    finally:
        await worker.stop()
        await broker.shutdown()
    if values != list(range(n - len(values), n)):
        raise RuntimeError(f"taskiq results are wrong: {values}")
    return n / elapsed


async def _taskiq_batch(broker: Any, task: Any, n: int) -> list[object]:
    """Send ``n`` tasks, wait until all were executed and their results saved; the last
    ten results."""
    sent = [await task.kiq(i) for i in range(n)]
    deadline = time.monotonic() + 60 + n / 20
    while time.monotonic() < deadline:
        info = await broker.js.consumer_info(broker.stream_name, broker.durable)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            break
        await asyncio.sleep(0.005)
    else:
        raise RuntimeError(f"taskiq: {info.num_pending + info.num_ack_pending} of {n} unfinished")
    return [(await t.wait_result(check_interval=0.1, timeout=60)).return_value for t in sent[-10:]]


async def run(quick: bool) -> list[Row]:
    agents = 20 if quick else 100
    n = 300 if quick else 3000
    rows: list[Row] = []
    async with bus() as (server, tmp):
        url = server.url
        async with echo_server(url):
            raw = await raw_rate(url, agents, max(n * 4, 5000))
        db = tmp / "hub" / "clawhub.db"
        async with hub_process(server, tmp / "hub") as hub:
            watcher = Watcher(url, ENDINGS)
            await watcher.start()
            try:
                async with Fleet(url, agents, per_proc=50, log=tmp / "agents.log") as fleet:
                    pids = [p.pid for p in fleet.procs]
                    rate, hub_cpu, agents_cpu = await hub_rate(url, watcher, n, db, hub.pid, pids)
                # as many in flight on a tenth of the agents, each taking 10 at once (a team
                # of model agents): their results finishing together go as one message
                few = max(1, agents // 10)
                async with Fleet(
                    url, few, prefix="multi", capacity=10, log=tmp / "agents.log"
                ) as fleet:
                    pids = [p.pid for p in fleet.procs]
                    multi = await hub_rate(url, watcher, n, db, hub.pid, pids)
            finally:
                await watcher.stop()
        base = "raw nats-py req/reply"
        rows.append(
            Row(S, f"raw nats-py request/reply, {agents} in flight", raw, "req/s", note="baseline")
        )
        rows.append(
            Row(
                S,
                f"hub: {n} no-op tasks, {agents} agents",
                rate,
                "tasks/s",
                raw,
                base,
                rate / raw,
                ">= 0.15x raw",
                rate / raw >= 0.15,
            )
        )
        rows.append(
            Row(
                S,
                f"hub: {n} no-op tasks, {few} agents of capacity 10",
                multi[0],
                "tasks/s",
                raw,
                base,
                multi[0] / raw,
                note="same run",
            )
        )
        for who, cpu in (("hub process", multi[1]), ("agent processes", multi[2])):
            rows.append(
                Row(
                    S,
                    f"CPU per task, {who}, {few} agents of capacity 10",
                    cpu * 1e6,
                    "µs",
                    note="same run",
                )
            )
        for who, cpu, most in (("hub process", hub_cpu, 100), ("agent processes", agents_cpu, 80)):
            us = cpu * 1e6
            rows.append(
                Row(
                    S,
                    f"CPU per task, {who}",
                    us,
                    "µs",
                    note="same run",
                    target=f"<= {most} µs",
                    ok=us <= most,
                )
            )
        peers: list[tuple[str, object]] = []
        if importlib.util.find_spec("celery") is None or importlib.util.find_spec("redis") is None:
            rows.append(missing(S, "Celery + Redis", "celery[redis] is not installed"))
        else:
            try:
                peers.append(
                    ("Celery + Redis (acks_late, results)", await celery_rate(n, agents, tmp))
                )
            except Exception as exc:
                rows.append(missing(S, "Celery + Redis", f"{type(exc).__name__}: {exc}"))
        if importlib.util.find_spec("taskiq_nats") is None:
            rows.append(missing(S, "taskiq + NATS JetStream", "taskiq-nats is not installed"))
        else:
            try:
                peers.append(
                    ("taskiq + NATS JetStream (results)", await taskiq_rate(url, n, agents, tmp))
                )
            except Exception as exc:
                rows.append(missing(S, "taskiq + NATS JetStream", f"{type(exc).__name__}: {exc}"))
        for name, value in peers:
            assert isinstance(value, float)
            celery = name.startswith("Celery")
            rows.append(
                Row(
                    S,
                    f"hub vs {name}",
                    rate,
                    "tasks/s",
                    value,
                    name,
                    rate / value,
                    ">= 10x" if celery else "",
                    rate / value >= 10 if celery else None,
                )
            )
    return rows
