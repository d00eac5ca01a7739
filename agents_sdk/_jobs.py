"""``Jobs``: the attempts an agent holds, from the offer in its inbox until the hub
acknowledges their results.

1. answer each offered ``Assignment`` with ``Accept`` (and run the handler in its own
   asyncio task) or ``Decline``; run a pushed one (credit: no answer), or publish its
   ``Decline`` on ``hub_decline`` (several pushed at once come as one ``Assignments``, each
   taken as if alone); a ``Cancel`` cancels the attempt's task;
2. deliver each ``Result`` as a request, retried with backoff until the hub acknowledges it
   (the first try of results finishing together goes as one ``Results``: ``_results``).

``Jobs`` shares the agent's ``HubLink`` and is handed what else it needs: the profile (for
its capacity), the handlers, how to make a ``TaskContext``, and whom to tell when the hub no
longer knows the agent (``Registration.ensure``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from protocols import (
    Accept,
    AgentInfo,
    AgentList,
    AgentProfile,
    Assignment,
    Assignments,
    Cancel,
    Child,
    Decline,
    Delegate,
    Delegated,
    ErrorCode,
    ErrorReply,
    GetTask,
    ListAgents,
    Progress,
    ProtocolError,
    ResultAck,
    TaskRef,
    TaskState,
    TaskStatus,
    decode,
    subjects,
)

from . import _trace
from ._context import Emitter, TaskContext
from ._handlers import Handler, HandlerRegistry, invoke
from ._link import BACKOFF_MAX, BACKOFF_START, HubLink
from ._outcome import Key, Outcome, build_result, failure, success
from ._results import ResultBatch
from ._transport import Incoming
from .errors import HubUnavailable, RequestRefused, RequestTimeout

log = logging.getLogger("agents_sdk")

#: Makes the context of an accepted offer, given the emitter its progress goes through.
ContextFactory = Callable[[Assignment, Emitter], TaskContext]


class Job:
    """One attempt an agent holds, from accept until its result is acknowledged."""

    def __init__(self, assignment: Assignment, ctx: TaskContext, handler: Handler) -> None:
        self.key: Key = (assignment.task_id, assignment.attempt)
        self.ctx = ctx
        self.handler = handler
        self.task: asyncio.Task[None] | None = None
        self.in_handler = True
        """False once the handler returned (the result is being delivered)."""
        self.traceparent: str | None = None
        """The offer's traceparent: the parent of the attempt's span."""

    @property
    def ref(self) -> TaskRef:
        return TaskRef(task_id=self.key[0], attempt=self.key[1])


class Jobs:
    """The inbox of one agent and the attempts it holds."""

    def __init__(
        self,
        link: HubLink,
        *,
        profile: Callable[[], AgentProfile],
        handlers: HandlerRegistry,
        new_context: ContextFactory,
        unknown_agent: Callable[[], None],
    ) -> None:
        self._link = link
        self._profile = profile
        self._handlers = handlers
        self._new_context = new_context
        self._unknown_agent = unknown_agent
        self.held: dict[Key, Job] = {}
        """The attempts held, by ``(task_id, attempt)``."""
        self._batch = ResultBatch(link)

    @property
    def running(self) -> list[TaskRef]:
        """Attempts held now (running, or waiting for their result to be acknowledged)."""
        return [job.ref for job in self.held.values()]

    # -- the inbox --------------------------------------------------------------------------

    async def on_inbox(self, msg: Incoming) -> None:
        """Take one message of the agent's inbox: an offer or a cancel."""
        agent_id = self._link.agent_id
        try:
            message = decode(msg.data, Assignment, Assignments, Cancel)
        except ProtocolError as exc:
            log.warning("agent %s: bad inbox message: %s", agent_id, exc)
            await msg.respond(ErrorReply(code=exc.code, message=exc.message))
            return
        if isinstance(message, Assignments):  # several pushed at once: each as if alone
            for one in message.assignments:
                await self._take(one, msg)
            return
        if isinstance(message, Cancel):
            job = self.held.get((message.task_id, message.attempt))
            if job is not None and job.in_handler:
                self.cancel(job, f"cancelled by the hub: {message.reason}")
            # a finished job keeps delivering its result: the hub acknowledges it (taken or
            # a duplicate) or refuses it as stale; either way it ends, and nothing is lost
            return
        assert isinstance(message, Assignment)
        await self._take(message, msg)

    async def _take(self, message: Assignment, msg: Incoming) -> None:
        """Answer an offer, or run (or decline) a pushed assignment."""
        reply, job = self.consider(message)
        if message.pushed:  # credit: it runs already; only a decline goes back
            if isinstance(reply, Decline):
                await self._decline(reply)
        elif msg.wants_reply:
            sent = await msg.respond(reply)
            if not sent and job is not None:
                self.held.pop(job.key, None)
                return
        if job is not None:
            job.traceparent = msg.traceparent
            job.task = asyncio.create_task(self._run(job))

    def consider(self, offer: Assignment) -> tuple[Accept | Decline, Job | None]:
        """Accept or decline an offer; an accepted new offer comes with its job (not started)."""
        agent_id = self._link.agent_id
        key = (offer.task_id, offer.attempt)
        accept = Accept(task_id=offer.task_id, attempt=offer.attempt, agent_id=agent_id)

        def decline(reason: str) -> tuple[Decline, None]:
            log.info("agent %s declines %s#%d: %s", agent_id, *key, reason)
            answer = Decline(
                task_id=offer.task_id, attempt=offer.attempt, agent_id=agent_id, reason=reason
            )
            return answer, None

        if key in self.held:
            return accept, None  # a repeated offer of an attempt we already run
        if self._link.stopping:
            return decline("agent stopping")
        handler = self._handlers.select(offer.spec)
        if handler is None:
            skills = ", ".join(sorted(offer.spec.skills)) or "none"
            return decline(f"no handler for task {offer.task_id} (skills: {skills})")
        busy = sum(1 for j in self.held.values() if j.in_handler and not j.ctx.waiting)
        if busy >= self._profile().capacity:
            # jobs whose result is being delivered hold no slot, nor do those waiting on
            # the tasks they delegated (the hub lends their slots too: no deadlock)
            return decline("busy")
        job = Job(offer, self._new_context(offer, self._send_progress), handler)
        self.held[key] = job
        log.info("agent %s accepts %s#%d (%s)", agent_id, *key, handler.name)
        return accept, job

    def cancel(self, job: Job, reason: str) -> None:
        """Stop one attempt: tell its handler (``ctx.cancelled``) and cancel its task."""
        log.info("agent %s stops %s#%d: %s", self._link.agent_id, *job.key, reason)
        job.ctx.cancel_event.set()
        if job.task is not None:
            job.task.cancel()
        else:
            self.held.pop(job.key, None)

    def revoke(self, ref: TaskRef) -> None:
        """The hub revoked an attempt when the agent registered again."""
        job = self.held.get((ref.task_id, ref.attempt))
        if job is not None:
            self.cancel(job, "revoked by the hub on registration")

    async def stop(self, *, drain: bool, deadline: float) -> None:
        """Let handlers finish (``drain``) or cancel them; give results until ``deadline``."""
        if drain:
            await self._wait(deadline)
        for job in list(self.held.values()):
            if job.in_handler:
                self.cancel(job, "agent stopping")
        await self._wait(deadline)
        for job in list(self.held.values()):
            self.cancel(job, "agent stopped before its result was acknowledged")
        await self._wait(asyncio.get_running_loop().time() + 1.0)

    async def _wait(self, deadline: float) -> None:
        tasks = [job.task for job in self.held.values() if job.task is not None]
        if tasks:
            remaining = max(0.0, deadline - asyncio.get_running_loop().time())
            await asyncio.wait(tasks, timeout=remaining)

    # -- the hub, for a context that delegates (``HubCalls``) -------------------------------

    async def delegate(self, task_id: str, attempt: int, children: list[Child]) -> Delegated:
        """Send ``Delegate`` for one attempt this agent holds."""
        link = self._link
        bus = link.bus
        if bus is None:
            raise HubUnavailable(f"agent {link.agent_id} is stopped")
        message = Delegate(
            task_id=task_id,
            attempt=attempt,
            agent_id=link.agent_id,
            session=link.session,
            children=children,
        )
        subject = subjects.hub_delegate(link.group, link.sender)
        return await bus.request(subject, message, Delegated, link.request_timeout)

    async def task(self, task_id: str) -> TaskStatus:
        """One task's status (a delegated child's)."""
        link = self._link
        bus = link.bus
        if bus is None:
            raise HubUnavailable(f"agent {link.agent_id} is stopped")
        subject = subjects.api(link.group, link.sender, subjects.API_TASK)
        return await bus.request(
            subject, GetTask(task_id=task_id), TaskStatus, link.request_timeout
        )

    async def agents(self) -> list[AgentInfo]:
        """The group's online participants (what a delegated child may be matched to)."""
        link = self._link
        bus = link.bus
        if bus is None:
            raise HubUnavailable(f"agent {link.agent_id} is stopped")
        subject = subjects.api(link.group, link.sender, subjects.API_AGENTS)
        reply = await bus.request(subject, ListAgents(), AgentList, link.request_timeout)
        return reply.agents

    async def _decline(self, message: Decline) -> None:
        bus = self._link.bus
        if bus is not None:
            await bus.publish(subjects.hub_decline(self._link.group, self._link.sender), message)

    async def _send_progress(self, message: Progress) -> None:
        bus = self._link.bus
        if bus is not None:
            await bus.publish(subjects.hub_progress(self._link.group, self._link.sender), message)

    # -- running and delivering -------------------------------------------------------------

    async def _run(self, job: Job) -> None:
        started = time.monotonic()
        task_id, attempt = job.key
        attrs: dict[str, _trace.Attribute] = {
            "clawhub.task_id": task_id,
            "clawhub.attempt": attempt,
            "clawhub.agent_id": self._link.agent_id,
            "clawhub.handler": job.handler.name,
        }
        try:
            with _trace.span(
                "claw.agent.handle", parent=job.traceparent, kind="consumer", attributes=attrs
            ) as span:
                outcome = await self._call(job)
                if outcome.error is not None:
                    _trace.failed(span, outcome.error)
                job.in_handler = False
                await job.ctx._flush()
                await self._deliver(job, outcome, time.monotonic() - started)
        finally:
            if self.held.get(job.key) is job:
                del self.held[job.key]

    async def _call(self, job: Job) -> Outcome:
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

    async def _deliver(self, job: Job, outcome: Outcome, duration: float) -> None:
        """Send the result until the hub acknowledges it (or the agent stops)."""
        link = self._link
        result = build_result(
            job.key,
            outcome,
            agent_id=link.agent_id,
            session=link.session,
            duration=duration,
            usage=job.ctx.usage,
            max_bytes=link.max_message_bytes,
        )
        delay = BACKOFF_START
        # with others finishing now, if there can be others; traced, each goes in its span
        together = self._profile().capacity > 1 and not _trace.enabled()
        while True:
            bus = link.bus
            if bus is None:
                log.error("result of %s#%d dropped: the agent is stopped", *job.key)
                return
            try:
                # the first try goes with the others finishing now (``Results``), if any
                ack = await self._batch.take(result) if together else None
                together = False
                if ack is None:
                    ack = await bus.request(
                        subjects.hub_result(link.group, link.sender),
                        result,
                        ResultAck,
                        link.request_timeout,
                    )
            except RequestRefused as exc:
                if exc.code == ErrorCode.UNAVAILABLE:  # not committed: keep it, send again
                    log.info("result of %s#%d not taken yet (%s); retrying", *job.key, exc)
                elif exc.code == ErrorCode.UNKNOWN_AGENT:
                    self._unknown_agent()
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
