"""Following one task (or goal) of a group for an A2A stream: the hub's events about it wake
the stream: each becomes a status update, and the final one is read through
``Gateway.call`` (so a stream ends on what a ``GetTask`` would say). The stream ends when
its token is revoked (``Gateway.watch``).

A follower is registered *before* the request that creates the task, so no event is missed
between the submission and the first read."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from protocols import Event

from ..state import Gateway

#: Events queued for one slow stream; past it newer ones are dropped (the final status is
#: read from the hub, so a dropped progress event loses no outcome).
WAKE_QUEUE = 1000


class Follower:
    """The events of some task ids (and goal ids) of one group."""

    def __init__(self, gw: Gateway, group: str, token: str) -> None:
        self.hub = gw.hubs[group]
        self.gw = gw
        self.token = token
        self.ids: set[str] = set()
        self.goals: set[str] = set()
        self.closed = False
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(WAKE_QUEUE)

    def _observe(self, event: Event) -> None:
        if not self._wanted(event):
            return
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(event)

    def _wanted(self, event: Event) -> bool:
        if event.task_id is not None and event.task_id in self.ids:
            return True
        if not self.goals:
            return False
        if event.data.get("goal") in self.goals:
            return True
        rec = self.hub.board.tasks.get(event.task_id or "")
        return rec is not None and rec.spec.goal in self.goals

    def _end(self) -> None:
        self.closed = True
        with contextlib.suppress(asyncio.QueueEmpty):
            while self._queue.full():
                self._queue.get_nowait()
        self._queue.put_nowait(None)

    @contextlib.contextmanager
    def running(self) -> Iterator[Follower]:
        """Observe the hub's events while the block runs."""
        self.hub.observers.append(self._observe)
        try:
            with self.gw.watch(self.token, self._end):
                yield self
        finally:
            self.hub.observers.remove(self._observe)

    async def next(self, timeout: float | None = None) -> Event | None:
        """The next event about the ids, in order; None once the token is revoked;
        ``TimeoutError`` when none comes within ``timeout`` seconds."""
        if self.closed:
            return None
        item = await asyncio.wait_for(self._queue.get(), timeout)
        return None if self.closed else item
