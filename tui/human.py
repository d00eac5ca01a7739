"""The human participant: an ``agents_sdk.Agent`` of kind ``human`` whose work is done by a
person at the keyboard.

Each task offered to the human is accepted (up to ``capacity`` at once) and parked as a
``WorkItem``; the handler then waits until the human submits a result (``complete``) or
gives up (``give_up``, counted as a failed attempt). Handing a task back without a failure
is a ``reassign`` through the hub (``GroupSession.hand_back``): the hub revokes the attempt,
the SDK cancels the handler, and the item disappears. The hub never judges a human's
attempt stalled, so no progress needs to be sent while the person thinks.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

from pydantic import JsonValue

from agents_sdk import Agent, TaskContext
from protocols import Device

from .errors import HumanGaveUp
from .model import WorkItem

__all__ = ["HumanParticipant", "human_id"]


def human_id(name: str) -> str:
    """A stable participant id from a display name: ``"Ann Lee"`` → ``ann-lee``."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")[:64]
    return slug or "human"


class HumanParticipant:
    """A person in the group: registers as ``kind="human"`` and parks offered tasks."""

    def __init__(
        self,
        name: str,
        *,
        skills: dict[str, float] | None = None,
        capacity: int = 3,
        id: str | None = None,
        group: str = "default",
        device: Device = "laptop",
        labels: list[str] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.agent = Agent(
            name,
            kind="human",
            skills=skills,
            capacity=capacity,
            id=id or human_id(name),
            group=group,
            device=device,
            labels=labels,
        )
        self.items: dict[str, WorkItem] = {}
        """Work items by task id (at most one attempt per task is held at a time)."""
        self.on_change = on_change
        self._waiting: dict[str, asyncio.Future[JsonValue]] = {}
        self.agent.handler(self._handle)

    @property
    def id(self) -> str:
        """The participant id."""
        return self.agent.id

    @property
    def name(self) -> str:
        """The display name."""
        return self.agent.name

    async def start(self, url: str, *, timeout: float | None = None) -> None:
        """Connect and register (see ``Agent.start``)."""
        await self.agent.start(url, timeout=timeout)

    async def stop(self, *, timeout: float = 10.0) -> None:
        """Leave the group; unfinished items go back to the hub (it reassigns them).
        ``timeout`` bounds the delivery of results already written (see ``Agent.stop``)."""
        await self.agent.stop(timeout=timeout, reason="left the TUI")

    def complete(self, task_id: str, output: JsonValue) -> None:
        """Submit the result of a work item; ``KeyError`` if there is no such item."""
        future = self._waiting[task_id]
        if not future.done():
            future.set_result(output)

    def give_up(self, task_id: str, reason: str) -> None:
        """Fail the attempt (counted against the task's ``max_attempts``)."""
        future = self._waiting[task_id]
        if not future.done():
            future.set_exception(HumanGaveUp(reason or "given up by a human"))

    async def _handle(self, ctx: TaskContext) -> JsonValue:
        future: asyncio.Future[JsonValue] = asyncio.get_running_loop().create_future()
        self.items[ctx.task_id] = WorkItem(
            task_id=ctx.task_id,
            attempt=ctx.attempt,
            spec=ctx.spec,
            received=time.time(),
            dependency_outputs=dict(ctx.dependency_outputs),
            feedback=list(ctx.assignment.feedback),
        )
        self._waiting[ctx.task_id] = future
        self._changed()
        try:
            return await future
        finally:
            item = self.items.get(ctx.task_id)
            if item is not None and item.attempt == ctx.attempt:
                del self.items[ctx.task_id]
                del self._waiting[ctx.task_id]
            self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()
