"""``Worker``: a participant held for an MCP client that works in the group, the way a person
in the TUI does, with its liveness taken from its tool calls.

An MCP client is not a process the hub can watch: it speaks only when its model calls a
tool. So the bridge holds the participant for it:

- ``join`` opens the participant's link (its inbox first, so no offer is missed) and
  registers the profile; the bridge then heart-beats for it;
- every tool call of the client (``touch``) keeps it alive for ``window`` seconds more, and
  a ``take`` call in flight keeps it alive while it waits. Once the window has passed with
  no call, the bridge stops heart-beating and lets go of the link as *lost*: the hub marks
  the participant lost and reassigns what it held, like any agent that crashed;
- an offer is accepted only while a ``take`` call waits for one, or if one comes within a
  little less than the hub's accept timeout; otherwise it is declined ("not asking for
  work"), and the hub offers the task to the next candidate;
- ``progress`` and ``submit`` carry the attempt number of the offer (the fencing token): a
  result of an attempt the hub has revoked is refused by the hub (``stale_attempt``).

The hub's rules apply unchanged: stalls (no progress for the task's ``stall_timeout``),
validation, retries, budgets. The worker decides nothing the hub decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, JsonValue

from protocols import (
    Accept,
    AgentProfile,
    Assignment,
    Cancel,
    ClaimTask,
    Decline,
    Deregister,
    ErrorCode,
    ErrorReply,
    Heartbeat,
    Progress,
    ProtocolError,
    Register,
    RegisterAck,
    Result,
    TaskRef,
    decode,
)

from .port import HubPort, ParticipantLink, Respond

log = logging.getLogger("clawhub.mcp")

#: The longest a ``take`` call waits for an offer: common MCP clients give up on a tool call
#: after 60 s, so half of that, to leave room for the answer.
MAX_TAKE_WAIT = 30.0

WorkerState = Literal["joining", "joined", "lost", "left"]


def refusal(reply: BaseModel | None) -> ProtocolError | None:
    """The ``ProtocolError`` of an ``ErrorReply`` (None for any other reply)."""
    if isinstance(reply, ErrorReply):
        return ProtocolError(reply.code, reply.message)
    return None


@dataclass
class Held:
    """One attempt the worker accepted, until its result is taken or the hub takes it back."""

    offer: Assignment
    accepted_at: float
    delivered: bool = False
    """True once a ``take`` call handed it to the client."""


@dataclass
class Worker:
    """One participant of an MCP client. ``await join()``; then ``take``, ``progress``,
    ``submit``, ``hand_back``; ``leave`` (or the window lapses)."""

    port: HubPort
    profile: AgentProfile
    window: float
    """Seconds the participant stays alive after the client's last tool call."""
    session: str = field(default_factory=lambda: secrets.token_hex(8))
    state: WorkerState = field(default="joining", init=False)
    held: dict[str, Held] = field(default_factory=dict, init=False)
    notes: list[str] = field(default_factory=list, init=False)
    """What happened since the client last looked (a task taken back by the hub)."""
    heartbeat_interval: float = field(default=2.0, init=False)
    alive_until: float = field(default=0.0, init=False)
    lost_reason: str = field(default="", init=False)
    _link: ParticipantLink | None = field(default=None, init=False, repr=False)
    _takers: int = field(default=0, init=False, repr=False)
    _taker_came: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)
    _new_work: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)
    _beats: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _offers: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)

    @property
    def agent_id(self) -> str:
        """The participant id."""
        return self.profile.id

    # -- life -------------------------------------------------------------------------------

    async def join(self) -> RegisterAck:
        """Open the link, listen on the inbox, register; then heart-beat from the calls.
        Raises the hub's refusal as ``ProtocolError``."""
        self._link = await self.port.link(self.agent_id, self.session)
        try:
            await self._link.listen(self._on_inbox)
            reply = await self._link.send(
                "register", Register(profile=self.profile, session=self.session)
            )
        except BaseException:
            await self._close(None)
            raise
        if not isinstance(reply, RegisterAck):
            await self._close(None)
            raise refusal(reply) or ProtocolError(ErrorCode.INTERNAL, f"unexpected {reply!r}")
        self.heartbeat_interval = reply.heartbeat_interval
        self.state = "joined"
        self.touch()
        self._beats = asyncio.create_task(self._beat_loop(), name=f"mcp-beats-{self.agent_id}")
        return reply

    def touch(self) -> None:
        """A tool call of the client: alive for ``window`` seconds more."""
        self.alive_until = time.monotonic() + self.window

    def check_joined(self) -> None:
        """Refuse (``unknown_agent``) when the worker is no longer in the group."""
        if self.state == "lost":
            raise ProtocolError(
                ErrorCode.UNKNOWN_AGENT,
                f"{self.agent_id} was lost ({self.lost_reason}), so the hub reassigned what "
                "it held; call join_group again",
            )
        if self.state != "joined":
            raise ProtocolError(ErrorCode.UNKNOWN_AGENT, f"{self.agent_id} has left the group")

    async def leave(self, reason: str) -> None:
        """Leave on purpose: the hub takes back what is held (``agent.left``)."""
        if self.state != "joined":
            return
        self.state = "left"
        await self._stop_beats()
        link = self._link
        if link is not None:
            goodbye = Deregister(agent_id=self.agent_id, session=self.session, reason=reason[:500])
            with contextlib.suppress(ProtocolError):
                await link.send("deregister", goodbye)
        await self._close(None)

    async def _lapse(self, reason: str = "") -> None:
        """The window passed with no call (or the token was revoked): lost, as a crashed
        agent is."""
        self.state = "lost"
        reason = reason or f"its MCP client made no tool call for {self.window:g}s"
        self.lost_reason = reason
        log.info("MCP worker %s lost: %s", self.agent_id, reason)
        await self._close(reason)

    async def _close(self, lost: str | None) -> None:
        for task in list(self._offers):
            task.cancel()
        self.held.clear()
        self._new_work.set()  # wake a take call: it sees the state
        link, self._link = self._link, None
        if link is not None:
            await link.close(lost)

    async def _stop_beats(self) -> None:
        beats, self._beats = self._beats, None
        if beats is not None and beats is not asyncio.current_task():
            beats.cancel()
            await asyncio.gather(beats, return_exceptions=True)

    async def _beat_loop(self) -> None:
        while self.state == "joined":
            await asyncio.sleep(self.heartbeat_interval)
            if self.state != "joined":
                return
            if self._takers == 0 and time.monotonic() > self.alive_until:
                await self._lapse()
                return
            await self._beat()

    async def _beat(self) -> None:
        link = self._link
        if link is None:
            return
        running = [TaskRef(task_id=t, attempt=h.offer.attempt) for t, h in self.held.items()]
        beat = Heartbeat(agent_id=self.agent_id, session=self.session, ts=time.time())
        try:
            reply = await link.send("heartbeat", beat.model_copy(update={"running": running}))
        except ProtocolError as exc:
            if exc.code == ErrorCode.UNAUTHORIZED:  # the token was revoked: lost now
                await self._lapse(f"its token was revoked ({exc.message})")
                return
            log.debug("heartbeat of %s: %s", self.agent_id, exc)  # the bus is down: next beat
            return
        if isinstance(reply, ErrorReply) and reply.code == ErrorCode.UNKNOWN_AGENT:
            again = Register(profile=self.profile, session=self.session, running=running)
            with contextlib.suppress(ProtocolError):
                await link.send("register", again)

    # -- offers -----------------------------------------------------------------------------

    async def _on_inbox(self, data: bytes, respond: Respond | None) -> None:
        try:
            message = decode(data, Assignment, Cancel)
        except ProtocolError as exc:
            log.warning("bad inbox message for %s: %s", self.agent_id, exc)
            if respond is not None:
                await respond(ErrorReply(code=exc.code, message=exc.message))
            return
        if isinstance(message, Cancel):
            held = self.held.get(message.task_id)
            if held is not None and held.offer.attempt == message.attempt:
                del self.held[message.task_id]
                self.notes.append(
                    f"task {message.task_id} (attempt {message.attempt}) was taken back by the "
                    f"hub: {message.reason}"
                )
            return
        assert isinstance(message, Assignment)
        if respond is None:
            return
        task = asyncio.create_task(self._offer(message, respond))
        self._offers.add(task)
        task.add_done_callback(self._offers.discard)

    async def _offer(self, offer: Assignment, respond: Respond) -> None:
        """Accept the offer for a waiting (or soon coming) ``take`` call, else decline."""

        async def decline(reason: str) -> None:
            await respond(
                Decline(
                    task_id=offer.task_id,
                    attempt=offer.attempt,
                    agent_id=self.agent_id,
                    reason=reason,
                )
            )

        held = self.held.get(offer.task_id)
        accept = Accept(task_id=offer.task_id, attempt=offer.attempt, agent_id=self.agent_id)
        if held is not None and held.offer.attempt == offer.attempt:
            await respond(accept)  # the same offer again: still ours
            return
        if self.state != "joined":
            await decline("the MCP client has left")
            return
        if len(self.held) >= self.profile.capacity:
            await decline("busy")
            return
        if self._takers == 0:
            timeout = self.port.accept_timeout
            hold = max(0.0, timeout - min(1.0, timeout / 4))
            self._taker_came.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._taker_came.wait(), hold)
            if self._takers == 0 or self.state != "joined":
                await decline(
                    "not asking for work now: an MCP client takes work only while it calls "
                    "take_next_task"
                )
                return
        if not await respond(accept):
            return
        self.held[offer.task_id] = Held(offer, time.monotonic())
        self._new_work.set()

    async def take(self, wait: float, claim: str | None = None) -> Assignment | None:
        """The next offer accepted for this client, waiting up to ``wait`` seconds (at most
        ``MAX_TAKE_WAIT``); None when none came. ``claim``: ask for this ready task (the hub
        offers it to this participant next)."""
        self.check_joined()
        if claim is not None:
            claimed = await self.port.api("claim", ClaimTask(task_id=claim, agent_id=self.agent_id))
            if (exc := refusal(claimed)) is not None:
                raise exc
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, min(wait, MAX_TAKE_WAIT))
        self._takers += 1
        self._taker_came.set()
        try:
            while True:
                self.check_joined()
                for held in self.held.values():
                    if not held.delivered and (claim is None or held.offer.task_id == claim):
                        held.delivered = True
                        return held.offer
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                self._new_work.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._new_work.wait(), remaining)
        finally:
            self._takers -= 1
            self.touch()

    # -- the work ---------------------------------------------------------------------------

    def holding(self, task_id: str) -> Held:
        """The attempt held of ``task_id``; ``not_holder`` when there is none."""
        self.check_joined()
        held = self.held.get(task_id)
        if held is None:
            mine = ", ".join(sorted(self.held)) or "none"
            raise ProtocolError(
                ErrorCode.NOT_HOLDER,
                f"{self.agent_id} holds no attempt of task {task_id} (it holds: {mine}); "
                "take_next_task gives you a task first",
            )
        return held

    async def progress(self, task_id: str, message: str, fraction: float | None) -> None:
        """Report progress of a held attempt (it resets the task's stall timer)."""
        held = self.holding(task_id)
        assert self._link is not None
        update = Progress(
            task_id=task_id,
            attempt=held.offer.attempt,
            agent_id=self.agent_id,
            fraction=fraction,
            message=message,
            ts=time.time(),
        )
        if (exc := refusal(await self._link.send("progress", update))) is not None:
            raise exc

    async def submit(
        self, task_id: str, output: JsonValue, *, ok: bool = True, error: str | None = None
    ) -> BaseModel:
        """Deliver the result of a held attempt, with its attempt number: the hub's
        ``ResultAck`` (or its refusal, raised). A result the hub could not make durable
        (``unavailable``) stays held, to be submitted again."""
        held = self.holding(task_id)
        assert self._link is not None
        result = Result(
            task_id=task_id,
            attempt=held.offer.attempt,
            agent_id=self.agent_id,
            session=self.session,
            ok=ok,
            output=output,
            error=error,
            duration=time.monotonic() - held.accepted_at,
        )
        reply = await self._link.send("result", result)
        exc = refusal(reply)
        if exc is None or exc.code != ErrorCode.UNAVAILABLE:
            self.held.pop(task_id, None)
        if exc is not None:
            raise exc
        assert reply is not None
        return reply

    def release(self, task_id: str) -> None:
        """Forget a held attempt the hub took back on request (``reassign``)."""
        self.held.pop(task_id, None)
