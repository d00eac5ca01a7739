"""``Agent``: a participant that registers with the hub, takes assignments and runs them.

Its life on the bus (see ``protocols.subjects`` for the subjects):

1. connect (the transport reconnects forever), listen on its inbox, then ``Register``;
   registration is retried with backoff until a hub answers;
2. heart-beat every ``heartbeat_interval`` (from the ``RegisterAck``) with the attempts held;
3. answer each ``Assignment`` with ``Accept`` (and run the handler in its own asyncio task)
   or ``Decline``; a ``Cancel`` cancels the attempt's task;
4. deliver each ``Result`` as a request, retried with backoff until the hub acknowledges it;
5. after a reconnect, register again (same session, with the attempts still held);
6. on ``stop``: cancel (or drain) the handlers, ``Deregister``, drain the connection.

The transport follows the URL: ``nats://`` speaks NATS, ``ws://``/``wss://`` the hub
gateway's WebSocket (``_transport``); everything above is the same on both.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar, overload

from protocols import (
    Accept,
    AgentProfile,
    Assignment,
    Cancel,
    Clearance,
    Decline,
    Deregister,
    Device,
    ErrorCode,
    ErrorReply,
    Heartbeat,
    Kind,
    Ok,
    Progress,
    ProtocolError,
    Register,
    RegisterAck,
    ResultAck,
    TaskRef,
    TaskState,
    decode,
    is_identifier,
    subjects,
)

from ._context import TaskContext
from ._handlers import Handler, HandlerFunc, HandlerRegistry, Outcome, failure, invoke, success
from ._jobs import Job as _Job
from ._jobs import Key, build_result, make_id
from ._transport import TOKEN_ENV, Incoming, Transport, open_transport
from ._version import __version__
from .errors import HubUnavailable, RequestRefused, RequestTimeout, SDKError
from .memory import Memory, default_data_dir

log = logging.getLogger("agents_sdk")

F = TypeVar("F", bound=HandlerFunc)

#: Heartbeat interval before the hub told us its own.
DEFAULT_HEARTBEAT = 1.0
#: First and largest delay between retries of registration and result delivery.
BACKOFF_START = 0.2
BACKOFF_MAX = 5.0


class Agent:
    """A participant of a Claw Group: a profile plus the handlers that do its work.

    ``request_timeout`` bounds each request to the hub; ``start_timeout`` is how long
    ``start`` waits for the connection and the first registration. ``data_dir`` holds the
    agent's own files (its ``memory``); default ``~/.clawhub/agents/<id>`` (see
    ``agents_sdk.memory``). Pass a fixed ``id`` for memory that survives restarts.
    """

    def __init__(
        self,
        name: str,
        *,
        skills: dict[str, float] | None = None,
        model: str | None = None,
        device: Device = "laptop",
        capacity: int = 1,
        labels: list[str] | None = None,
        clearance: Clearance = "public",
        cost: float = 0.0,
        tools: list[str] | None = None,
        kind: Kind = "agent",
        id: str | None = None,
        group: str = "default",
        request_timeout: float = 5.0,
        start_timeout: float = 10.0,
        data_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if not is_identifier(group):
            raise ValueError(f"group {group!r} is not a valid identifier")
        self.profile: AgentProfile = AgentProfile(
            id=id if id is not None else make_id(name),
            name=name,
            kind=kind,
            skills=dict(skills or {}),
            model=model,
            device=device,
            tools=list(tools or []),
            capacity=capacity,
            labels=list(labels or []),
            clearance=clearance,
            cost=cost,
            sdk=f"agents_sdk/{__version__}",
        )
        self.group = group
        self.data_dir = Path(data_dir).expanduser() if data_dir else default_data_dir(self.id)
        self.memory = Memory(self.data_dir / "memory.db")  # opened on first use
        self.request_timeout = request_timeout
        self.start_timeout = start_timeout
        self.session: str = secrets.token_hex(8)
        """Random id of this process's registration (kept across reconnects)."""
        self.hub_id: str | None = None
        self.heartbeat_interval: float = DEFAULT_HEARTBEAT
        self.max_message_bytes: int | None = None
        self._handlers = HandlerRegistry()
        self._bus: Transport | None = None
        self._jobs: dict[Key, _Job] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._register_task: asyncio.Task[None] | None = None
        self._registered = asyncio.Event()
        self._beat_reset = asyncio.Event()
        self._first_outcome = asyncio.Event()
        self._fatal: SDKError | None = None
        self._stopping = False

    # -- identity ---------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The agent id (one NATS subject token)."""
        return self.profile.id

    @property
    def name(self) -> str:
        """The display name."""
        return self.profile.name

    @property
    def running(self) -> list[TaskRef]:
        """Attempts held now (running, or waiting for their result to be acknowledged)."""
        return [job.ref for job in self._jobs.values()]

    @property
    def registered(self) -> bool:
        """True once a hub accepted the registration."""
        return self._registered.is_set()

    def __repr__(self) -> str:
        return f"<Agent {self.id} group={self.group} skills={sorted(self.profile.skills)}>"

    # -- handlers ---------------------------------------------------------------------------

    @overload
    def handler(self, func: F, /) -> F: ...
    @overload
    def handler(self, func: None = None, /, *, skill: str | None = None) -> Callable[[F], F]: ...

    def handler(
        self, func: F | None = None, /, *, skill: str | None = None
    ) -> F | Callable[[F], F]:
        """Register a task handler, sync or async, taking a ``TaskContext``.

        ``@agent.handler`` sets the default handler; ``@agent.handler(skill="review")`` one
        used when the task requires that skill. The first matching skill handler wins.
        """

        def register(f: F) -> F:
            self._handlers.add(f, skill)
            return f

        return register(func) if func is not None else register

    def select_handler(self, assignment: Assignment) -> Handler | None:
        """The handler that would run this assignment (``None``: it would be declined)."""
        return self._handlers.select(assignment.spec)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        timeout: float | None = None,
        token: str | None = None,
    ) -> None:
        """Connect, register and start serving; returns once a hub accepted the registration.

        ``url`` is ``nats://...`` (the bus) or ``ws://host:port`` (the hub's gateway); a
        ``token`` (``clawhub token create``; default: the ``CLAWHUB_TOKEN`` environment
        variable) is needed wherever the hub requires one.

        Raises ``HubUnavailable`` when no connection or no registration succeeds within
        ``timeout`` (default ``start_timeout``), ``AgentIdConflict`` when another live
        process holds this id, ``RequestRefused`` when the hub refuses the profile.
        """
        if self._bus is not None:
            raise RuntimeError(f"agent {self.id} is already started")
        timeout = self.start_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._stopping = False
        self._fatal = None
        self._registered = asyncio.Event()
        self._first_outcome = asyncio.Event()
        self._bus = await open_transport(
            url,
            token=token if token is not None else os.environ.get(TOKEN_ENV) or None,
            timeout=timeout,
            name=subjects.agent_connection_name(self.id, self.session),
            reconnected_cb=self._on_reconnected,
            disconnected_cb=self._on_disconnected,
        )
        try:
            await self._bus.listen(subjects.agent_inbox(self.group, self.id), self._on_inbox)
            self._spawn(self._heartbeat_loop())
            self._ensure_registering()
            try:
                await asyncio.wait_for(self._first_outcome.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise HubUnavailable(
                    f"no hub accepted the registration of {self.id} within {timeout:g}s"
                ) from None
            if self._fatal is not None:
                raise self._fatal
        except BaseException:
            await self._shutdown(deregister=False)
            raise
        log.info("agent %s registered with hub %s", self.id, self.hub_id)

    async def stop(self, *, drain: bool = False, timeout: float = 10.0) -> None:
        """Leave the group.

        Running handlers are cancelled (no result is sent; the hub reassigns their tasks),
        unless ``drain`` is true: then they may finish and deliver their results within
        ``timeout`` seconds. Results already computed get ``timeout`` to be delivered.
        """
        if self._bus is None:
            return
        self._stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if drain:
            await self._wait_jobs(deadline)
        for job in list(self._jobs.values()):
            if job.in_handler:
                self._cancel_job(job, "agent stopping")
        await self._wait_jobs(deadline)
        for job in list(self._jobs.values()):
            self._cancel_job(job, "agent stopped before its result was acknowledged")
        await self._wait_jobs(loop.time() + 1.0)
        await self._shutdown(deregister=True)

    def run(
        self, url: str = "nats://127.0.0.1:4222", *, drain: bool = False, token: str | None = None
    ) -> None:
        """Start, serve until SIGINT/SIGTERM, then stop. Blocks; owns its event loop."""
        asyncio.run(self._serve(url, drain, token))

    async def _serve(self, url: str, drain: bool, token: str | None = None) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):
                pass
        try:
            await self.start(url, token=token)
            await stop.wait()
        finally:
            await self.stop(drain=drain)
            for sig in installed:
                loop.remove_signal_handler(sig)

    async def _wait_jobs(self, deadline: float) -> None:
        tasks = [job.task for job in self._jobs.values() if job.task is not None]
        if tasks:
            remaining = max(0.0, deadline - asyncio.get_running_loop().time())
            await asyncio.wait(tasks, timeout=remaining)

    async def _shutdown(self, *, deregister: bool) -> None:
        bus, self._bus = self._bus, None
        self._stopping = True
        background = list(self._tasks)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if bus is None:
            return
        if deregister and self._registered.is_set() and bus.connected:
            goodbye = Deregister(agent_id=self.id, session=self.session, reason="agent stopped")
            try:
                await bus.request(
                    subjects.hub_deregister(self.group), goodbye, Ok, self.request_timeout
                )
            except (SDKError, ProtocolError) as exc:
                log.debug("deregister of %s: %s", self.id, exc)
        self._registered.clear()
        await bus.close()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- registration and liveness ----------------------------------------------------------

    def _ensure_registering(self) -> None:
        if self._stopping:
            return
        if self._register_task is None or self._register_task.done():
            self._register_task = self._spawn(self._register_loop())

    async def _register_loop(self) -> None:
        delay = BACKOFF_START
        while not self._stopping and self._bus is not None:
            message = Register(profile=self.profile, session=self.session, running=self.running)
            try:
                ack = await self._bus.request(
                    subjects.hub_register(self.group),
                    message,
                    RegisterAck,
                    self.request_timeout,
                )
            except RequestRefused as exc:
                if not self._first_outcome.is_set():
                    self._fatal = exc
                    self._first_outcome.set()
                    return
                log.error("hub refused the registration of %s: %s (retrying)", self.id, exc)
            except (HubUnavailable, RequestTimeout, ProtocolError) as exc:
                log.debug("registration of %s: %s (retrying in %.1fs)", self.id, exc, delay)
            else:
                self._registration_accepted(ack)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    def _registration_accepted(self, ack: RegisterAck) -> None:
        self.hub_id = ack.hub_id
        self.heartbeat_interval = ack.heartbeat_interval
        self.max_message_bytes = ack.max_message_bytes
        self._beat_reset.set()  # restart the heartbeat timer with the hub's interval
        for ref in ack.revoked:
            job = self._jobs.get((ref.task_id, ref.attempt))
            if job is not None:
                self._cancel_job(job, "revoked by the hub on registration")
        self._registered.set()
        self._first_outcome.set()

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._beat_reset.wait(), self.heartbeat_interval)
            except TimeoutError:
                pass
            else:
                self._beat_reset.clear()
                continue
            if not self._registered.is_set():
                continue
            beat = Heartbeat(
                agent_id=self.id, session=self.session, ts=time.time(), running=self.running
            )
            if self._bus is not None:
                await self._bus.publish(subjects.hub_heartbeat(self.group), beat)

    async def _on_reconnected(self) -> None:
        log.info("agent %s reconnected; registering again", self.id)
        self._ensure_registering()

    async def _on_disconnected(self) -> None:
        if not self._stopping:
            log.warning("agent %s lost its connection to the hub; reconnecting", self.id)

    # -- the inbox --------------------------------------------------------------------------

    async def _on_inbox(self, msg: Incoming) -> None:
        try:
            message = decode(msg.data, Assignment, Cancel)
        except ProtocolError as exc:
            log.warning("agent %s: bad inbox message: %s", self.id, exc)
            await msg.respond(ErrorReply(code=exc.code, message=exc.message))
            return
        if isinstance(message, Cancel):
            job = self._jobs.get((message.task_id, message.attempt))
            if job is not None and job.in_handler:
                self._cancel_job(job, f"cancelled by the hub: {message.reason}")
            # a finished job keeps delivering its result: the hub acknowledges it (taken or
            # a duplicate) or refuses it as stale; either way it ends, and nothing is lost
            return
        assert isinstance(message, Assignment)
        reply, job = self._consider(message)
        if msg.wants_reply:
            sent = await msg.respond(reply)
            if not sent and job is not None:
                self._jobs.pop(job.key, None)
                return
        if job is not None:
            job.task = asyncio.create_task(self._run_job(job))

    def _consider(self, offer: Assignment) -> tuple[Accept | Decline, _Job | None]:
        """Accept or decline an offer; an accepted new offer comes with its job (not started)."""
        key = (offer.task_id, offer.attempt)
        accept = Accept(task_id=offer.task_id, attempt=offer.attempt, agent_id=self.id)

        def decline(reason: str) -> tuple[Decline, None]:
            log.info("agent %s declines %s#%d: %s", self.id, *key, reason)
            answer = Decline(
                task_id=offer.task_id, attempt=offer.attempt, agent_id=self.id, reason=reason
            )
            return answer, None

        if key in self._jobs:
            return accept, None  # a repeated offer of an attempt we already run
        if self._stopping:
            return decline("agent stopping")
        handler = self._handlers.select(offer.spec)
        if handler is None:
            skills = ", ".join(sorted(offer.spec.skills)) or "none"
            return decline(f"no handler for task {offer.task_id} (skills: {skills})")
        if sum(1 for j in self._jobs.values() if j.in_handler) >= self.profile.capacity:
            return decline("busy")  # jobs whose result is being delivered hold no slot
        job = _Job(offer, TaskContext(offer, self, self._send_progress), handler)
        self._jobs[key] = job
        log.info("agent %s accepts %s#%d (%s)", self.id, *key, handler.name)
        return accept, job

    def _cancel_job(self, job: _Job, reason: str) -> None:
        log.info("agent %s stops %s#%d: %s", self.id, *job.key, reason)
        job.ctx.cancel_event.set()
        if job.task is not None:
            job.task.cancel()
        else:
            self._jobs.pop(job.key, None)

    async def _send_progress(self, message: Progress) -> None:
        if self._bus is not None:
            await self._bus.publish(subjects.hub_progress(self.group), message)

    # -- running and delivering -------------------------------------------------------------

    async def _run_job(self, job: _Job) -> None:
        started = time.monotonic()
        try:
            outcome = await self._call(job)
            job.in_handler = False
            await job.ctx._flush()
            await self._deliver(job, outcome, time.monotonic() - started)
        finally:
            if self._jobs.get(job.key) is job:
                del self._jobs[job.key]

    async def _call(self, job: _Job) -> Outcome:
        try:
            output = await invoke(job.handler, job.ctx)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            return failure(asyncio.CancelledError("the handler raised CancelledError"))
        except Exception as exc:
            log.info("handler of %s#%d raised %s", *job.key, type(exc).__name__)
            return failure(exc)
        return success(output)

    async def _deliver(self, job: _Job, outcome: Outcome, duration: float) -> None:
        """Send the result until the hub acknowledges it (or the agent stops)."""
        result = build_result(job, outcome, duration, self.session, self.max_message_bytes)
        delay = BACKOFF_START
        while True:
            bus = self._bus
            if bus is None:
                log.error("result of %s#%d dropped: the agent is stopped", *job.key)
                return
            try:
                ack = await bus.request(
                    subjects.hub_result(self.group), result, ResultAck, self.request_timeout
                )
            except RequestRefused as exc:
                if exc.code == ErrorCode.UNAVAILABLE:  # not committed: keep it, send again
                    log.info("result of %s#%d not taken yet (%s); retrying", *job.key, exc)
                elif exc.code == ErrorCode.UNKNOWN_AGENT:
                    self._ensure_registering()
                else:
                    log.warning("hub refused the result of %s#%d: %s", *job.key, exc)
                    return
            except (HubUnavailable, RequestTimeout, ProtocolError) as exc:
                log.info("result of %s#%d not delivered (%s); retrying", *job.key, exc)
            else:
                if ack.accepted:
                    log.info("result of %s#%d accepted: task %s", *job.key, ack.state.value)
                elif ack.state in (TaskState.VALIDATING, TaskState.NEEDS_HUMAN):
                    log.info("result of %s#%d taken: %s", *job.key, ack.reason)
                else:
                    log.warning("result of %s#%d refused: %s", *job.key, ack.reason)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)
