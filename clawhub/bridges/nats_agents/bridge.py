"""``NatsAgentsBridge``: agents that speak the Synadia Agent Protocol join a group as workers.

One process, two buses: the agents' NATS (where they registered the micro service
``agents``) and the hub's. The bridge

1. discovers the agents (``$SRV.INFO.agents``, through ``synadia_ai.agents.Agents``, which
   subscribes to ``agents.hb.*.*.*`` first), every ``rediscover_interval`` seconds;
2. registers one participant per logical agent (one prompt subject) with the hub: an
   ``agents_sdk.Agent`` of its own, with its own credential (``tokens[id]``, else
   ``token``) and its own connection, so it can act as no one else;
3. sends each assignment the participant accepts as one prompt, reports the streamed
   ``response`` chunks as progress (a silent stream is *stalled* by the hub), and
   delivers the concatenated text as the result; an error frame, garbage or a broken
   stream is a failed attempt with the reason;
4. takes the agents' heartbeats as liveness: no heartbeat from any instance for
   ``missed_beats`` times ``interval_s`` and the participant gives up its place
   (``Agent.lose``): the hub marks it lost and reassigns its work. It comes back when
   discovery finds the agent again *and* it beats again.

It translates and decides nothing: matching, stalls, fencing, retries and validation
stay in the hub. The mapping of states and fields is in ``mapping``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import nats
from nats.aio.client import Client as NATS
from pydantic import JsonValue
from synadia_ai.agents import (
    Agent as RemoteHandle,
)
from synadia_ai.agents import (
    Agents,
    Envelope,
    HeartbeatPayload,
    NatsAgentError,
    Query,
    ResponseChunk,
    StatusChunk,
    encode,
    parse_nats_url,
)

from agents_sdk import Agent, AgentIdConflict, HubUnavailable, RequestRefused, TaskContext

from ...errors import BusError
from . import mapping
from .mapping import SkillsFrom

log = logging.getLogger("clawhub.bridges.nats_agents")

#: The protocol versions (MAJOR.MINOR) this bridge speaks.
PROTOCOL_VERSIONS = ("0.3",)


class RemoteAgentError(Exception):
    """What a failed attempt says when the agent behind a participant failed it: an error
    frame (§9), a chunk that is not the protocol's, a stream that broke or ended empty."""


@dataclass
class _Instance:
    """One running instance (``$SRV`` id) of a logical agent, as its heartbeats tell."""

    last_seen: float
    interval: float


