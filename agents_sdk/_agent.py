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

The ``Agent`` is the façade; two collaborators do the work and share its ``HubLink``
(identity, transport, what the hub said): ``Registration`` (steps 1, 2 and 5) and ``Jobs``
(3 and 4). They are wired here with explicit hand-offs: ``Jobs`` tells ``Registration.ensure``
when the hub no longer knows the agent, ``Registration`` tells ``Jobs.revoke`` of an attempt
the hub revoked.

The transport follows the URL: ``nats://`` speaks NATS, ``ws://``/``wss://`` the hub
gateway's WebSocket (``_transport``); everything above is the same on both.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar, overload

from protocols import (
    AgentProfile,
    Assignment,
    Clearance,
    Deregister,
    Device,
    Kind,
    Ok,
    ProtocolError,
    TaskRef,
    is_identifier,
    subjects,
)

from ._context import Emitter, TaskContext
from ._handlers import Handler, HandlerFunc, HandlerRegistry
from ._jobs import Jobs
from ._link import HubLink
from ._local import local_hub_url
from ._loop import run as run_loop
from ._registration import Registration
from ._transport import TOKEN_ENV, open_transport
from ._version import __version__
from .errors import HubUnavailable, SDKError
from .memory import Memory, default_data_dir

log = logging.getLogger("agents_sdk")

F = TypeVar("F", bound=HandlerFunc)


