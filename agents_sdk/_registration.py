"""``Registration``: an agent's standing with the hub, kept up while it is started.

1. ``Register``, retried with backoff until a hub answers; the first answer (or refusal) is
   what ``Agent.start`` waits for;
2. heart-beat every ``heartbeat_interval`` (from the ``RegisterAck``) with the attempts held;
3. after a reconnect, or when the hub no longer knows the agent, register again (same
   session, with the attempts still held); attempts the hub revoked meanwhile are cancelled.

``Registration`` shares the agent's ``HubLink`` and is handed the rest as callables: the
profile to register, the attempts held, and whom to tell of a revoked attempt
(``Jobs.revoke``). It owns its two background tasks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from protocols import (
    AgentProfile,
    Heartbeat,
    ProtocolError,
    Register,
    RegisterAck,
    TaskRef,
    subjects,
)

from ._link import BACKOFF_MAX, BACKOFF_START, HubLink
from .errors import HubUnavailable, RequestRefused, RequestTimeout, SDKError

log = logging.getLogger("agents_sdk")


class Registration:
    """Registers an agent, heart-beats for it, and registers it again when needed."""

    def __init__(
        self,
        link: HubLink,
        *,
        profile: Callable[[], AgentProfile],
        running: Callable[[], list[TaskRef]],
        revoked: Callable[[TaskRef], None],
    ) -> None:
        self._link = link
        self._profile = profile
        self._running = running
        self._revoked = revoked
        self._tasks: set[asyncio.Task[None]] = set()
        self._register_task: asyncio.Task[None] | None = None
        self.registered = asyncio.Event()
        """Set while a hub holds the registration."""
        self.first_outcome = asyncio.Event()
        """Set at the first acceptance or refusal since ``reset``."""
        self.fatal: SDKError | None = None
        """The refusal of the first registration, if it was refused."""
        self._beat_reset = asyncio.Event()

    def reset(self) -> None:
        """Forget the last start's outcome (called at each ``Agent.start``)."""
        self.fatal = None
        self.registered = asyncio.Event()
        self.first_outcome = asyncio.Event()

    def start(self) -> None:
        """Start heart-beating and registering."""
        self._spawn(self._heartbeat_loop())
        self.ensure()

    async def cancel(self) -> None:
        """Cancel the background tasks and wait for them."""
        background = list(self._tasks)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)

    def ensure(self) -> None:
        """Register (again) unless a registration is under way or the agent is stopping."""
        if self._link.stopping:
            return
        if self._register_task is None or self._register_task.done():
            self._register_task = self._spawn(self._register_loop())

    async def reconnected(self) -> None:
        """The transport came back: register again."""
        log.info("agent %s reconnected; registering again", self._link.agent_id)
        self.ensure()

    async def disconnected(self) -> None:
        """The transport lost its connection (it reconnects on its own)."""
        if not self._link.stopping:
            log.warning(
                "agent %s lost its connection to the hub; reconnecting", self._link.agent_id
            )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _register_loop(self) -> None:
        link = self._link
        delay = BACKOFF_START
        while not link.stopping and link.bus is not None:
            message = Register(
                profile=self._profile(),
                session=link.session,
                running=self._running(),
                credit=link.bus.credit,
                batches=link.bus.credit,  # ``Jobs.on_inbox`` takes ``Assignments``
            )
            try:
                ack = await link.bus.request(
                    subjects.hub_register(link.group, link.sender),
                    message,
                    RegisterAck,
                    link.request_timeout,
                )
            except RequestRefused as exc:
                if not self.first_outcome.is_set():
                    self.fatal = exc
                    self.first_outcome.set()
                    return
                log.error("hub refused the registration of %s: %s (retrying)", link.agent_id, exc)
            except (HubUnavailable, RequestTimeout, ProtocolError) as exc:
                log.debug("registration of %s: %s (retrying in %.1fs)", link.agent_id, exc, delay)
            else:
                self._accepted(ack)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    def _accepted(self, ack: RegisterAck) -> None:
        link = self._link
        link.hub_id = ack.hub_id
        link.heartbeat_interval = ack.heartbeat_interval
        link.max_message_bytes = ack.max_message_bytes
        self._beat_reset.set()  # restart the heartbeat timer with the hub's interval
        for ref in ack.revoked:
            self._revoked(ref)
        self.registered.set()
        self.first_outcome.set()

    async def _heartbeat_loop(self) -> None:
        link = self._link
        while True:
            try:
                await asyncio.wait_for(self._beat_reset.wait(), link.heartbeat_interval)
            except TimeoutError:
                pass
            else:
                self._beat_reset.clear()
                continue
            if not self.registered.is_set():
                continue
            beat = Heartbeat(
                agent_id=link.agent_id,
                session=link.session,
                ts=time.time(),
                running=self._running(),
            )
            if link.bus is not None:
                await link.bus.publish(subjects.hub_heartbeat(link.group, link.sender), beat)
