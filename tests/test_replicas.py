"""Hub replicas on one store and one NATS: leases with a fencing epoch, takeover after a
kill -9, a frozen replica fenced, groups spread and rebalanced. Real processes on loopback,
a real nats-server, real PostgreSQL (and SQLite for the lease rules)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from conftest import postgres_schema_url
from otlp_collector import OtlpCollector, SpanRecord
from test_replica_unsure import replica_settings

from agents_sdk import Agent, HubClient, TaskContext
from agents_sdk.errors import HubUnavailable, RequestTimeout
from clawhub.errors import Fenced
from clawhub.gateway import HubProcess
from clawhub.gateway.sockets import CLOSE_TRY_AGAIN
from clawhub.runtime import EmbeddedNats
from clawhub.store import Store, TaskRow
from clawhub.store.lease import Lease, Leases
from protocols import SubmitTasks, TaskSpec, TaskState, TaskStatus, encode, subjects

PG_ENV = "CLAWHUB_TEST_POSTGRES_URL"
TTL = 1.0


def _task(task_id: str) -> TaskRow:
    spec = TaskSpec(id=task_id, title=task_id).model_dump_json()
    return TaskRow(group="g", id=task_id, seq=1, state="ready", spec=spec)


# ------------------------------------------------------------------ the lease rules


def test_a_lease_is_taken_renewed_fenced_and_handed_over(store: Store) -> None:
    leases = Leases(store.engine)
    a = leases.acquire("g", "A", 30, "http://a")
    assert a == Lease("g", "A", 1)
    assert leases.acquire("g", "B", 30, None) is None  # held: no takeover
    assert leases.acquire("g", "A", 30, "http://a") == a  # ours: renewed, same epoch
    assert leases.renew(a, 30)
    store.apply([_task("t1")], fence=a)
    assert [t.id for t in store.load_tasks("g")] == ["t1"]
    leases.release(a)
    b = leases.acquire("g", "B", 30, None)
    assert b == Lease("g", "B", 2)  # a new holder: a new epoch
    with pytest.raises(Fenced) as fenced:
        store.apply([_task("t2")], fence=a)  # the deposed replica writes: nothing lands
    assert "another replica took over" in str(fenced.value)
    assert [t.id for t in store.load_tasks("g")] == ["t1"]
    assert not leases.renew(a, 30)
    store.apply([_task("t2")], fence=b)
    assert [t.id for t in store.load_tasks("g")] == ["t1", "t2"]
    assert leases.holdings()["g"].holder == "B"


def test_a_lapsed_lease_goes_to_the_next_replica_with_a_new_epoch(store: Store) -> None:
    leases = Leases(store.engine)
    a = leases.acquire("h", "A", -1.0, None)  # taken, and lapsed already
    assert a is not None
    b = leases.acquire("h", "B", 30, None)
    assert b == Lease("h", "B", a.epoch + 1)
    assert not leases.renew(a, 30)
    leases.beat("A", None)
    leases.beat("B", "http://b")
    assert leases.live(60) == ["A", "B"]
    leases.leave("A")
    assert leases.live(60) == ["B"]


# ------------------------------------------------------------------ replicas as processes


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema, named in the URL so other processes use it too."""
    yield from postgres_schema_url("r_")


class Cluster:
    """Replica processes (``clawhub up --replica``) on one nats-server and one store."""

    def __init__(self, nats_url: str, store_url: str, tmp: Path, groups: list[str]) -> None:
        self.nats_url = nats_url
        self.store_url = store_url
        self.tmp = tmp
        self.groups = groups
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env: dict[str, str] = {}
        """More environment for the replicas started from now on (a trace collector's)."""
        self.store = Store(store_url)
        self.leases = Leases(self.store.engine)

    def start(self, name: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "CLAWHUB_LEASE_TTL": str(TTL),
            "CLAWHUB_HEARTBEAT_INTERVAL": "0.3",
            "CLAWHUB_MISSED_BEATS": "10",  # a busy machine: agents are not lost for nothing
            "CLAWHUB_RECOVERY_GRACE": "3",  # ... and have time to claim what they run
            "CLAWHUB_STALL_TIMEOUT": "30",
            "OTEL_SERVICE_NAME": name,  # its spans' service, when traces are on (self.env)
            **self.env,
        }
        args = ["up", "--replica", "--replica-id", name, "--nats-url", self.nats_url]
        args += ["--no-auth"]  # an open nats-server: names in messages are trusted
        args += ["--store-url", self.store_url, "--data-dir", str(self.tmp / name)]
        args += ["--gateway-port", "0"]
        for group in self.groups:
            args += ["--group", group]
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

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def hub_file(self, name: str) -> dict[str, Any]:
        """Replica ``name``'s ``hub.json``: its gateway URL and an admin token per group."""
        found: dict[str, Any] = json.loads((self.tmp / name / "hub.json").read_text())
        return found

    def holders(self) -> dict[str, str]:
        """group → the replica whose lease on it is live."""
        return {g: h.holder for g, h in self.leases.holdings().items() if h.left > 0}

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.store.close()


