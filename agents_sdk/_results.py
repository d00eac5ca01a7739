"""``ResultBatch``: the results an agent's attempts finish at the same moment, delivered in
one ``Results`` request and acknowledged by one ``ResultAcks`` reply.

Each attempt's delivery (``Jobs._deliver``) of an agent that may hold several attempts
(capacity above 1) hands its first try to ``take``. Whatever is
handed in before the event loop comes round again goes together: a batch of one, or one
that would not fit in a message, is handed back (``None``) and goes alone as a plain
``Result``; so does every result of a batch that failed as a whole (no responders, a
timeout, a hub that does not serve ``Results``), and every retry. A result the hub refused
on its own raises the ``RequestRefused`` it alone would have got. The hub takes each result
of a batch exactly as if it had come alone (fenced by attempt and session, at most once),
so a batch that timed out after the hub applied it costs nothing but a duplicate.
"""

from __future__ import annotations

import asyncio
import logging

from protocols import (
    MAX_RESULT_BATCH,
    ErrorReply,
    Result,
    ResultAck,
    ResultAcks,
    Results,
    encode,
    subjects,
)

from ._link import HubLink
from .errors import RequestRefused, SDKError

log = logging.getLogger("agents_sdk")

#: The payload limit assumed before the hub said its own (``RegisterAck.max_message_bytes``).
DEFAULT_LIMIT = 1024 * 1024
#: Bytes of a ``Results`` message around its results (type, agent id, brackets).
ENVELOPE = 200

Waiting = tuple[Result, "asyncio.Future[ResultAck | None]"]


class ResultBatch:
    """Collects the results handed in during one turn of the event loop; sends them as
    ``Results`` in chunks that fit ``MAX_RESULT_BATCH`` and the hub's payload limit."""

    def __init__(self, link: HubLink) -> None:
        self._link = link
        self._waiting: list[Waiting] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def take(self, result: Result) -> ResultAck | None:
        """The hub's acknowledgement of ``result`` sent with the others of this moment, or
        ``None``: send it alone. Raises ``RequestRefused`` when the hub refused it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ResultAck | None] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._flush)
        self._waiting.append((result, future))
        return await future

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        if len(waiting) == 1:
            self._alone(waiting)
            return
        limit = (self._link.max_message_bytes or DEFAULT_LIMIT) - ENVELOPE
        chunk: list[Waiting] = []
        size = 0
        for item in waiting:
            one = len(encode(item[0])) + 1  # its share of the batch, with its comma
            if one > limit:
                self._alone([item])  # too big to go with others
                continue
            if chunk and (len(chunk) == MAX_RESULT_BATCH or size + one > limit):
                self._send(chunk)
                chunk, size = [], 0
            chunk.append(item)
            size += one
        if chunk:
            self._send(chunk)

    @staticmethod
    def _alone(items: list[Waiting]) -> None:
        for _, future in items:
            if not future.done():
                future.set_result(None)

    def _send(self, chunk: list[Waiting]) -> None:
        if len(chunk) == 1:
            self._alone(chunk)
            return
        task = asyncio.create_task(self._request(chunk))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _request(self, chunk: list[Waiting]) -> None:
        link = self._link
        try:
            bus = link.bus
            if bus is None:
                raise SDKError("the agent is stopped")
            message = Results(agent_id=link.agent_id, results=[r for r, _ in chunk])
            subject = subjects.hub_results(link.group, link.sender)
            reply = await bus.request(subject, message, ResultAcks, link.request_timeout)
            if len(reply.acks) != len(chunk):
                raise SDKError(f"{len(reply.acks)} acknowledgements for {len(chunk)} results")
            for (_, future), ack in zip(chunk, reply.acks, strict=True):
                if future.done():
                    continue
                if isinstance(ack, ErrorReply):
                    future.set_exception(RequestRefused(ack.code, ack.message))
                else:
                    future.set_result(ack)
        except Exception as exc:  # the batch as a whole: each result goes alone instead
            log.info(
                "a batch of %d results was not taken (%s); sending each alone", len(chunk), exc
            )
        finally:  # unanswered (failed, or cancelled as the agent stops): each goes alone
            self._alone(chunk)
