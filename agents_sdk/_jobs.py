"""Bookkeeping of the attempts an agent holds, and building their results."""

from __future__ import annotations

import asyncio
import re
import secrets

from protocols import Assignment, Result, TaskRef, encode

from ._context import TaskContext
from ._handlers import Handler, Outcome

#: Longest error text a ``Result`` may carry.
MAX_ERROR = 100_000

#: ``(task_id, attempt)``
Key = tuple[str, int]


def make_id(name: str) -> str:
    """``slug(name)-<6 hex>``: a fresh, valid agent id."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")[:57] or "agent"
    return f"{slug}-{secrets.token_hex(3)}"


class Job:
    """One attempt an agent holds, from accept until its result is acknowledged."""

    def __init__(self, assignment: Assignment, ctx: TaskContext, handler: Handler) -> None:
        self.key: Key = (assignment.task_id, assignment.attempt)
        self.ctx = ctx
        self.handler = handler
        self.task: asyncio.Task[None] | None = None
        self.in_handler = True
        """False once the handler returned (the result is being delivered)."""

    @property
    def ref(self) -> TaskRef:
        return TaskRef(task_id=self.key[0], attempt=self.key[1])


def build_result(
    job: Job, outcome: Outcome, duration: float, session: str, max_bytes: int | None
) -> Result:
    """The ``Result`` for an outcome; a failure when it would exceed the hub's size limit."""
    task_id, attempt = job.key
    error = outcome.error[:MAX_ERROR] if outcome.error is not None else None
    result = Result(
        task_id=task_id,
        attempt=attempt,
        agent_id=job.ctx.agent.id,
        session=session,
        ok=outcome.ok,
        output=outcome.output,
        error=error,
        duration=max(0.0, duration),
        usage=job.ctx.usage,
    )
    size = len(encode(result))
    if max_bytes is not None and size > max_bytes:
        text = f"OutputError: the result is {size} bytes, over the hub's limit of {max_bytes}"
        result = result.model_copy(update={"ok": False, "output": None, "error": text})
    return result
