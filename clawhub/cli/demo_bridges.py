"""``clawhub demo --bridges``: three outside agents in one group, each through its own path.

In this process: a ``HubProcess`` (embedded nats-server with tokens required, a gateway,
SQLite in a temporary folder), an ``A2ABridge`` and a ``NatsAgentsBridge``. In their own
processes (``demo_outside``, knowing nothing of Claw Hub): an A2A agent (the a2a-sdk
server), a Synadia Agent Protocol agent on a nats-server of its own, and an MCP client that
works through the gateway's ``/mcp``. Each participant acts with its own agent token.

=============================  =====================  ==========================  ======
participant                    path into the group     its own skill (task)        shared
=============================  =====================  ==========================  ======
``scribe`` (A2A agent)         ``A2ABridge``           ``headline`` 0.9            0.9
``demo-clawhub-crier``         ``NatsAgentsBridge``    ``shout`` 0.9               0.8
``mcp-tallier`` (MCP client)   the gateway's ``/mcp``  ``tally`` 0.9               0.7
=============================  =====================  ==========================  ======

Three tasks, one per skill, go one to each; a fourth needs the shared skill ``text`` and
waits for them (``depends_on``), so all three are idle when it is matched and the best at it
takes it: the A2A agent, slow and thorough (a WORKING status per word). Once the hub shows
the task running there with the agent's own progress, the demo kills the agent's process
(SIGKILL); the A2A bridge sees the agent stop answering and gives the participant up, the
hub marks it lost and reassigns the task, and the next best does it. The demo checks that
this is what happened (the event log included) and exits 0 only then.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from nats.aio.msg import Msg
from rich.console import Console

from agents_sdk import HubClient
from protocols import Event, ProtocolError, TaskSpec, TaskState, TaskStatus, decode, subjects

from ..bridges.a2a import A2ABridge
from ..bridges.nats_agents import NatsAgentsBridge, participant_id
from ..gateway.process import HubProcess
from ..runtime.nats_server import EmbeddedNats
from ..settings import HubSettings
from .views import feed_line

GROUP = "default"
OUTSIDE = Path(__file__).with_name("demo_outside")
#: Seconds to wait for a process or a participant to be up (the machine may be loaded).
START_WAIT = 90.0
SCRIBE, TALLIER = "scribe", "mcp-tallier"
CRIER = participant_id("demo", "clawhub", "crier")

#: Events worth a line in the feed.
FEED = {"task.assigned", "task.done", "task.failed", "task.revoked", "task.retry", "agent.lost"}

NOTE = (
    "Claw Hub ships bridges today: agents that speak A2A, agents on the NATS agent protocol "
    "and MCP clients such as Claude Code now join one group as participants with their own "
    "credentials, and the hub watches all of them alike. It notices an agent that goes "
    "silent, takes its work back and gives it to the next best participant, so a crash "
    "costs a few seconds and loses nothing. Every step is in the event log."
)


@dataclass
class Outside:
    """One outside agent: its process and how it came into the group."""

    kind: str
    via: str
    participant: str
    proc: asyncio.subprocess.Process
    log: Path


def demo_tasks() -> list[TaskSpec]:
    """One task per own skill, then the shared one after them."""
    own = [
        ("headline", "Write the headline", "headline", "claw hub brings your own agents"),
        ("shout", "Announce it in the channel", "shout", "bridges are live"),
        ("tally", "Count the words of the note", "tally", NOTE),
    ]
    specs = [
        TaskSpec(id=tid, title=title, skills={skill: 0.5}, input={"text": text})
        for tid, title, skill, text in own
    ]
    specs.append(
        TaskSpec(
            id="polish",
            title="Polish the release note",
            skills={"text": 0.5},
            input={"text": NOTE},
            depends_on=[tid for tid, *_ in own],
        )
    )
    return specs


async def _spawn(
    who: tuple[str, str, str], script: str, log: Path, *args: str, token: str | None = None
) -> Outside:
    """Start ``demo_outside/<script>``; ``who``: its kind, path in and participant id."""
    env = dict(os.environ)
    if token is not None:  # in the environment, not on the command line (ps shows that)
        env["CLAWHUB_TOKEN"] = token
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-P",  # the folder of the script is not put on sys.path
            str(OUTSIDE / script),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
    return Outside(*who, proc, log)


async def _ready(outside: Outside, what: str) -> str:
    """The word after ``READY`` in the process's output; ``DemoFailed`` if it exits first."""
    deadline = time.monotonic() + START_WAIT
    while True:
        for line in outside.log.read_text(errors="replace").splitlines():
            if line.startswith("READY "):
                return line.split()[1]
        if outside.proc.returncode is not None or time.monotonic() > deadline:
            tail = outside.log.read_text(errors="replace")[-800:]
            raise DemoFailed(f"{what} did not start (see {outside.log}):\n{tail}")
        await asyncio.sleep(0.05)