def make_id(name: str) -> str:
    """``slug(name)-<6 hex>``: a fresh, valid agent id."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")[:57] or "agent"
    return f"{slug}-{secrets.token_hex(3)}"


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
        self.data_dir = Path(data_dir).expanduser() if data_dir else default_data_dir(self.id)
        self.memory = Memory(self.data_dir / "memory.db")  # opened on first use
        self.start_timeout = start_timeout
        self._link = HubLink(
            agent_id=self.id,
            group=group,
            session=secrets.token_hex(8),
            request_timeout=request_timeout,
        )
        self._handlers = HandlerRegistry()
        self._jobs = Jobs(
            self._link,
            profile=lambda: self.profile,
            handlers=self._handlers,
            new_context=self._new_context,
            unknown_agent=self._register_again,
        )
        self._registration = Registration(
            self._link,
            profile=lambda: self.profile,
            running=lambda: self._jobs.running,
            revoked=self._jobs.revoke,
        )

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
    def group(self) -> str:
        """The Claw Group the agent joins."""
        return self._link.group

    @property
    def session(self) -> str:
        """Random id of this process's registration (kept across reconnects)."""
        return self._link.session

    @property
    def request_timeout(self) -> float:
        """Bound of each request to the hub (seconds)."""
        return self._link.request_timeout

    @request_timeout.setter
    def request_timeout(self, value: float) -> None:
        self._link.request_timeout = value

    @property
    def hub_id(self) -> str | None:
        """The hub that accepted the last registration (``None`` before the first)."""
        return self._link.hub_id

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between heartbeats: the hub's, from its ``RegisterAck``."""
        return self._link.heartbeat_interval

    @property
    def max_message_bytes(self) -> int | None:
        """The hub's payload limit, from its ``RegisterAck``."""
        return self._link.max_message_bytes

    @property
    def running(self) -> list[TaskRef]:
        """Attempts held now (running, or waiting for their result to be acknowledged)."""
        return self._jobs.running

    @property
    def registered(self) -> bool:
        """True once a hub accepted the registration."""
        return self._registration.registered.is_set()

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

    def _new_context(self, assignment: Assignment, emit: Emitter) -> TaskContext:
        """The hand-off to ``Jobs``: a context for an accepted offer, naming this agent."""
        return TaskContext(assignment, self, emit, hub=self._jobs)

    def _register_again(self) -> None:
        """The hand-off from ``Jobs``: the hub no longer knows this agent."""
        self._registration.ensure()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(
        self,
        url: str | None = None,
        *,
        timeout: float | None = None,
        token: str | None = None,
    ) -> None:
        """Connect, register and start serving; returns once a hub accepted the registration.

        ``url`` is ``nats://...`` (the bus) or ``ws://host:port`` (the hub's gateway);
        default: ``local_hub_url()``, the hub in ``CLAWHUB_NATS_URL`` or ``hub.json``. A
        ``token`` (``clawhub token create``; default: the ``CLAWHUB_TOKEN`` environment
        variable) is needed wherever the hub requires one.

        Raises ``HubUnavailable`` when no connection or no registration succeeds within
        ``timeout`` (default ``start_timeout``), ``AgentIdConflict`` when another live
        process holds this id, ``RequestRefused`` when the hub refuses the profile.
        """
        link, registration = self._link, self._registration
        if link.bus is not None:
            raise RuntimeError(f"agent {self.id} is already started")
        timeout = self.start_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        link.stopping = False
        registration.reset()
        token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        link.sender = subjects.sender_for(token)
        link.bus = bus = await open_transport(
            url or local_hub_url(),
            token=token,
            timeout=timeout,
            name=subjects.agent_connection_name(self.id, self.session),
            reconnected_cb=registration.reconnected,
            disconnected_cb=registration.disconnected,
        )
        try:
            await bus.listen(subjects.agent_inbox(self.group, self.id), self._jobs.on_inbox)
            registration.start()
            try:
                await asyncio.wait_for(
                    registration.first_outcome.wait(), max(0.0, deadline - loop.time())
                )
            except TimeoutError:
                raise HubUnavailable(
                    f"no hub accepted the registration of {self.id} within {timeout:g}s"
                ) from None
            if registration.fatal is not None:
                raise registration.fatal
        except BaseException:
            await self._shutdown(deregister=False)
            raise
        log.info("agent %s registered with hub %s", self.id, self.hub_id)

    async def stop(
        self, *, drain: bool = False, timeout: float = 10.0, reason: str = "agent stopped"
    ) -> None:
        """Leave the group, saying ``reason`` (kept in the hub's ``agent.left`` event).

        Running handlers are cancelled (no result is sent; the hub reassigns their tasks),
        unless ``drain`` is true: then they may finish and deliver their results within
        ``timeout`` seconds. Results already computed get ``timeout`` to be delivered.
        """
        if self._link.bus is None:
            return
        self._link.stopping = True
        await self._jobs.stop(drain=drain, deadline=asyncio.get_running_loop().time() + timeout)
        await self._shutdown(deregister=True, reason=reason)

    async def lose(self, reason: str = "lost") -> None:
        """Leave as a crash would: running handlers are cancelled, heartbeats stop and the
        connection drops without a goodbye, so the hub marks this participant *lost* and
        reassigns its work. What a bridge does when the outside agent behind it stops
        answering (``reason`` goes to this process's log; the hub records the loss)."""
        if self._link.bus is None:
            return
        log.warning("agent %s gives up its place in the group: %s", self.id, reason)
        self._link.stopping = True
        await self._jobs.stop(drain=False, deadline=asyncio.get_running_loop().time())
        await self._shutdown(deregister=False)

    def run(self, url: str | None = None, *, drain: bool = False, token: str | None = None) -> None:
        """Start, serve until SIGINT/SIGTERM, then stop. Blocks; owns its event loop. With no
        ``url``: the local hub (``local_hub_url()``). The loop is uvloop's when uvloop is
        installed (``pip install 'clawhub[fast]'``), unless ``CLAWHUB_LOOP=asyncio``."""
        run_loop(self._serve(url, drain, token))

    async def _serve(self, url: str | None, drain: bool, token: str | None = None) -> None:
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

    async def _shutdown(self, *, deregister: bool, reason: str = "agent stopped") -> None:
        link, registration = self._link, self._registration
        bus, link.bus = link.bus, None
        link.stopping = True
        await registration.cancel()
        if bus is None:
            return
        if deregister and registration.registered.is_set() and bus.connected:
            goodbye = Deregister(agent_id=self.id, session=self.session, reason=reason[:500])
            try:
                await bus.request(
                    subjects.hub_deregister(self.group, self._link.sender),
                    goodbye,
                    Ok,
                    self.request_timeout,
                )
            except (SDKError, ProtocolError) as exc:
                log.debug("deregister of %s: %s", self.id, exc)
        registration.registered.clear()
        await bus.close()
