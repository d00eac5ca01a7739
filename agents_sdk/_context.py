"""``TaskContext``: what a handler receives, and how it reports progress.

Progress and log lines go through an *emitter* (an async callable taking a ``Progress``):
the real agent publishes them on NATS, ``agents_sdk.testing`` records them in a list. The
context knows the agent that runs it only as a ``RunningAgent`` (its id, profile and
memory), so this module never imports the ``Agent``: the agent hands itself and its emitter
in, as temporal's worker hands an activity its heartbeat.

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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pydantic import JsonValue

from protocols import AgentProfile, Assignment, Progress, TaskSpec, Usage, Verdict

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

    def __init__(self, assignment: Assignment, agent: RunningAgent, emit: Emitter) -> None:
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

    def __repr__(self) -> str:
        return f"<TaskContext task={self.task_id} attempt={self.attempt}>"