class DemoFailed(Exception):
    """Something the demo shows did not happen; the message says what."""


class BridgesDemo:
    """The demo's parts and its run; ``run()`` returns the exit code."""

    def __init__(self, console: Console, timeout: float, data_dir: Path) -> None:
        self.console = console
        self.timeout = timeout
        self.data_dir = data_dir
        self.outside: dict[str, Outside] = {}
        self.killed: Outside | None = None
        self.feed: list[Event] = []

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)

    async def run(self, stack: contextlib.AsyncExitStack) -> int:
        started = time.monotonic()
        server = await self._hub(stack)
        client = HubClient(server.url, GROUP, token=server.admin_tokens[GROUP])
        await client.connect()
        stack.push_async_callback(client.close)
        await self._outside(stack, server)
        await self._all_online(client)
        self.say(
            f"3 participants joined in {time.monotonic() - started:.1f}s, each with its own "
            "agent token; submitting 4 tasks (the last needs the shared skill `text`)"
        )
        await self._listen(client, stack)
        specs = demo_tasks()
        ids = await client.submit(specs)
        run_start = time.monotonic()
        statuses = await self._watch(client, ids)
        self._print_feed()
        return await self._report(client, specs, statuses, started, run_start)

    # -- the parts --------------------------------------------------------------------------

    async def _hub(self, stack: contextlib.AsyncExitStack) -> HubProcess:
        settings = HubSettings(
            data_dir=self.data_dir / "hub",
            group=GROUP,
            nats_url=None,
            nats_port=0,
            store_url=None,
            auth=True,
            gateway=True,
            gateway_port=0,
            heartbeat_interval=1.0,  # a loss here is seen by a bridge (or a closed
            missed_beats=5,  # connection) at once: slow beats only spare a busy machine
            accept_timeout=5.0,
            stall_timeout=30.0,
            decline_backoff=0.2,
            mcp_window=30.0,
        )
        server = HubProcess(settings)
        await server.start()
        stack.push_async_callback(server.stop)
        self.say(
            f"[bold]Claw Hub demo --bridges[/]: hub on {server.url} (embedded nats-server, "
            f"tokens required), gateway {server.gateway_url}, store {server.store.display_url}"
        )
        return server

    async def _outside(self, stack: contextlib.AsyncExitStack, server: HubProcess) -> None:
        logs = self.data_dir
        bus = EmbeddedNats(self.data_dir / "agents-nats")  # the agents' own, plain
        bus.start()
        stack.callback(bus.stop)
        tokens = {}
        for pid in (SCRIBE, CRIER, TALLIER):
            tokens[pid], _ = await server.create_token(GROUP, "agent", pid, note="demo --bridges")
        scribe, crier, tallier = await asyncio.gather(
            _spawn(
                ("A2A agent", "the A2A bridge", SCRIBE),
                "a2a_scribe.py", logs / "a2a-scribe.log", "--name", "Scribe",
                "--skill", "headline", "--skill", "text", "--pace", "0.3",
            ),
            _spawn(
                ("NATS-protocol agent", "the nats-agents bridge", CRIER),
                "nats_crier.py", logs / "nats-crier.log", "--nats-url", bus.url,
                "--owner", "clawhub", "--name", "crier", "--skills", "shout=0.9,text=0.8",
                "--heartbeat", "2",
            ),
            _spawn(
                ("MCP-client worker", "/mcp", TALLIER),
                "mcp_tallier.py", logs / "mcp-tallier.log", "--url", f"{server.gateway_url}/mcp",
                "--skill", "tally=0.9", "--skill", "text=0.7", token=tokens[TALLIER],
            ),
        )  # fmt: skip
        for one in (scribe, crier, tallier):
            stack.push_async_callback(_end, one.proc)
        self.outside = {one.participant: one for one in (scribe, crier, tallier)}
        where = await asyncio.gather(  # the three paths come up side by side
            self._a2a(stack, server, scribe, tokens[SCRIBE]),
            self._nats(stack, server, crier, tokens[CRIER], bus.url),
            self._mcp(server, tallier),
        )
        for one, at in zip((scribe, crier, tallier), where, strict=True):
            how = f"joins through {one.via} as {one.participant}"
            self.say(f"  {one.kind} (pid {one.proc.pid}, {at}) {how}")

    async def _a2a(
        self, stack: contextlib.AsyncExitStack, server: HubProcess, one: Outside, token: str
    ) -> str:
        card_url = await _ready(one, "the A2A agent")
        bridge = A2ABridge(
            card_url,
            hub_url=server.url,
            token=token,
            group=GROUP,
            agent_id=SCRIBE,
            skills={"headline": 0.9, "text": 0.9},
            poll_interval=0.5,
            lost_after=2,
        )
        await bridge.start()
        stack.push_async_callback(bridge.stop)
        return f"card at {card_url}"

    async def _nats(
        self,
        stack: contextlib.AsyncExitStack,
        server: HubProcess,
        one: Outside,
        token: str,
        bus_url: str,
    ) -> str:
        await _ready(one, "the NATS-protocol agent")
        bridge = NatsAgentsBridge(
            server.url,
            agents_url=bus_url,
            group=GROUP,
            tokens={CRIER: token},  # no default token: no other agent comes in
            rediscover_interval=0.5,
            discover_wait=1.0,
            default_interval=2.0,
        )
        await bridge.start()
        stack.push_async_callback(bridge.stop)
        return f"on its own nats-server {bus_url}"

    async def _mcp(self, server: HubProcess, one: Outside) -> str:
        joined = await _ready(one, "the MCP-client worker")
        if joined != TALLIER:
            raise DemoFailed(f"the MCP worker joined as {joined}, not as its token's {TALLIER}")
        return f"{server.gateway_url}/mcp"

    async def _all_online(self, client: HubClient) -> None:
        deadline = time.monotonic() + START_WAIT
        while True:
            online = {a.profile.id for a in await client.agents() if a.state == "online"}
            if set(self.outside) <= online:
                return
            if time.monotonic() > deadline:
                missing = ", ".join(sorted(set(self.outside) - online))
                raise DemoFailed(f"not in the group after {START_WAIT:.0f}s: {missing}")
            await asyncio.sleep(0.1)

    async def _listen(self, client: HubClient, stack: contextlib.AsyncExitStack) -> None:
        """Keep the feed's events (subscribed before returning: none of ours is missed)."""

        async def on_event(msg: Msg) -> None:
            with contextlib.suppress(ProtocolError):
                event = decode(msg.data, Event)
                if event.kind in FEED:
                    self.feed.append(event)

        sub = await client.nc.subscribe(subjects.all_events(GROUP), cb=on_event)
        await client.nc.flush()
        stack.push_async_callback(sub.unsubscribe)

    def _print_feed(self) -> None:
        while self.feed:
            line = "  " + feed_line(self.feed.pop(0))
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    # -- the run ----------------------------------------------------------------------------

    async def _watch(self, client: HubClient, ids: list[str]) -> dict[str, TaskStatus]:
        """Follow the tasks until all are terminal (or the timeout); kill the holder of the
        shared task once it is running there and has said something of its own."""
        deadline = time.monotonic() + self.timeout
        while True:
            self._print_feed()
            statuses = {tid: await client.task(tid) for tid in ids}
            if all(s.state.terminal for s in statuses.values()):
                return statuses
            if time.monotonic() > deadline:
                left = ", ".join(f"{t} {s.state.value}" for t, s in statuses.items())
                raise DemoFailed(f"not all tasks finished within {self.timeout:.0f}s: {left}")
            polish = statuses["polish"]
            holder = self.outside.get(polish.assigned_to or "")
            if (
                self.killed is None
                and holder is not None
                and polish.state is TaskState.RUNNING
                and polish.progress_message
            ):
                self._print_feed()
                holder.proc.send_signal(signal.SIGKILL)
                self.killed = holder
                self.say(
                    f"[bold red]kill -9[/] the {holder.kind} {holder.participant} "
                    f"(pid {holder.proc.pid}) in the middle of {polish.spec.title!r} "
                    f"(it had said {polish.progress_message!r})"
                )
            await asyncio.sleep(0.1)

    async def _report(
        self,
        client: HubClient,
        specs: list[TaskSpec],
        statuses: dict[str, TaskStatus],
        started: float,
        run_start: float,
    ) -> int:
        run_seconds = time.monotonic() - run_start
        self.say("[bold]Who did what[/]")
        done_by: dict[str, str] = {}
        for spec in specs:
            status = statuses[str(spec.id)]
            who = next((h.agent_id for h in status.history if h.outcome == "done"), "-")
            done_by[str(spec.id)] = who
            one = self.outside.get(who)
            how = f"{one.kind} via {one.via}" if one else status.state.value
            self.say(f"  {spec.title:<28} {status.state.value} by {who} ({how})")
            if status.state is TaskState.DONE:
                self.console.print(
                    f"      {_preview(status.output)}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
        polish = statuses["polish"]
        attempts = [h for h in polish.history if h.outcome != "declined"]
        said = ", ".join(f"{h.agent_id}: {h.outcome}" for h in attempts)
        self.say(f"attempts of {polish.spec.title!r}: {said}")
        lost_events = await client.history(kind="agent.lost")
        problems = self._problems(statuses, done_by, lost_events)
        done = sum(1 for s in statuses.values() if s.state is TaskState.DONE)
        outcomes = [h.outcome for s in statuses.values() for h in s.history]
        counts = {o: outcomes.count(o) for o in ("lost", "stalled", "rejected", "error")}
        extra = ", ".join(f"{n} {o}" for o, n in counts.items() if n)
        self.say(
            f"[bold]{done}/{len(statuses)} tasks done[/] in {run_seconds:.1f}s (whole demo "
            f"{time.monotonic() - started:.1f}s){'; reassigned after ' + extra if extra else ''}"
        )
        summary = {
            "done": done,
            "total": len(statuses),
            "done_by": done_by,
            "killed": self.killed.participant if self.killed else None,
            "attempts": [[h.agent_id, h.outcome] for h in attempts],
            "problems": problems,
        }
        (self.data_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        for problem in problems:
            self.say(f"[red]not as the demo says:[/] {problem}")
        return 1 if problems else 0

    def _problems(
        self, statuses: dict[str, TaskStatus], done_by: dict[str, str], lost: list[Event]
    ) -> list[str]:
        """What did not happen as the demo says (empty: all of it did)."""
        problems = [
            f"{tid} ended {s.state.value}: {s.error or ''}".rstrip(": ")
            for tid, s in statuses.items()
            if s.state is not TaskState.DONE
        ]
        own = {done_by[t] for t in ("headline", "shout", "tally")}
        if own != set(self.outside):
            problems.append(f"the three own-skill tasks were not one each: {done_by}")
        victim = self.killed.participant if self.killed else None
        if victim is None:
            problems.append("the shared task never ran on an outside agent: no one was killed")
        attempts = [
            (h.agent_id, h.outcome) for h in statuses["polish"].history if h.outcome != "declined"
        ]
        if victim and (
            len(attempts) != 2
            or attempts[0] != (victim, "lost")
            or attempts[1][1] != "done"
            or attempts[1][0] not in set(self.outside) - {victim}
        ):
            problems.append(f"the shared task was not lost by {victim}, then done: {attempts}")
        if victim and victim not in {e.agent_id for e in lost}:
            problems.append(f"no agent.lost of {victim} in the event log")
        return problems


def _preview(output: object, limit: int = 72) -> str:
    """The output as one line of JSON, cut to ``limit`` characters."""
    text = json.dumps(output, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def _end(proc: asyncio.subprocess.Process) -> None:
    """Stop an outside agent (SIGTERM, then SIGKILL) and reap it."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    await proc.wait()


async def run_bridges_demo(console: Console, *, timeout: float = 120.0, keep: bool = False) -> int:
    """Run the bridges demo; 0 when everything happened as it says, else 1 with the reason."""
    data_dir = Path(tempfile.mkdtemp(prefix="clawhub-demo-bridges-"))
    demo = BridgesDemo(console, timeout, data_dir)
    code = 1
    try:
        async with contextlib.AsyncExitStack() as stack:
            code = await demo.run(stack)
    except DemoFailed as exc:
        demo._print_feed()
        console.print(f"[red]demo failed:[/] {exc}", highlight=False, soft_wrap=True)
    except Exception as exc:  # a bridge or the hub refused: said plainly, not a traceback
        demo._print_feed()
        console.print(
            f"[red]demo failed:[/] {type(exc).__name__}: {exc}", highlight=False, soft_wrap=True
        )
    finally:
        if keep:
            console.print(f"data and the outside agents' logs kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    return code
