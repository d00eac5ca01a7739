"""``TaskContext``: what a handler receives, and how it reports progress.

Progress and log lines go through an *emitter* (an async callable taking a ``Progress``):
the real agent publishes them on NATS, ``agents_sdk.testing`` records them in a list. The
context knows the agent that runs it only as a ``RunningAgent`` (its id, profile and
memory), so this module never imports the ``Agent``: the agent hands itself and its emitter
in, as temporal's worker hands an activity its heartbeat.

A handler may hand part of its task to the group: ``await ctx.delegate(title, ...)`` (one
child) or ``await ctx.delegate_all([...])`` (several at once) submit child tasks linked to
this attempt and return their outputs (``_delegate`` has the request and the wait; the hub
is reached through ``HubCalls``, handed in like the emitter).

Async handlers ``await ctx.progress(...)`` / ``await ctx.log(...)``. Sync handlers run in
a worker thread; they call ``ctx.progress_nowait(...)`` / ``ctx.log_nowait(...)``, which are
thread-safe and never block: the message is handed to the event loop, which sends it in
order. Every queued message is sent before the result.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import JsonValue

from protocols import (
    MAX_DELEGATE_BATCH,
    AgentProfile,
    Assignment,
    Child,
    Constraints,
    Progress,
    TaskSpec,
    Timeouts,
    Usage,
    ValidationStep,
    Verdict,
)

from ._delegate import HubCalls, child_spec, live_skills, request_children, wait_children
from .errors import DelegationFailed, SDKError

if TYPE_CHECKING:
    from .memory import Memory

log = logging.getLogger("agents_sdk")

Emitter = Callable[[Progress], Awaitable[None]]

#: Longest progress message the protocol takes; longer ones are cut.
MAX_MESSAGE = 10_000


class RunningAgent(Protocol):
    """The agent running a task, as its handler sees it (``agents_sdk.Agent`` is one)."""

    @property
    def id(self) -> str:
        """The agent id."""

    @property
    def name(self) -> str:
        """The display name."""

    @property
    def group(self) -> str:
        """The Claw Group the agent works in."""

    @property
    def profile(self) -> AgentProfile:
        """The profile the agent registered with."""

    @property
    def data_dir(self) -> Path:
        """The agent's own files."""

    @property
    def memory(self) -> Memory:
        """The agent's persistent memory."""


