"""Offers on the bus: each is a publish to the participant's inbox with a reply subject under
one reply subscription, and a timer for the accept timeout (rather than a task awaiting a
request per offer). Answers and failures go back to the board."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import nats.errors
from nats.aio.client import NO_RESPONDERS_STATUS
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from protocols import (
    Accept,
    Assignment,
    AttemptOutcome,
    Decline,
    ErrorReply,
    ProtocolError,
    decode,
    encode,
    subjects,
)

from ..board import Board, Offer


class Offers:
    """The offers in flight of one hub."""

    def __init__(self, board: Board, group: str, nc: Callable[[], NATS]) -> None:
        self.board = board
        self.group = group
        self.nc = nc
        self.inbox = ""
        """Prefix of the reply subjects (set by ``listen``)."""
        self._pending: dict[str, tuple[Offer, asyncio.TimerHandle]] = {}
        self._seq = 0

    async def listen(self) -> None:
        """Subscribe to the replies of every offer."""
        self.inbox = self.nc().new_inbox()
        await self.nc().subscribe(subjects.replies(self.inbox), cb=self.on_reply)

    def clear(self) -> None:
        """Forget the offers in flight (the hub stops)."""
        for _, timer in self._pending.values():
            timer.cancel()
        self._pending.clear()

    async def send(self, offer: Offer) -> None:
        """Send an offer as a request whose answer comes to ``on_reply`` (one reply
        subscription and a timer, rather than a task awaiting each offer)."""
        rec = offer.task
        assignment = Assignment(
            task_id=rec.id,
            attempt=offer.attempt,
            spec=rec.spec,
            dependency_outputs=offer.dependency_outputs,
            feedback=offer.feedback,
            stall_timeout=offer.stall_timeout,
            run_timeout=offer.run_timeout,
        )
        self._seq += 1
        token = str(self._seq)
        timer = asyncio.get_running_loop().call_later(offer.accept_timeout, self._unanswered, token)
        self._pending[token] = (offer, timer)
        inbox = subjects.agent_inbox(self.group, offer.agent_id)
        try:
            await self.nc().publish(
                inbox, encode(assignment), reply=subjects.reply_to(self.inbox, token)
            )
        except nats.errors.MaxPayloadError as exc:  # can never be sent: fail, do not cycle
            if self._pending.pop(token, None) is not None:
                timer.cancel()
                self.board.offer_undeliverable(
                    rec.id,
                    offer.attempt,
                    offer.agent_id,
                    f"the assignment is too large for the bus ({exc}); its input or its "
                    "dependencies' outputs must be smaller",
                )
        except Exception as exc:  # connection trouble: treat as no reply, re-offer
            if self._pending.pop(token, None) is not None:
                timer.cancel()
                self._refuse(offer, "no_reply", f"offer failed: {type(exc).__name__}: {exc}")

    def _refuse(self, offer: Offer, outcome: AttemptOutcome, reason: str) -> None:
        self.board.offer_refused(offer.task.id, offer.attempt, offer.agent_id, outcome, reason)

    def _unanswered(self, token: str) -> None:
        entry = self._pending.pop(token, None)
        if entry is not None:
            offer = entry[0]
            self._refuse(offer, "no_reply", f"no answer within {offer.accept_timeout:g}s")

    async def on_reply(self, msg: Msg) -> None:
        entry = self._pending.pop(subjects.reply_token(msg.subject), None)
        if entry is None:
            return  # answered already, or too late: the offer was withdrawn
        offer, timer = entry
        timer.cancel()
        if msg.headers and msg.headers.get("Status") == NO_RESPONDERS_STATUS:
            self._refuse(offer, "no_reply", "nobody listens on the agent's inbox")
            return
        rec = offer.task
        try:
            answer = decode(msg.data, Accept, Decline, ErrorReply)
        except ProtocolError as exc:
            self.board.refused(
                subjects.agent_inbox(self.group, offer.agent_id), exc, offer.agent_id
            )
            self._refuse(offer, "no_reply", f"bad answer: {exc.message}")
            return
        if isinstance(answer, Accept):
            self.board.offer_accepted(rec.id, offer.attempt, offer.agent_id)
        elif isinstance(answer, Decline):
            self._refuse(offer, "declined", answer.reason or "declined")
        elif isinstance(answer, ErrorReply):
            self._refuse(offer, "declined", f"{answer.code.value}: {answer.message}")