@dataclass
class _Remote:
    """One logical agent (one prompt subject) and the participant it is in the group."""

    handle: RemoteHandle
    participant: Agent
    instances: dict[str, _Instance] = field(default_factory=dict)
    unsubscribe: list[Callable[[], None]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return mapping.subject_name(self.handle.prompt_subject)

    def silent_for(self, now: float, missed_beats: int) -> float | None:
        """Seconds since the last beat when every instance missed ``missed_beats``, else
        None (one live instance keeps the participant)."""
        if any(now - i.last_seen <= missed_beats * i.interval for i in self.instances.values()):
            return None
        return min((now - i.last_seen for i in self.instances.values()), default=0.0)


class NatsAgentsBridge:
    """Synadia-protocol agents on ``agents_url`` as participants of ``group`` on the hub at
    ``hub_url``. ``async with NatsAgentsBridge(...) as bridge:`` or ``start``/``stop``.

    ``token`` is the default credential of the participants (an admin token may register
    any id); ``tokens`` gives one per participant id (agent tokens from ``clawhub token
    create --role agent --agent-id ID``), which wins; with ``tokens`` and no ``token``, an
    agent without a token of its own is refused. ``filters`` are globs on the names
    (``mapping.matches``); ``skills_from`` says where skills come from: the agents'
    ``metadata.skills`` (the ``skills`` flags fill in for one that declares none) or the
    ``skills`` alone. ``default_interval`` is the heartbeat interval assumed of an agent
    that has not told its own yet. ``keepalive_is_progress`` counts the agents' keep-alive
    ``status`` chunks as progress too (for harnesses that stream no text while they work;
    a hung model behind such a harness is then never stalled, only timed out).
    ``on_change(what, participant_id, detail)`` is told each ``"joined"`` (the detail: the
    prompt subject) and ``"lost"`` (the reason).
    """

    def __init__(
        self,
        hub_url: str,
        *,
        agents_url: str | None = None,
        group: str = "default",
        token: str | None = None,
        tokens: Mapping[str, str] | None = None,
        filters: Sequence[str] = (),
        skills_from: SkillsFrom = "metadata",
        skills: Mapping[str, float] | None = None,
        capacity: int = 1,
        rediscover_interval: float = 10.0,
        missed_beats: int = 3,
        default_interval: float = 30.0,
        discover_wait: float = 2.0,
        progress_every: float = 0.5,
        keepalive_is_progress: bool = False,
        data_dir: Path | None = None,
        on_change: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.hub_url = hub_url
        self.agents_url = agents_url or hub_url
        self.group = group
        self.token = token
        self.tokens = dict(tokens or {})
        self.filters = list(filters)
        self.skills_from: SkillsFrom = skills_from
        self.skills = dict(skills or {})
        self.capacity = capacity
        self.rediscover_interval = rediscover_interval
        self.missed_beats = missed_beats
        self.default_interval = default_interval
        self.discover_wait = discover_wait
        self.progress_every = progress_every
        self.keepalive_is_progress = keepalive_is_progress
        self.data_dir = data_dir
        self.on_change = on_change
        self._nc: NATS | None = None
        self._agents: Agents | None = None
        self._remotes: dict[str, _Remote] = {}
        self._lost: dict[str, datetime] = {}
        self._refused: dict[str, str] = {}
        self._told: set[str] = set()
        self._loop: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    # -- what it holds ----------------------------------------------------------------------

    @property
    def participants(self) -> dict[str, str]:
        """Participant id → prompt subject of every agent in the group now."""
        return {r.participant.id: r.handle.prompt_subject for r in self._remotes.values()}

    @property
    def refused(self) -> dict[str, str]:
        """Prompt subject → why the hub refused its participant (not tried again)."""
        return dict(self._refused)

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> NatsAgentsBridge:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect to the agents' NATS, run the first discovery, then keep discovering and
        watching heartbeats in the background. Raises ``BusError`` for a bad URL or an
        agents' NATS that cannot be reached."""
        if self._nc is not None:
            raise RuntimeError("the bridge is already started")
        self._nc = await self._connect()
        self._agents = Agents(nc=self._nc)
        await self._agents.start_tracking()
        await self.discover()
        self._loop = asyncio.create_task(self._watch(), name="nats-agents-bridge")

    async def _connect(self) -> NATS:
        """The agents' NATS: three tries, then a ``BusError`` that says why; once connected,
        reconnects forever (the agents' server may restart)."""
        seen: list[Exception] = []

        async def on_error(exc: Exception) -> None:
            seen.append(exc)
            log.warning("nats-agents bridge: the agents' NATS: %s", exc or type(exc).__name__)

        try:
            options = parse_nats_url(self.agents_url)
        except NatsAgentError as exc:
            raise BusError(f"bad --nats-url {self.agents_url!r}: {exc}") from None
        try:
            nc = await nats.connect(
                **options,
                name="clawhub-bridge-nats-agents",
                max_reconnect_attempts=2,
                reconnect_time_wait=0.5,
                connect_timeout=5,
                error_cb=on_error,
            )
        except Exception as exc:
            cause = seen[-1] if seen else exc
            raise BusError(
                f"cannot connect to the agents' NATS at {self.agents_url}: "
                f"{cause or type(cause).__name__}"
            ) from None
        nc.options["max_reconnect_attempts"] = -1  # read at each reconnect
        return nc

    async def stop(self, reason: str = "the bridge stopped") -> None:
        """Every participant leaves the group (the hub reassigns what they held)."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        remotes, self._remotes = list(self._remotes.values()), {}
        for remote in remotes:
            for off in remote.unsubscribe:
                off()
        await asyncio.gather(
            *(r.participant.stop(reason=reason) for r in remotes), return_exceptions=True
        )
        if self._agents is not None:
            await self._agents.close()
            self._agents = None
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
            self._nc = None

    async def serve(self) -> None:
        """Start, run until cancelled (Ctrl-C), stop."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def _watch(self) -> None:
        next_discovery = time.monotonic() + self.rediscover_interval
        while True:
            await asyncio.sleep(min(0.25, self.rediscover_interval))
            try:
                await self.check_liveness()
                if time.monotonic() >= next_discovery:
                    await self.discover()
                    next_discovery = time.monotonic() + self.rediscover_interval
            except Exception:  # the bridge outlives one bad round
                log.exception("nats-agents bridge: a discovery round failed; going on")

    # -- discovery --------------------------------------------------------------------------

    async def discover(self) -> list[str]:
        """One discovery round: admit the agents not in the group yet; the participant ids
        admitted."""
        assert self._agents is not None, "start the bridge first"
        async with self._lock:
            found = await self._agents.discover(
                stall=self.discover_wait / 2, max_wait=self.discover_wait
            )
            by_subject: dict[str, list[RemoteHandle]] = {}
            for handle in found:
                by_subject.setdefault(handle.prompt_subject, []).append(handle)
            admitted = []
            for subject, handles in sorted(by_subject.items()):
                remote = self._remotes.get(subject)
                if remote is not None:
                    for handle in handles:
                        self._track(remote, handle.instance_id)
                elif (pid := await self._admit(subject, handles)) is not None:
                    admitted.append(pid)
            return admitted

    def _skip(self, subject: str, why: str) -> None:
        if subject not in self._told:
            self._told.add(subject)
            log.warning("nats-agents bridge: %s is not brought in: %s", subject, why)

    async def _admit(self, subject: str, handles: list[RemoteHandle]) -> str | None:
        handle = handles[0]
        name = handle.session_name or handle.instance_id
        if not mapping.matches(self.filters, handle.agent, handle.owner, name):
            return None
        if subject in self._refused:
            return None
        version = ".".join(handle.protocol_version.split(".")[:2])
        if version not in PROTOCOL_VERSIONS:
            self._skip(subject, f"it speaks protocol {handle.protocol_version}, not 0.3")
            return None
        if handle.min_sender_trust == "signed":
            self._skip(subject, "it takes only signed senders (§13); this bridge signs none")
            return None
        lost_at = self._lost.get(subject)
        if lost_at is not None and not self._beat_since(handles, lost_at):
            return None  # it answers discovery but has not beaten since it was lost
        participant = self._participant(handle, name)
        pid = participant.id
        token = self.tokens.get(pid, self.token)
        if token is None and self.tokens:
            self._refused[subject] = f"no token for participant {pid}"
            log.error(
                "nats-agents bridge: %s is not brought in: no token for participant %s "
                "(add %s=<token> to the tokens; clawhub token create --role agent "
                "--agent-id %s)",
                subject,
                pid,
                pid,
                pid,
            )
            return None
        remote = _Remote(handle=handle, participant=participant)
        for h in handles:
            self._track(remote, h.instance_id)
        await self._bootstrap_interval(remote)
        try:
            await participant.start(self.hub_url, token=token, timeout=15.0)
        except (RequestRefused, AgentIdConflict) as exc:
            self._untrack(remote)
            self._refused[subject] = str(exc)
            log.error(
                "nats-agents bridge: the hub refused %s as participant %s: %s (give it a "
                "token: clawhub token create --role agent --agent-id %s)",
                subject,
                pid,
                exc,
                pid,
            )
            return None
        except HubUnavailable as exc:
            self._untrack(remote)
            log.warning("nats-agents bridge: %s not registered yet: %s", subject, exc)
            return None
        self._remotes[subject] = remote
        self._lost.pop(subject, None)
        log.info("nats-agents bridge: %s joined the group as %s", subject, pid)
        self._tell("joined", pid, subject)
        return pid

    def _tell(self, what: str, pid: str, detail: str) -> None:
        if self.on_change is not None:
            try:
                self.on_change(what, pid, detail)
            except Exception:  # a listener's bug is not the bridge's
                log.exception("nats-agents bridge: on_change(%s, %s) raised", what, pid)

    def _participant(self, handle: RemoteHandle, name: str) -> Agent:
        metadata = dict(handle.metadata)
        skills, problems = mapping.profile_skills(metadata, self.skills_from, self.skills)
        for problem in problems:
            log.warning("nats-agents bridge: %s: %s", handle.prompt_subject, problem)
        pid = mapping.participant_id(handle.agent, handle.owner, name)
        participant = Agent(
            mapping.subject_name(handle.prompt_subject),
            id=pid,
            skills=skills,
            model=metadata.get(mapping.MODEL_KEY) or None,
            device="other",
            capacity=self.capacity,
            labels=mapping.labels(handle.agent, handle.owner),
            group=self.group,
            data_dir=(self.data_dir / pid) if self.data_dir is not None else None,
        )
        subject = handle.prompt_subject

        @participant.handler
        async def work(ctx: TaskContext) -> JsonValue:
            remote = self._remotes.get(subject)
            return await self._run(remote.handle if remote else handle, ctx)

        return participant

    # -- liveness ---------------------------------------------------------------------------

    def _track(self, remote: _Remote, instance_id: str) -> None:
        """Count this instance's heartbeats for ``remote`` (discovery counts as one)."""
        if instance_id in remote.instances or self._agents is None:
            return
        known = self._agents.liveness(instance_id)
        interval = float(known.interval_s) if known is not None else self.default_interval
        remote.instances[instance_id] = _Instance(time.monotonic(), interval)

        def beat(payload: HeartbeatPayload) -> None:
            inst = remote.instances.get(payload.instance_id)
            if inst is not None:
                inst.last_seen = time.monotonic()
                inst.interval = float(payload.interval_s)

        remote.unsubscribe.append(self._agents.on_heartbeat(instance_id, beat))

    def _untrack(self, remote: _Remote) -> None:
        for off in remote.unsubscribe:
            off()
        remote.unsubscribe.clear()

    async def _bootstrap_interval(self, remote: _Remote) -> None:
        """Ask the status endpoint (§8.7) for the heartbeat interval instead of waiting for
        a beat; an agent without one keeps ``default_interval`` until it beats."""
        try:
            status = await remote.handle.status(timeout_s=2.0)
        except (NatsAgentError, TimeoutError, nats.errors.Error) as exc:
            log.info("nats-agents bridge: no status from %s: %s", remote.name, exc)
            return
        inst = remote.instances.get(status.instance_id)
        if inst is not None:
            inst.interval = float(status.interval_s)
            inst.last_seen = time.monotonic()

    def _beat_since(self, handles: list[RemoteHandle], when: datetime) -> bool:
        assert self._agents is not None
        for h in handles:
            seen = self._agents.liveness(h.instance_id)
            if seen is not None and seen.last_seen > when:
                return True
        return False

    async def check_liveness(self) -> list[str]:
        """Give up the place of every participant whose agent stopped beating; their ids."""
        now = time.monotonic()
        gone = []
        for subject, remote in list(self._remotes.items()):
            silent = remote.silent_for(now, self.missed_beats)
            if silent is None:
                continue
            del self._remotes[subject]
            self._untrack(remote)
            self._lost[subject] = datetime.now(UTC)
            reason = (
                f"no heartbeat on agents.hb.{remote.name} for {silent:.1f}s "
                f"({self.missed_beats} x its interval)"
            )
            await remote.participant.lose(reason)
            gone.append(remote.participant.id)
            self._tell("lost", remote.participant.id, reason)
        return gone

    # -- one assignment, one prompt ---------------------------------------------------------

    async def _run(self, handle: RemoteHandle, ctx: TaskContext) -> JsonValue:
        """Prompt the agent with the task; its streamed answer is the result."""
        text, extra = mapping.envelope_fields(ctx.assignment)
        envelope = Envelope(prompt=text, clawhub=extra)
        limit = handle.prompt_endpoint.max_payload_bytes
        if limit is not None and len(encode(envelope)) > limit and extra.get("input") is not None:
            # the prompt's text has the input, cut to size; the raw copy would not fit
            extra = {**extra, "input": None, "input_omitted": True}
            envelope = Envelope(prompt=text, clawhub=extra)
        name = mapping.subject_name(handle.prompt_subject)
        parts: list[str] = []
        last, acked = 0.0, False
        try:
            stream = handle.prompt(
                envelope,
                # the hub's stall timer is the judge of silence; the protocol's own
                # inactivity timeout (§6.6) only stops a stream the hub gave up on
                timeout=max(60.0, 3 * ctx.stall_timeout),
                max_wait_s=ctx.spec.timeouts.run or 7 * 24 * 3600.0,
            )
            try:
                async for item in stream:
                    if isinstance(item, ResponseChunk):
                        parts.append(item.text)
                        if time.monotonic() - last >= self.progress_every:
                            last = time.monotonic()
                            size = sum(len(p) for p in parts)
                            line = mapping.preview("".join(parts))
                            await ctx.progress(None, f"{len(parts)} chunks, {size} chars: {line}")
                    elif isinstance(item, Query):
                        await item.reply(mapping.QUERY_REPLY)
                        await ctx.log(f"{name} asked: {item.prompt[:500]}; the bridge answered")
                    elif isinstance(item, StatusChunk) and not acked:
                        acked = True  # the first ack is told; keep-alives are not progress
                        await ctx.log(f"{name} acknowledged the prompt")
                    elif isinstance(item, StatusChunk) and self.keepalive_is_progress:
                        await ctx.progress(None, f"{name}: {item.status}")
            finally:  # drops the reply subscription: the protocol's cancel (§6.7)
                close = getattr(stream, "aclose", None)
                if close is not None:
                    await close()
        except NatsAgentError as exc:  # an error frame, a bad chunk, a broken stream
            raise RemoteAgentError(f"{name}: {exc}") from None
        except ValueError as exc:  # bytes json cannot even decode (UnicodeDecodeError)
            raise RemoteAgentError(
                f"{name}: sent a chunk that is not JSON text ({type(exc).__name__}: {exc})"
            ) from None
        if not parts:
            raise RemoteAgentError(f"{name} ended its stream without a response")
        try:
            return mapping.task_output("".join(parts), ctx.spec.output_schema)
        except ValueError as exc:
            raise RemoteAgentError(f"{name}: the task asks for JSON: {exc}") from None