class TaskContext:
    """One attempt of one task, as a handler sees it."""

    def __init__(
        self,
        assignment: Assignment,
        agent: RunningAgent,
        emit: Emitter,
        hub: HubCalls | None = None,
    ) -> None:
        """``hub``: how this attempt delegates (``None``: it cannot)."""
        self.assignment = assignment
        """The raw ``Assignment`` message."""
        self.task_id: str = assignment.task_id
        """The task's id."""
        self.attempt: int = assignment.attempt
        """The attempt number (the hub's fencing token)."""
        self.spec: TaskSpec = assignment.spec
        """The task as submitted."""
        self.dependency_outputs: dict[str, JsonValue] = dict(assignment.dependency_outputs)
        """Outputs of the tasks this one depends on, by task id."""
        self.agent = agent
        """The ``Agent`` running the task (typed as what a handler may use of it)."""
        self.cancel_event = threading.Event()
        """Set when the hub revokes the attempt or the agent stops (safe to poll from threads)."""
        self._emit = emit
        self._usage: Usage | None = None
        self._usage_lock = threading.Lock()
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Progress] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._hub = hub
        self._keys = 0
        self._waiting = 0

    @property
    def input(self) -> JsonValue:
        """``spec.input``: the task's input data."""
        return self.spec.input

    @property
    def instructions(self) -> str:
        """``spec.instructions``: what to do."""
        return self.spec.instructions

    @property
    def deps(self) -> dict[str, JsonValue]:
        """Short name for ``dependency_outputs``."""
        return self.dependency_outputs

    @property
    def stall_timeout(self) -> float:
        """Report progress at least this often (seconds), or the hub revokes the attempt."""
        return self.assignment.stall_timeout

    @property
    def cancelled(self) -> bool:
        """True once the attempt was cancelled; long sync handlers should poll it."""
        return self.cancel_event.is_set()

    @property
    def feedback(self) -> list[Verdict]:
        """Rejections of earlier attempts of this task, with their reasons: what to fix."""
        return self.assignment.feedback

    @property
    def memory(self) -> Memory:
        """The agent's persistent memory (``agents_sdk.Memory``; thread-safe)."""
        return self.agent.memory

    # -- model usage ------------------------------------------------------------------------

    def add_usage(self, usage: Usage) -> None:
        """Count model tokens and cost against this attempt (thread-safe).

        The sum goes out with the result (``Result.usage``); a handler that never calls
        this reports no usage. ``LLMAgent`` calls it for every model call.
        """
        with self._usage_lock:
            self._usage = usage.model_copy() if self._usage is None else self._usage.plus(usage)

    @property
    def usage(self) -> Usage | None:
        """The usage added so far (``None`` when nothing was added)."""
        with self._usage_lock:
            return None if self._usage is None else self._usage.model_copy()

    def _message(self, fraction: float | None, message: str | None, log: bool) -> Progress:
        if fraction is not None and not 0.0 <= fraction <= 1.0:
            raise ValueError(f"progress fraction must be within 0..1, got {fraction}")
        if message is not None and len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 1] + "…"
        return Progress(
            task_id=self.task_id,
            attempt=self.attempt,
            agent_id=self.agent.id,
            fraction=fraction,
            message=message,
            log=log,
            ts=time.time(),
        )

    async def progress(self, fraction: float | None = None, message: str | None = None) -> None:
        """Report progress (``fraction`` in 0..1 and/or a status line); resets the stall timer."""
        await self._flush()
        await self._emit(self._message(fraction, message, log=False))

    async def log(self, message: str) -> None:
        """Send a log line; it also resets the stall timer."""
        await self._flush()
        await self._emit(self._message(None, message, log=True))

    def progress_nowait(self, fraction: float | None = None, message: str | None = None) -> None:
        """Like ``progress`` but callable from any thread (for sync handlers); never blocks."""
        self._enqueue(self._message(fraction, message, log=False))

    def log_nowait(self, message: str) -> None:
        """Like ``log`` but callable from any thread (for sync handlers); never blocks."""
        self._enqueue(self._message(None, message, log=True))

    def _enqueue(self, message: Progress) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._put(message)
        else:
            self._loop.call_soon_threadsafe(self._put, message)

    def _put(self, message: Progress) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue()
        self._queue.put_nowait(message)
        if self._sender is None or self._sender.done():
            self._sender = self._loop.create_task(self._drain())

    async def _drain(self) -> None:
        assert self._queue is not None
        while not self._queue.empty():
            try:
                await self._emit(self._queue.get_nowait())
            except Exception:  # an emitter must not kill the handler
                log.exception("sending progress of %s failed", self.task_id)

    async def _flush(self) -> None:
        """Wait until every message queued by the ``*_nowait`` variants was sent."""
        # Let callbacks scheduled from worker threads run first.
        await asyncio.sleep(0)
        while self._sender is not None and not self._sender.done():
            await asyncio.shield(self._sender)

    # -- delegation -------------------------------------------------------------------------

    @property
    def waiting(self) -> bool:
        """True while the handler waits on tasks it delegated (its slot is lent meanwhile)."""
        return self._waiting > 0

    async def group_skills(self) -> dict[str, float]:
        """The skills a delegated task may ask for now: every skill of the group's online,
        active participants, with its highest level (``{}`` when there is no hub)."""
        if self._hub is None:
            return {}
        return live_skills(await self._hub.agents())

    async def delegate(
        self,
        title: str,
        *,
        instructions: str | None = None,
        input: JsonValue = None,
        skills: Mapping[str, float] | None = None,
        validation: Sequence[ValidationStep | Mapping[str, Any]] | None = None,
        output_schema: dict[str, Any] | None = None,
        acceptance: Sequence[str] | None = None,
        constraints: Constraints | Mapping[str, Any] | None = None,
        deadline: float | None = None,
        max_attempts: int | None = None,
        timeouts: Timeouts | Mapping[str, Any] | None = None,
        priority: int | None = None,
        timeout: float | None = None,
    ) -> JsonValue:
        """Hand part of this task to the group and return the output of that part.

        The hub adds a child task of this one and matches it like any other task, to the
        participant that best fits ``skills`` (a skill name → the minimum level 0..1; none:
        anyone may take it), maybe this very agent. It waits until the child is done and
        returns its output; raises ``DelegationFailed`` when the child failed or was
        cancelled (the reason in its ``error``), ``TimeoutError`` after ``timeout`` seconds.

        ``title``: the child's short title; ``instructions``: what to do, in words;
        ``input``: its input data (any JSON); ``validation``: checks its result goes
        through (``{"kind": "reviewer", "skill": "review"}``, ``{"kind": "judge"}``...);
        ``output_schema``: a JSON Schema the output must match; ``acceptance``: criteria in
        words; ``constraints``, ``deadline`` (never later than this task's), ``max_attempts``,
        ``timeouts``, ``priority``: as in a submitted ``TaskSpec``.

        A child inherits this task's goal (and so draws on its budget) and data
        sensitivity; it is cancelled if this task is cancelled or fails. If this attempt is
        revoked, the next attempt's identical ``delegate`` gets the same child back (its
        result, if done, is not computed again).
        """
        spec = child_spec(
            title,
            instructions=instructions,
            input=input,
            skills=dict(skills) if skills is not None else None,
            validation=list(validation) if validation is not None else None,
            output_schema=output_schema,
            acceptance=list(acceptance) if acceptance is not None else None,
            constraints=constraints,
            deadline=deadline,
            max_attempts=max_attempts,
            timeouts=timeouts,
            priority=priority,
        )
        (output,) = await self.delegate_all([spec], timeout=timeout)
        assert not isinstance(output, DelegationFailed)  # raised, not returned
        return output

    async def delegate_all(
        self,
        children: Sequence[TaskSpec | str],
        *,
        return_exceptions: bool = False,
        timeout: float | None = None,
    ) -> list[JsonValue | DelegationFailed]:
        """Hand several parts of this task to the group at once; their outputs, in order.

        ``children``: ``TaskSpec`` objects (leave ``id``, ``parent`` and ``goal`` unset:
        the hub sets them) or plain titles. They run in parallel, on whichever participants
        fit. The first child that fails or is cancelled raises ``DelegationFailed`` (the
        others keep running, for a retry of this task), unless ``return_exceptions``: then
        its ``DelegationFailed`` takes its place in the list.
        """
        if self._hub is None:
            raise SDKError(f"task {self.task_id}: no hub to delegate to (not run by an agent)")
        if not children:
            return []
        batch = []
        for child in children:
            self._keys += 1
            batch.append(Child(key=f"d{self._keys}", spec=child_spec(child)))
        ids: list[str] = []
        kept: list[str] = []
        for start in range(0, len(batch), MAX_DELEGATE_BATCH):
            chunk = batch[start : start + MAX_DELEGATE_BATCH]
            reply = await request_children(self._hub, self.task_id, self.attempt, chunk)
            ids += reply.ids
            kept += [i for i, r in zip(reply.ids, reply.reused, strict=True) if r]
        if kept:
            await self.log(f"kept from an earlier attempt: {', '.join(kept)}")
        self._waiting += 1
        try:
            return await wait_children(
                self._hub,
                ids,
                lambda line: self.progress(message=line),
                return_exceptions=return_exceptions,
                timeout=timeout,
            )
        finally:
            self._waiting -= 1

    def __repr__(self) -> str:
        return f"<TaskContext task={self.task_id} attempt={self.attempt}>"
