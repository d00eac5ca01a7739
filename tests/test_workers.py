"""``clawhub up --workers N``: one command, the groups spread over N hub processes on the
embedded nats-server and the default SQLite store (tokens required, as by default). Real
processes: the groups spread, a task done in each group (over NATS, the gateway's REST and
the CLI), a worker killed with SIGKILL has its groups served again and is started again, and
Ctrl-C stops every process."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from agents_sdk import Agent, HubClient, TaskContext
from agents_sdk.errors import HubUnavailable, RequestTimeout
from clawhub.runtime.auth import Tokens
from clawhub.store import Store
from clawhub.store.lease import Leases
from protocols import TaskSpec, TaskState

GROUPS = ["red", "green", "blue", "gold"]
ENV = {
    "CLAWHUB_LEASE_TTL": "1.0",
    "CLAWHUB_TOKEN_REFRESH": "0.3",
    "CLAWHUB_HEARTBEAT_INTERVAL": "0.3",
    "CLAWHUB_MISSED_BEATS": "10",  # a busy machine: agents are not lost for nothing
    "CLAWHUB_RECOVERY_GRACE": "1",
    "CLAWHUB_STALL_TIMEOUT": "30",
}


async def until(pred: Callable[[], Awaitable[bool] | bool], timeout: float = 90.0) -> None:
    began = time.monotonic()
    while True:
        got = pred()
        if isinstance(got, Awaitable):
            got = await got
        if got:
            return
        if time.monotonic() - began > timeout:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


@contextlib.contextmanager
def clawhub_up(data_dir: Path, workers: int) -> Iterator[subprocess.Popen[bytes]]:
    args = ["up", "--workers", str(workers), "--replica-id", "hub", "--port", "0"]
    args += ["--gateway-port", "0", "--data-dir", str(data_dir)]
    for group in GROUPS:
        args += ["--group", group]
    log = (data_dir.parent / "up.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "clawhub.cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **ENV},
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def holders(leases: Leases) -> dict[str, str]:
    return {g: h.holder for g, h in leases.holdings().items() if h.left > 0}


def spread_over(leases: Leases, names: set[str]) -> bool:
    """Every group active, on exactly ``names``, none holding more than its share."""
    held = holders(leases)
    counts = collections.Counter(held.values())
    share = -(-len(GROUPS) // len(names))
    return sorted(held) == sorted(GROUPS) and set(counts) == names and max(counts.values()) <= share


def worker_procs(up: subprocess.Popen[bytes]) -> list[int]:
    """The pids of the worker processes ``clawhub up`` started (its children, from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rpartition(")")[2].split()[1])
            state = stat.rpartition(")")[2].split()[0]
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if ppid == up.pid and state != "Z" and b"clawhub.cli.workers" in argv:
                found.append(int(entry.name))
    return sorted(found)


def argv_of(pid: int) -> list[str]:
    return (Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0"))[:-1]


def alive(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return (Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]) != "Z"
    return False


def make_agent(group: str) -> Agent:
    agent = Agent(f"w-{group}", id=f"w-{group}", skills={"x": 0.8}, group=group)

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        return {"group": group, "input": ctx.input}

    return agent


async def done_in(client: HubClient, title: str) -> str:
    """Submit a task (again while no worker answers for its group) and wait until done."""
    ids: list[str] = []

    async def submitted() -> bool:
        try:
            ids.extend(await client.submit(TaskSpec(title=title, skills={"x": 0.5}, input=title)))
        except (HubUnavailable, RequestTimeout):
            return False
        return True

    await until(submitted)
    state: list[TaskState] = []

    async def finished() -> bool:
        try:
            state[:] = [(await client.task(ids[0])).state]
        except (HubUnavailable, RequestTimeout):
            return False
        return state[0] in (TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED)

    await until(finished)
    assert state == [TaskState.DONE], (title, state)
    return ids[0]


@pytest.mark.timeout(300)
async def test_workers_spread_groups_serve_each_and_take_over_a_killed_one(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "hub"
    data_dir.mkdir()
    with clawhub_up(data_dir, 2) as up:
        hub_file = data_dir / "hub.json"
        await until(lambda: hub_file.exists() and "gateway" in hub_file.read_text())
        info = json.loads(hub_file.read_text())
        url, gateway, admin = info["url"], info["gateway"], info["tokens"]
        assert sorted(admin) == sorted(GROUPS)
        store = Store(f"sqlite:///{data_dir / 'clawhub.db'}")
        leases = Leases(store.engine)
        try:
            # the groups spread: two each on worker 0 (this process) and worker 1 (a child)
            await until(lambda: spread_over(leases, {"hub-w0", "hub-w1"}))
            (child,) = worker_procs(up)
            assert argv_of(child)[1:] == ["-m", "clawhub.cli.workers"]  # no secret in argv
            tokens = Tokens(store)
            agent_tokens = {g: tokens.create(g, "agent", f"w-{g}")[0] for g in GROUPS}
            agents = {g: make_agent(g) for g in GROUPS}
            for group, agent in agents.items():  # the NATS users are reloaded within 0.3 s
                await until(functools.partial(_started, agent, url, agent_tokens[group]))
            try:
                clients = {g: HubClient(url, group=g, token=admin[g], timeout=5) for g in GROUPS}
                async with contextlib.AsyncExitStack() as stack:
                    for client in clients.values():
                        await stack.enter_async_context(client)
                    first = {g: await done_in(clients[g], f"first-{g}") for g in GROUPS}
                    # the gateway of worker 0 answers for every group (forwarding to worker 1)
                    async with httpx.AsyncClient(base_url=gateway, timeout=15) as http:
                        for group, task_id in first.items():
                            got = await http.get(
                                f"/v1/tasks/{task_id}",
                                headers={"Authorization": f"Bearer {admin[group]}"},
                            )
                            assert got.status_code == 200, got.text
                            assert got.json()["state"] == "done"
                    on_child = sorted(g for g, h in holders(leases).items() if h == "hub-w1")
                    where = ["--data-dir", str(data_dir), "--group", on_child[0]]
                    cli = await asyncio.to_thread(
                        subprocess.run,
                        [sys.executable, "-m", "clawhub.cli", "tasks", "--json", *where],
                        capture_output=True,
                        text=True,
                        timeout=60,
                        check=False,
                    )
                    assert cli.returncode == 0, cli.stdout + cli.stderr
                    assert first[on_child[0]] in cli.stdout

                    # worker 1 killed: its groups are served again (by worker 0 at first)
                    os.kill(child, signal.SIGKILL)
                    for group in on_child:
                        await done_in(clients[group], f"after-kill-{group}")
                    # ... and it is started again and gets its share back
                    await until(lambda: len(worker_procs(up)) == 1 and worker_procs(up)[0] != child)
                    await until(lambda: spread_over(leases, {"hub-w0", "hub-w1"}), timeout=120)
                    for group in GROUPS:
                        await done_in(clients[group], f"after-respawn-{group}")
                    for group in on_child:  # taken over twice: worker 0, then worker 1 back
                        assert len(store.events(group, kind="hub.active")) >= 3
            finally:
                for agent in agents.values():
                    await agent.stop()
            children = worker_procs(up)
            up.send_signal(signal.SIGINT)  # Ctrl-C: every worker stops with it
            assert await asyncio.to_thread(up.wait, 60) == 0
            assert not [pid for pid in children if alive(pid)]
        finally:
            store.close()


async def _started(agent: Agent, url: str, token: str) -> bool:
    try:
        await agent.start(url, token=token, timeout=3)
    except Exception:
        with contextlib.suppress(Exception):
            await agent.stop()
        return False
    return True