@pytest.fixture
def cluster_factory(
    nats_server: EmbeddedNats, pg_url: str, tmp_path: Path
) -> Iterator[Callable[[list[str]], Cluster]]:
    made: list[Cluster] = []

    def make(groups: list[str]) -> Cluster:
        found = Cluster(nats_server.url, pg_url, tmp_path, groups)
        made.append(found)
        return found

    yield make
    for found in made:
        found.close()


async def until(pred: Callable[[], Awaitable[bool] | bool], timeout: float = 60.0) -> float:
    """Wait for ``pred``; the seconds it took (a generous timeout: a loaded machine)."""
    began = time.monotonic()
    while True:
        got = pred()
        if isinstance(got, Awaitable):
            got = await got
        if got:
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def serving(cluster: Cluster, group: str, replica: str) -> Callable[[], bool]:
    """Whether ``replica`` took ``group`` and its hub serves it (the ``hub.active`` event
    it writes once its hub is up)."""

    def check() -> bool:
        if cluster.holders().get(group) != replica:
            return False
        active = cluster.store.events(group, kind="hub.active")
        return bool(active) and f'"{replica}"' in active[-1].data

    return check


async def all_done(
    client: HubClient, ids: list[str], timeout: float = 180, cluster: Cluster | None = None
) -> list[TaskStatus]:
    """The tasks' final states, asking again while no replica answers (a takeover); past
    ``timeout``, an error that says how many are missing (and what the replicas said)."""
    final: dict[str, TaskStatus] = {}

    async def done() -> bool:
        try:
            for status in await client.tasks(limit=len(ids) + 10):
                if status.state in (TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED):
                    final[status.id] = status
        except (RequestTimeout, HubUnavailable):
            return False
        return set(final) >= set(ids)

    try:
        await until(done, timeout=timeout)
    except AssertionError:
        missing = len(set(ids) - set(final))
        said = replica_logs(cluster) if cluster else ""
        raise AssertionError(f"{missing} of {len(ids)} not final in {timeout} s; {said}") from None
    return [final[i] for i in ids]


def replica_logs(cluster: Cluster) -> str:
    """The end of each replica's log, for a failure message."""
    return "; ".join(f"{name} said: {cluster.log(name)[-2000:]}" for name in cluster.procs)


def worker(agent_id: str, group: str, runs: list[str] | None = None, capacity: int = 1) -> Agent:
    """An agent of ``group`` that notes each task it finishes in ``runs`` (a side effect)."""
    agent = Agent(agent_id, id=agent_id, skills={"x": 0.8}, capacity=capacity, group=group)

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        await asyncio.sleep(0.02)
        await ctx.progress(1.0)
        if runs is not None:
            runs.append(ctx.task_id)
        return {"by": agent_id}

    return agent


async def started(agents: list[Agent], url: str) -> AsyncIterator[None]:
    for agent in agents:
        await agent.start(url)
    try:
        yield
    finally:
        for agent in agents:
            await agent.stop()


