"""Handler registration, selection and invocation.

Shared by the real agent and ``agents_sdk.testing`` so both behave the same; what a run
produced is judged in ``_outcome``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocols import TaskSpec

from ._context import TaskContext

#: A task handler: ``(ctx) -> output``, sync or async. The output must be JSON data.
HandlerFunc = Callable[[TaskContext], Any]


@dataclass(frozen=True)
class Handler:
    """A registered handler."""

    func: HandlerFunc
    skill: str | None
    is_async: bool

    @property
    def name(self) -> str:
        return getattr(self.func, "__qualname__", repr(self.func))


class HandlerRegistry:
    """The handlers of one agent: one default and any number of skill-specific ones."""

    def __init__(self) -> None:
        self.default: Handler | None = None
        self.by_skill: list[Handler] = []

    def add(self, func: HandlerFunc, skill: str | None = None) -> Handler:
        if not callable(func):
            raise TypeError(f"handler must be callable, got {func!r}")
        entry = Handler(func=func, skill=skill.lower() if skill else None, is_async=_is_async(func))
        if entry.skill is None:
            if self.default is not None:
                raise ValueError(f"a default handler is already set: {self.default.name}")
            self.default = entry
        else:
            if any(h.skill == entry.skill for h in self.by_skill):
                raise ValueError(f"a handler for skill {entry.skill!r} is already set")
            self.by_skill.append(entry)
        return entry

    def select(self, spec: TaskSpec) -> Handler | None:
        """The first skill handler whose skill the task requires, else the default."""
        for entry in self.by_skill:
            if entry.skill in spec.skills:
                return entry
        return self.default

    def __bool__(self) -> bool:
        return self.default is not None or bool(self.by_skill)


def _is_async(func: HandlerFunc) -> bool:
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(func, "__call__", None)  # noqa: B004 - async __call__ on an instance
    return call is not None and inspect.iscoroutinefunction(call)


async def invoke(entry: Handler, ctx: TaskContext) -> object:
    """Run a handler: async ones in the current task, sync ones in a worker thread."""
    if entry.is_async:
        result: object = await entry.func(ctx)
    else:
        thread = asyncio.ensure_future(asyncio.to_thread(entry.func, ctx))
        try:
            result = await asyncio.shield(thread)
        except asyncio.CancelledError:
            # a thread cannot be stopped: the attempt keeps its slot until the handler
            # returns (``ctx.cancelled`` tells it to hurry), so capacity is never exceeded;
            # a second cancel (the hub repeats its Cancel at each heartbeat) must not end
            # the wait early, or the slot would be freed while the thread still runs
            while not thread.done():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.shield(thread)
            raise
        if inspect.isawaitable(result):
            result = await result
    return result
