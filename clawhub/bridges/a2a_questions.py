"""``Questions``: how the A2A bridge asks the group when a remote agent needs input.

A remote task in ``TASK_STATE_INPUT_REQUIRED`` becomes a line in the group chat about the
task (a ``chat.message`` from the bridged participant); the first chat line about that task
from anyone else is the answer, which the bridge sends as the next message of the same A2A
task. While it waits, the attempt is kept alive with progress lines: waiting for a person is
not a stall. ``Questions`` owns a ``HubClient`` (the bridge's own credential) that posts the
questions and listens to the chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from agents_sdk import HubClient, SDKError, TaskContext
from protocols import Event

from .a2a_mapping import RemoteTaskError

log = logging.getLogger("clawhub.bridges.a2a")


class Questions:
    """The questions of one bridged participant, waiting for answers in the chat."""

    def __init__(self, client: HubClient, agent_id: str, input_timeout: float) -> None:
        self.client = client
        self.agent_id = agent_id
        self.input_timeout = input_timeout
        self._waiting: dict[str, asyncio.Queue[tuple[str, str]]] = {}
        self._listening: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect and listen to the chat."""
        await self.client.connect()
        self._listening = asyncio.create_task(self._listen(), name=f"a2a-chat-{self.agent_id}")

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listening
        await self.client.close()

    async def ask(self, ctx: TaskContext, question: str) -> tuple[str, str]:
        """Post ``question`` about the task; ``(who answered, the answer)`` once someone
        does. ``RemoteTaskError`` after ``input_timeout`` seconds without one."""
        answers: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._waiting[ctx.task_id] = answers
        try:
            text = (
                f"{question}\n(task {ctx.task_id}: answer with "
                f'`clawhub chat --task {ctx.task_id} "..."`)'
            )
            try:
                await self.client.chat(self.agent_id, text[:10_000], task_id=ctx.task_id)
            except SDKError as exc:
                log.warning("posting the question of %s failed: %s", ctx.task_id, exc)
            await ctx.progress(message=f"a2a input required: {question}")
            keepalive = max(0.5, min(ctx.stall_timeout / 3, 30.0))
            waited = 0.0
            while True:
                try:
                    sender, answer = await asyncio.wait_for(answers.get(), keepalive)
                except TimeoutError:
                    waited += keepalive
                    if waited >= self.input_timeout:
                        raise RemoteTaskError(
                            f"no answer to the A2A agent's question within "
                            f"{self.input_timeout:g}s: {question}"
                        ) from None
                    await ctx.progress(message=f"a2a input required (waiting): {question}")
                    continue
                await ctx.progress(message=f"a2a answer from {sender} sent to the agent")
                return sender, answer
        finally:
            self._waiting.pop(ctx.task_id, None)

    async def _listen(self) -> None:
        async for event in self.client.events(["chat.message"]):
            self.hear(event)

    def hear(self, event: Event) -> None:
        """Hand a chat line about a task that waits for an answer to that task."""
        answers = self._waiting.get(event.task_id or "")
        if answers is not None and event.agent_id != self.agent_id and event.message:
            answers.put_nowait((event.agent_id or "someone", event.message))
