"""Hub replicas on a three-node NATS cluster: ``clawhub nats-config`` writes the cluster's
configuration from a real PostgreSQL store's tokens, three real nats-server processes run
it, two ``clawhub up --replica`` processes use it with the hub's own NATS user (identity on),
agents connect with their own tokens; one node is killed mid-run and every task is still
done, and done once (a side-effect log)."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats_cluster import Cluster as Nodes
from nats_cluster import read_env, secret_of
from test_replicas import TTL, Cluster, all_done, pg_url, serving, until, worker

from agents_sdk import HubClient
from clawhub.runtime.auth import Tokens
from clawhub.runtime.nats_config import HUB_USER
from clawhub.store import Store
from protocols import TaskSpec, TaskState

__all__ = ["pg_url"]  # the fixture, shared with tests/test_replicas.py

GROUP = "alpha"


class AuthReplicas(Cluster):
    """Replica processes on the cluster, with the ``hub.env`` the command wrote: the hub's
    NATS user, the system-account URLs, authentication on."""

    def __init__(self, nodes: Nodes, store_url: str, tmp: Path) -> None:
        super().__init__(nodes.url, store_url, tmp, [GROUP])
        self.hub_env = read_env(nodes.folder / "hub.env")

    def start(self, name: str) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWHUB_")}
        env.update(self.hub_env)
        env.update(
            {
                "CLAWHUB_LEASE_TTL": str(TTL),
                "CLAWHUB_HEARTBEAT_INTERVAL": "0.3",
                "CLAWHUB_MISSED_BEATS": "10",
                "CLAWHUB_RECOVERY_GRACE": "3",
                "CLAWHUB_STALL_TIMEOUT": "30",
            }
        )
        args = ["up", "--replica", "--replica-id", name, "--store-url", self.store_url]
        args += ["--data-dir", str(self.tmp / name), "--gateway-port", "0", "--group", GROUP]
        log = (self.tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "clawhub.cli", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.procs[name] = proc
        return proc


@pytest.fixture
def nodes(tmp_path: Path, pg_url: str) -> Iterator[Nodes]:
    found = Nodes(tmp_path / "nats", pg_url)
    yield found
    found.stop()


async def connections(nodes: Nodes) -> dict[str, list[dict[str, Any]]]:
    """Each node's client connections (``$SYS.REQ.SERVER.PING.CONNZ`` on the system
    account, as an operator's ``nats server report connections`` asks)."""
    urls = read_env(nodes.folder / "hub.env")["CLAWHUB_NATS_SYSTEM_URL"].split(",")
    up = [nodes.ports[int(name.split("-")[1]) - 1] for name in nodes.procs]
    live = [u for u in urls if any(u.endswith(f":{port}") for port in up)]
    nc = await nats.connect(servers=live, allow_reconnect=False)
    found: dict[str, list[dict[str, Any]]] = {}
    try:
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        await nc.publish("$SYS.REQ.SERVER.PING.CONNZ", b'{"auth": true}', reply=inbox)
        while True:
            try:
                msg = await sub.next_msg(timeout=3)
            except nats.errors.TimeoutError:
                break
            answer = json.loads(msg.data)
            found[answer["server"]["name"]] = answer["data"].get("connections") or []
    finally:
        await nc.close()
    return found


def users(conns: list[dict[str, Any]]) -> collections.Counter[str]:
    return collections.Counter(str(c.get("authorized_user", "")) for c in conns)


async def test_two_replicas_on_a_three_node_cluster_work_on_when_a_node_dies(
    nodes: Nodes, pg_url: str, tmp_path: Path
) -> None:
    store = Store(pg_url)
    tokens = Tokens(store)
    admin, _ = tokens.create(GROUP, "admin", note="test admin")
    ids = [f"w{i}" for i in range(4)]
    agent_tokens = {i: tokens.create(GROUP, "agent", i)[0] for i in ids}
    store.close()
    nodes.generate()  # the users of those tokens, the hub's user, the system account
    await asyncio.to_thread(nodes.start)
    await nodes.meshed()
    replicas = AuthReplicas(nodes, pg_url, tmp_path)
    try:
        replicas.start("r1")
        await until(serving(replicas, GROUP, "r1"), timeout=120)
        replicas.start("r2")
        await until(lambda: "r2" in replicas.leases.live(10), timeout=120)
        runs: list[str] = []
        agents = [worker(i, GROUP, runs, capacity=4) for i in ids]
        for agent in agents:
            await agent.start(nodes.url, token=agent_tokens[agent.id])
        try:
            async with HubClient(nodes.url, group=GROUP, token=admin) as client:
                task_ids = await client.submit(
                    [TaskSpec(title=f"t{i}", skills={"x": 0.5}) for i in range(300)]
                )

                async def some_done() -> bool:
                    return len(await client.tasks(states=[TaskState.DONE])) >= 60

                await until(some_done, timeout=180)
                before = await connections(nodes)
                # the node with the most clients dies (its hub and agent connections too)
                victim = max(before, key=lambda name: len(before[name]))
                assert before[victim], before
                nodes.kill(f"node-{victim.rsplit('-', 1)[1]}")
                final = await all_done(client, task_ids)
                after = await connections(nodes)
        finally:
            for agent in agents:
                await agent.stop()
        assert all(s.state is TaskState.DONE for s in final), collections.Counter(
            s.state for s in final
        )
        for status in final:
            assert sum(1 for h in status.history if h.outcome == "done") == 1
        counts = collections.Counter(runs)
        assert set(counts) == set(task_ids)  # every task ran ...
        assert not [t for t, n in counts.items() if n > 1]  # ... once
        # the killed node's clients moved to the two left: both replicas, every agent
        assert victim not in after and len(after) == 2
        moved = sum((users(c) for c in after.values()), collections.Counter())
        assert moved[HUB_USER] >= sum(users(c)[HUB_USER] for c in before.values())
        for token in agent_tokens.values():
            assert moved[secret_of(token)[0]] >= 1, (token, after)
        assert replicas.holders()[GROUP] in ("r1", "r2")
    finally:
        replicas.close()
