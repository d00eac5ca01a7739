"""A hub on a NATS cluster, against real parts: ``clawhub nats-config`` writes the
configuration from a real SQLite store's tokens, three real nats-server processes run it on
free loopback ports (and a leaf node where a test says so), the hub is a ``HubProcess`` with
``--nats-url`` listing every node, the agents are the SDK's. Identity holds as on the
embedded server: each refusal is answered with its code and recorded."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from conftest import until
from nats.aio.client import Client as NATS
from nats_cluster import Cluster, environ_without_clawhub, free_block, secret_of
from test_identity import Refusals, ask, victim_agent
from typer.testing import CliRunner

from agents_sdk import Agent, HubClient, TaskContext
from clawhub.cli.app import app
from clawhub.errors import BusError
from clawhub.gateway import HubProcess
from clawhub.runtime import EmbeddedNats
from clawhub.runtime.auth import Tokens
from clawhub.settings import HubSettings
from clawhub.store import Store
from protocols import (
    AgentProfile,
    ErrorCode,
    ErrorReply,
    Register,
    RegisterAck,
    TaskState,
    encode,
    subjects,
)

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "nats"
#: How deploy/nats was written (its README says so too).
DEPLOY_ARGS = ["--leaf", "laptop", "--leaf-client-port", "4250"]
#: The files of deploy/nats that hold no secret (the rest are the command's secrets).
PUBLIC = ["node-1.conf", "node-2.conf", "node-3.conf", "leaf-laptop.conf", ".gitignore"]
WAIT = 60.0


def echo_agent(agent_id: str, done: list[str]) -> Agent:
    agent = Agent(agent_id, id=agent_id, group="alpha", skills={"text": 0.8})

    @agent.handler
    async def echo(ctx: TaskContext) -> dict[str, str]:
        done.append(ctx.task_id)
        return {"text": str((ctx.input or {}).get("text", "")).upper()}

    return agent


@dataclass
class Site:
    """A cluster, the store behind it and a hub on it."""

    cluster: Cluster
    store: Store
    tokens: Tokens
    server: HubProcess
    admin: str
    echo: str

    def token(self, agent_id: str) -> str:
        made, _ = self.tokens.create("alpha", "agent", agent_id)
        return made

    async def resync(self) -> None:
        """What an operator does when tokens change: re-run the command, reload each node."""
        self.cluster.generate()
        for name in list(self.cluster.procs):
            await asyncio.to_thread(self.cluster.reload, name)


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'clawhub.db'}"


@pytest.fixture
def cluster(tmp_path: Path, store_url: str) -> Iterator[Cluster]:
    nodes = Cluster(tmp_path / "nats", store_url)
    yield nodes
    nodes.stop()


@pytest.fixture
async def site(cluster: Cluster, store_url: str, tmp_path: Path) -> AsyncIterator[Site]:
    store = Store(store_url)
    tokens = Tokens(store)
    admin, _ = tokens.create("alpha", "admin", note="test admin")
    echo, _ = tokens.create("alpha", "agent", "echo")
    cluster.generate()  # the users of the tokens made so far
    await asyncio.to_thread(cluster.start)
    await cluster.meshed()
    server = HubProcess(cluster.hub_settings(tmp_path / "hub"), ["alpha"], store=store)
    await server.start()
    try:
        yield Site(cluster, store, tokens, server, admin, echo)
    finally:
        await server.stop()
        store.close()


async def run_one(site: Site, text: str, url: str | None = None) -> None:
    async with HubClient(url or site.cluster.url, group="alpha", token=site.admin) as client:
        task_id = await client.submit_task(text, skills={"text": 0.5}, input={"text": text})
        status = await client.wait(task_id, timeout=WAIT)
    assert status.state is TaskState.DONE, status
    assert status.output == {"text": text.upper()}


async def as_token(url: str, token: str, errors: list[Exception], **extra: object) -> NATS:
    user, password = secret_of(token)

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    return await nats.connect(
        url,
        user=user,
        password=password,
        inbox_prefix=subjects.inbox_prefix(user),
        error_cb=on_error,
        allow_reconnect=False,
        **extra,  # type: ignore[arg-type]
    )


# -- the files -------------------------------------------------------------------------------


def test_the_deploy_configs_are_what_the_command_writes_today(tmp_path: Path) -> None:
    out = tmp_path / "nats"
    args = ["nats-config", "--out", str(out), "--data-dir", str(tmp_path / "empty"), *DEPLOY_ARGS]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for name in PUBLIC:
        assert (DEPLOY / name).read_text() == (out / name).read_text(), (
            f"deploy/nats/{name} drifted: regenerate it (deploy/README.md)"
        )
    # the secrets are written with mode 0600 and ignored by git (never committed)
    ignored = set((out / ".gitignore").read_text().split())
    for name in ("secrets.json", "accounts.conf", "routes.conf", "hub.env"):
        assert name in ignored
        assert (out / name).stat().st_mode & 0o077 == 0, name


def test_a_rerun_keeps_every_password_and_adds_only_the_new_token(
    tmp_path: Path, store_url: str
) -> None:
    cluster = Cluster(tmp_path / "nats", store_url)
    store = Store(store_url)
    tokens = Tokens(store)
    first, _ = tokens.create("alpha", "agent", "one")
    cluster.generate({"laptop": [secret_of(first)[0]]})
    before = {p.name: p.read_text() for p in cluster.folder.iterdir()}
    second, _ = tokens.create("alpha", "agent", "two")
    tokens.revoke(secret_of(first)[0])
    output = cluster.generate({"laptop": [secret_of(first)[0]]})
    store.close()
    after = {p.name: p.read_text() for p in cluster.folder.iterdir()}
    assert "is not a live token" in output and "carries no live token" in output
    for same in ("routes.conf", "hub.env", "secrets.json", "node-1.conf", "leaf-laptop.conf"):
        assert before[same] == after[same], same
    accounts = after["accounts.conf"]
    assert secret_of(second)[0] in accounts
    assert secret_of(first)[0] not in accounts  # revoked: gone at the next reload
    assert "leaf-laptop" not in accounts  # a leaf with no live token cannot join


# -- the hub on the cluster ------------------------------------------------------------------


async def test_a_task_is_done_and_work_goes_on_when_the_hubs_node_dies(site: Site) -> None:
    done: list[str] = []
    agent = echo_agent("echo", done)
    await agent.start(site.cluster.url, token=site.echo)  # every node: nats-py picks one
    try:
        await run_one(site, "first")
        hub = site.server.hubs["alpha"]
        assert hub.nc is not None and hub.nc.connected_url is not None
        port = hub.nc.connected_url.port
        site.cluster.kill(f"node-{site.cluster.ports.index(port) + 1}")
        # the hub reconnects to another node; the agent too if it was on that one
        nc = hub.nc

        def moved() -> bool:
            url = nc.connected_url
            return nc.is_connected and url is not None and url.port != port

        await until(moved, timeout=WAIT)
        live = ",".join(f"nats://127.0.0.1:{p}" for p in site.cluster.ports if p != port)
        await run_one(site, "second", url=live)
        assert len(done) == 2
        await hub.durable()
        kinds = [e.kind for e in site.store.events("alpha", limit=1000)]
        assert "hub.reconnected" in kinds
    finally:
        await agent.stop()


async def test_an_agent_token_acts_only_as_itself_on_every_node(site: Site) -> None:
    hub = site.server.hubs["alpha"]
    refused = Refusals(hub)
    errors: list[Exception] = []
    sender = subjects.sender_for(site.echo)
    for port in site.cluster.ports:  # each node holds the token to its own subjects
        nc = await as_token(f"nats://127.0.0.1:{port}", site.echo, errors)
        try:
            squat = Register(profile=AgentProfile(id="someone", name="squat"), session=f"s{port}")
            reply = await ask(nc, subjects.hub_register("alpha", sender), squat)
            assert isinstance(reply, ErrorReply) and reply.code is ErrorCode.FORBIDDEN
            assert "may act only as echo" in reply.message
            forged = subjects.hub_register("alpha", subjects.sender_for(site.admin))
            await nc.publish(forged, encode(squat))
            await nc.flush()
            await until(lambda: any("ermissions" in str(e) for e in errors), timeout=WAIT)
            errors.clear()
        finally:
            await nc.close()
    assert "someone" not in hub.board.agents
    assert len(refused.of(ErrorCode.FORBIDDEN)) == len(site.cluster.ports)
    await hub.durable()
    stored = site.store.events("alpha", kind="message.refused")
    assert len(stored) >= len(site.cluster.ports)  # in the event log, not only published


async def test_a_close_forged_on_another_node_does_not_make_an_agent_lost(site: Site) -> None:
    hub = site.server.hubs["alpha"]
    refused = Refusals(hub)
    victim_token, mallory = site.token("victim"), site.token("mallory")
    await site.resync()  # new tokens: re-run the command, reload the nodes
    started, release = asyncio.Event(), asyncio.Event()
    victim = victim_agent(started, release)
    first = f"nats://127.0.0.1:{site.cluster.ports[0]}"
    await victim.start(first, token=victim_token)
    try:
        name = subjects.agent_connection_name("victim", victim.session)
        third = f"nats://127.0.0.1:{site.cluster.ports[2]}"
        forger = await as_token(third, mallory, [], name=name)
        await forger.close()
        await until(
            lambda: any("ignored the close" in m for m in refused.of(ErrorCode.FORBIDDEN)),
            timeout=WAIT,
        )
        assert hub.board.agents["victim"].state == "online"
        # the victim's own connection closing is heard through the cluster's system account
        assert victim._link.bus is not None
        await victim._link.bus.close()
        await until(lambda: hub.board.agents["victim"].state == "lost", timeout=WAIT)
    finally:
        release.set()
        await victim.stop()


async def test_a_token_made_after_the_config_joins_once_the_nodes_reload(site: Site) -> None:
    late = site.token("late")
    errors: list[Exception] = []
    url = f"nats://127.0.0.1:{site.cluster.ports[1]}"
    with pytest.raises(Exception, match=r"[Aa]uthorization"):
        await as_token(url, late, errors)
    await site.resync()
    nc = await as_token(url, late, errors)
    try:
        own = Register(profile=AgentProfile(id="late", name="late"), session="s1")
        reply = await ask(nc, subjects.hub_register("alpha", subjects.sender_for(late)), own)
        assert isinstance(reply, RegisterAck)
    finally:
        await nc.close()


async def test_an_agent_on_a_leaf_node_completes_a_task(site: Site) -> None:
    laptop = site.token("laptop-echo")
    outsider = site.token("outsider")
    site.cluster.generate({"laptop": [secret_of(laptop)[0]]})
    for name in list(site.cluster.procs):
        await asyncio.to_thread(site.cluster.reload, name)
    await asyncio.to_thread(site.cluster.start_leaf, "laptop")
    done: list[str] = []
    agent = echo_agent("laptop-echo", done)
    await agent.start(site.cluster.leaf_url, token=laptop)  # the leaf only
    try:
        await run_one(site, "from the laptop")
        assert len(done) == 1
        assert (
            site.server.hubs["alpha"].board.agents["laptop-echo"].credential
            == (secret_of(laptop)[0])
        )
        # a token the leaf does not carry cannot use it
        with pytest.raises(Exception, match=r"[Aa]uthorization"):
            await as_token(site.cluster.leaf_url, outsider, [])
    finally:
        await agent.stop()


# -- an external NATS that cannot vouch for senders -----------------------------------------


async def test_a_hub_refuses_an_external_nats_that_lets_anyone_in(
    nats_server: EmbeddedNats, tmp_path: Path, sqlite_store: Store
) -> None:
    settings = HubSettings(nats_url=nats_server.url, data_dir=tmp_path / "hub", gateway=False)
    server = HubProcess(settings, ["alpha"], store=sqlite_store)
    with pytest.raises(BusError, match=re.escape("clawhub nats-config")) as refused:
        await server.start()
    assert "--no-auth" in str(refused.value)
    assert sqlite_store.tokens() == []  # refused before it made its local admin token
    # told to trust the names (a development bus), it serves
    trusting = HubProcess(settings.model_copy(update={"auth": False}), ["alpha"], sqlite_store)
    await trusting.start()
    try:
        assert trusting.hubs["alpha"].principals is None  # names trusted, as asked
    finally:
        await trusting.stop()


# -- the page, as written --------------------------------------------------------------------

PAGE = ROOT / "docs" / "cluster.md"
MARK = re.compile(
    r'^<!-- cluster-test: (run|keeps running)(?:, ready when "([^"]+)"(?: x(\d+))?)?'
    r'(?:, expect "([^"]+)")? -->$'
)
#: The page's ports, and which port of a free block each one becomes.
PAGE_PORTS = {4222: 0, 4223: 1, 4224: 2, 6222: 3, 7422: 6, 4250: 9}


@dataclass
class Step:
    line: int
    keeps_running: bool
    ready: str | None
    times: int
    expect: str | None
    code: str


def page_steps(text: str, base: int) -> list[Step]:
    """The marked bash blocks of the page, its ports moved to a free block at ``base``."""
    lines = text.split("\n")
    found = []
    for i, line in enumerate(lines):
        mark = MARK.match(line.strip())
        if not mark:
            continue
        start = lines.index("```bash", i)
        end = lines.index("```", start + 1)
        code = "\n".join(lines[start + 1 : end]) + "\n"
        for port, offset in PAGE_PORTS.items():
            code = re.sub(rf"(?<!\d){port}(?!\d)", str(base + offset), code)
        kind, ready, times, expect = mark.groups()
        found.append(Step(i + 1, kind == "keeps running", ready, int(times or 1), expect, code))
    return found


class Terminal:
    """A block that keeps running, in a session of its own (stopped by its group id)."""

    def __init__(self, step: Step, cwd: Path, env: dict[str, str]) -> None:
        self.step = step
        self.proc = subprocess.Popen(
            ["bash", "-c", step.code],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.output = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            self.output += raw.decode(errors="replace")

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        assert self.step.ready is not None
        while self.output.count(self.step.ready) < self.step.times:
            assert self.proc.poll() is None, f"line {self.step.line} exited:\n{self.output}"
            assert time.monotonic() < deadline, f"line {self.step.line} not ready:\n{self.output}"
            time.sleep(0.1)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def test_the_cluster_page_runs_as_written(tmp_path: Path) -> None:
    """Tokens, the configuration, three nodes, a hub on all of them, a leaf node and an agent
    on it, a task done; a node killed, another task done: each block as the page shows it."""
    work = tmp_path / "work"
    work.mkdir()
    for name in (".venv", "examples"):
        (work / name).symlink_to(ROOT / name)
    env = environ_without_clawhub(tmp_path / "home")
    steps = page_steps(PAGE.read_text(), free_block())
    assert [s.keeps_running for s in steps] == [False, False, True, True, True, True, False, False]
    terminals: list[Terminal] = []
    try:
        for step in steps:
            if step.keeps_running:
                terminal = Terminal(step, work, env)
                terminals.append(terminal)
                terminal.wait_ready()
                continue
            done = subprocess.run(
                ["bash", "-c", step.code],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            out = done.stdout + done.stderr
            assert done.returncode == 0, f"line {step.line}:\n{out}"
            if step.expect:
                assert step.expect in done.stdout, f"line {step.line}:\n{out}"
        hub = terminals[1].output
        assert "(external, tokens required)" in hub
        assert "registered with hub" in terminals[3].output
    finally:
        for terminal in reversed(terminals):
            terminal.stop()


async def test_a_hub_without_its_credentials_says_which_settings_it_lacks(
    cluster: Cluster, store_url: str, tmp_path: Path
) -> None:
    cluster.generate()
    await asyncio.to_thread(cluster.start)
    settings = cluster.hub_settings(tmp_path / "hub", nats_user=None, nats_password=None)
    store = Store(store_url)
    try:
        with pytest.raises(BusError, match="CLAWHUB_NATS_USER and CLAWHUB_NATS_PASSWORD"):
            await HubProcess(settings, ["alpha"], store=store).start()
    finally:
        store.close()


def test_a_bad_leaf_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    for spec, says in (("bad name=tk-1", "bad --leaf"), ("=tk-1", "bad --leaf")):
        args = ["nats-config", "--out", str(tmp_path / "n"), "--data-dir", str(tmp_path / "d")]
        result = CliRunner().invoke(app, [*args, "--leaf", spec])
        assert result.exit_code == 2, result.output
        assert says in result.output
    args = ["nats-config", "--out", str(tmp_path / "n"), "--data-dir", str(tmp_path / "d")]
    twice = CliRunner().invoke(app, [*args, "--leaf", "a", "--leaf", "a"])
    assert twice.exit_code == 2 and "its own NAME" in twice.output
    assert not (tmp_path / "n").exists()  # nothing half-written