async def test_kill_9_of_the_active_replica_mid_run_loses_nothing_and_does_nothing_twice(
    cluster_factory: Callable[[list[str]], Cluster],
) -> None:
    cluster = cluster_factory(["alpha"])
    cluster.start("r1")
    await until(serving(cluster, "alpha", "r1"))
    cluster.start("r2")
    await until(lambda: "r2" in cluster.leases.live(10))
    runs: list[str] = []
    agents = [worker(f"w{i}", "alpha", runs, capacity=4) for i in range(4)]
    async for _ in started(agents, cluster.nats_url):
        async with HubClient(cluster.nats_url, group="alpha") as client:
            ids = await client.submit(
                [TaskSpec(title=f"t{i}", skills={"x": 0.5}) for i in range(500)]
            )

            async def a_fifth_done() -> bool:
                return len(await client.tasks(states=[TaskState.DONE])) >= 100

            try:  # well inside the test's own timeout, so that a stall says what it was
                await until(a_fifth_done, timeout=75)
            except AssertionError:
                said = replica_logs(cluster)
                raise AssertionError(f"not 100 of 500 done in 75 s; {said}") from None
            cluster.procs["r1"].kill()  # kill -9: no goodbye, no release of the lease
            cluster.procs["r1"].wait()
            took = await until(serving(cluster, "alpha", "r2"))
            # the issue's own bound ("another replica is active within 5 s"), so a timed
            # assertion is in order here; the lease time is 1 s in these tests
            assert took < 5.0, f"r2 was active {took:.1f} s after the kill"
            final = await all_done(client, ids, timeout=75, cluster=cluster)
    assert all(s.state is TaskState.DONE for s in final), collections.Counter(
        s.state for s in final
    )
    for status in final:
        assert sum(1 for h in status.history if h.outcome == "done") == 1
    counts = collections.Counter(runs)
    assert set(counts) == set(ids)  # every task ran
    twice = sorted(t for t, n in counts.items() if n > 1)
    assert not twice, f"{len(twice)} tasks ran twice after the takeover ({took:.1f} s)"
    assert cluster.leases.holdings()["alpha"].epoch == 2
    events = cluster.store.events("alpha", kind="hub.active")
    assert [e.data for e in events][-1].count("r2") == 1


async def test_a_replica_frozen_past_its_lease_is_fenced_and_steps_down(
    cluster_factory: Callable[[list[str]], Cluster],
) -> None:
    """r1 is frozen with work in flight: a submit that reached it alone (r2, frozen too for
    that moment, had not taken the group, so it never got it). r2 takes over; r1 wakes
    believing it is active and handles the submit: the epoch check refuses the write (its
    log says why), r1 steps down and answers nothing, and the store holds nothing of it."""
    cluster = cluster_factory(["alpha"])
    first = cluster.start("r1")
    await until(serving(cluster, "alpha", "r1"))
    second = cluster.start("r2")
    await until(lambda: "r2" in cluster.leases.live(10))
    agent = worker("w0", "alpha")
    async for _ in started([agent], cluster.nats_url):
        async with HubClient(cluster.nats_url, group="alpha") as client:
            os.kill(second.pid, signal.SIGSTOP)  # the standby cannot take the group yet...
            os.kill(first.pid, signal.SIGSTOP)  # ... so what is sent now reaches r1 alone
            inbox = client.nc.new_inbox()
            answers = await client.nc.subscribe(inbox)
            lost = TaskSpec(id="sent-to-the-frozen", title="in flight", skills={"x": 0.5})
            subject = subjects.api("alpha", client.sender, subjects.API_SUBMIT)
            await client.nc.publish(subject, encode(SubmitTasks(tasks=[lost])), reply=inbox)
            await client.nc.flush()  # the server took it: it waits on r1's connection
            assert cluster.leases.holdings()["alpha"].epoch == 1  # r2 was not subscribed
            os.kill(second.pid, signal.SIGCONT)
            await until(serving(cluster, "alpha", "r2"))  # r1's lease lapsed: epoch 2
            [before] = await client.submit(TaskSpec(title="while frozen", skills={"x": 0.5}))
            assert (await client.wait(before, timeout=60)).state is TaskState.DONE
            os.kill(first.pid, signal.SIGCONT)  # it wakes up believing it is active
            await until(lambda: "stood down from group alpha" in cluster.log("r1"))
            await client.nc.flush()  # any answer r1 sent before it stood down is here now
            assert answers.pending_msgs == 0  # r1 promised nothing
            [after] = await client.submit(TaskSpec(title="after", skills={"x": 0.5}))
            status = await client.wait(after, timeout=60)
    assert status.state is TaskState.DONE
    assert cluster.holders()["alpha"] == "r2"
    assert cluster.leases.holdings()["alpha"].epoch == 2
    assert first.poll() is None  # it stands by; it did not crash
    # r1 handled the submit when it woke, and its write was refused: its log says why and
    # what was not written
    cause = "replica r1 no longer holds group alpha (epoch 1): another replica took over"
    refused = [
        line.split("; not written: ", 1)[1]
        for line in cluster.log("r1").splitlines()
        if f"{cause}; this write is refused; not written: " in line
    ]
    assert any(f"tasks {lost.id}" in line for line in refused), refused
    assert "replica r1 steps down from group alpha" in cluster.log("r1")
    # ... so nothing of it is in the store: not the task, not an event of r1's hub since
    # it was frozen, such as the hub.stopped it emits as it steps down (hub.started is the
    # first event of each hub: r1's, then r2's)
    store = cluster.store
    assert [t.id for t in store.load_tasks("alpha")] == [before, after]
    assert not store.events("alpha", task_id=lost.id)
    r1_hub, r2_hub = [e.message.split()[0] for e in store.events("alpha", kind="hub.started")]
    taken = store.events("alpha", kind="hub.active")[-1].seq  # r2 active, epoch 2
    since = [e for e in store.events("alpha", after=taken) if r1_hub in e.message]
    assert not since, since
    assert r2_hub != r1_hub
    seqs = [e.seq for e in store.events("alpha")]
    assert seqs == list(range(1, len(seqs) + 1))  # one log, no gap, nothing overwritten


async def test_groups_spread_over_the_replicas_and_rebalance_when_one_joins(
    cluster_factory: Callable[[list[str]], Cluster],
) -> None:
    """Six groups over two, then three replicas; then each group's task is submitted over
    REST through the gateway of a replica standing by for it: forwarded over NATS to the
    active one with the caller's ``traceparent`` (its spans join the caller's trace), done.
    What needs the active hub in the gateway's process (the agent and event WebSockets,
    SSE, ``/metrics``) that standby refuses ``unavailable``, naming the active replica."""
    groups = [f"g{i}" for i in range(6)]
    cluster = cluster_factory(groups)
    with OtlpCollector() as collector:
        cluster.env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        cluster.start("r1")
        await until(lambda: sorted(cluster.holders()) == groups)
        cluster.start("r2")

        def spread() -> list[int]:
            return sorted(collections.Counter(cluster.holders().values()).values())

        await until(lambda: spread() == [3, 3])
        cluster.start("r3")
        await until(lambda: spread() == [2, 2, 2])
        assert set(cluster.holders().values()) == {"r1", "r2", "r3"}
        files: dict[str, dict[str, Any]] = {}

        def written() -> bool:
            """Each replica's hub.json (written once its first round is over), whole."""
            with contextlib.suppress(OSError, ValueError):
                files.update({name: cluster.hub_file(name) for name in ("r1", "r2", "r3")})
            return len(files) == 3 and all(f.get("tokens") for f in files.values())

        await until(written)
        # every group still serves: a task in each, submitted through a standby, done
        agents = [worker(f"w-{g}", g) for g in groups]
        traced: dict[str, tuple[str, str]] = {}  # group → the caller's (trace id, span id)
        via: dict[str, str] = {}  # group → the standby whose gateway took its REST submit
        async for _ in started(agents, cluster.nats_url):
            async with httpx.AsyncClient(timeout=30) as http:
                for n, group in enumerate(groups):
                    standby = via[group] = await standby_for(cluster, group, files)
                    traced[group] = (f"{n + 1:032x}", f"{n + 1:016x}")
                    await rest_submit(http, files[standby], group, "-".join(traced[group]))
                    async with HubClient(cluster.nats_url, group=group) as client:
                        assert (await client.wait(group, timeout=60)).state is TaskState.DONE
                group = groups[0]
                standby = await standby_for(cluster, group, files)
                for answer in await refusals(http, files[standby], group):
                    assert answer["code"] == "unavailable", answer
                    found = re.fullmatch(
                        f"group {group} is active on replica (r[123]) \\(gateway (.+)\\)",
                        answer["message"],
                    )
                    assert found is not None, answer
                    named, gateway = found.groups()
                    assert named != standby and gateway == files[named]["gateway"]

        def joined(spans: list[SpanRecord], trace_id: str, parent: str) -> bool:
            """The submit span, a child of the caller's, and the task's done span, both in
            the caller's trace and from one replica (the one active for the group)."""
            mine = [s for s in spans if s.trace_id == trace_id and s.service in files]
            submits = {s.service for s in mine if s.name == "clawhub.submit"}
            dones = {s.service for s in mine if s.name == "clawhub.done"}
            parents = {s.parent_id for s in mine if s.name == "clawhub.submit"}
            return len(submits) == 1 and submits == dones and parents == {parent}

        await until(lambda: all(joined(collector.snapshot(), *t) for t in traced.values()))
        spans = collector.snapshot()
    for group, (trace_id, _) in traced.items():
        [submit] = [s for s in spans if s.trace_id == trace_id and s.name == "clawhub.submit"]
        assert submit.attributes["clawhub.task_ids"] == [group]
        assert submit.service != via[group]  # the standby forwarded it; it did not serve it


async def standby_for(cluster: Cluster, group: str, replicas: dict[str, Any]) -> str:
    """A replica of ``replicas`` standing by for ``group``. Its lease can lapse for a moment
    on a loaded machine (a renewal late by more than the test's short TTL): wait for a live
    holder rather than read the holders once."""
    holder: list[str] = []

    def held() -> bool:
        holder[:] = [h for g, h in cluster.holders().items() if g == group]
        return bool(holder)

    await until(held)
    return next(r for r in sorted(replicas) if r != holder[0])


async def rest_submit(http: httpx.AsyncClient, hub: dict[str, Any], group: str, span: str) -> None:
    """Submit task ``group`` of ``group`` with ``POST /v1/api/submit`` to the gateway of
    ``hub`` (a ``hub.json``), under the caller's span ``span`` (trace id-span id)."""
    body = SubmitTasks(tasks=[TaskSpec(id=group, title=group, skills={"x": 0.5})])
    answer = await http.post(
        f"{hub['gateway']}/v1/api/submit",
        content=body.model_dump_json(),
        headers={
            "Authorization": f"Bearer {hub['tokens'][group]}",
            "Content-Type": "application/json",
            "traceparent": f"00-{span}-01",
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["ids"] == [group]


async def refusals(http: httpx.AsyncClient, hub: dict[str, Any], group: str) -> list[Any]:
    """The errors with which the gateway of ``hub`` answers, for ``group``, the agent
    socket, the event socket (close 1013 after the error frame), SSE and ``/metrics``
    (HTTP 503)."""
    token = hub["tokens"][group]
    found: list[Any] = []
    for path in ("/v1/ws/agent", "/v1/ws/events"):
        async with websockets.connect(f"ws{hub['gateway'][4:]}{path}?token={token}") as ws:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 30)
            assert ws.close_code == CLOSE_TRY_AGAIN, (path, ws.close_code)
        assert frame["type"] == "claw.v1.ws.response", frame
        found.append(frame["message"])
    for path in ("/v1/events/stream", "/metrics"):
        got = await http.get(
            f"{hub['gateway']}{path}", headers={"Authorization": f"Bearer {token}"}
        )
        assert got.status_code == 503, (path, got.status_code, got.text)
        found.append(got.json())
    return found


async def test_a_replica_handing_its_only_group_over_keeps_its_hub_file(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    """The group's hub stopping (a handover) leaves the process's ``hub.json`` in place.
    (Found by the test above: a replica that held one group when it wrote ``hub.json``
    named that hub in it, so the hub removed the file when it handed the group over, and
    local CLI commands lost the process.)"""
    async with HubProcess(replica_settings(nats_server, tmp_path), ["g"]) as server:
        assert server.replicas is not None and server.replicas.held == {"g": 1}
        await server.replicas._give_up("g", "a test hands it over")
        assert server.replicas.held == {}
        assert json.loads((tmp_path / "hub.json").read_text())["groups"] == ["g"]
    assert not (tmp_path / "hub.json").exists()  # the process's own stop removes it
