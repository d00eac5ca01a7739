"""Offers on the bus: each is a publish to the participant's inbox with a reply subject under
one reply subscription, and a timer for the accept timeout (rather than a task awaiting a
request per offer). Answers and failures go back to the board. To an agent that registered
with credit, the assignment is pushed instead: a plain publish, no reply, no timer
(``board.credit`` hears the rest); several pushed to one agent in the same scheduler pass go
in one ``Assignments`` message when it registered with ``batches``.

Hard edges: an answer that names another task, attempt or participant than its offer is
refused (recorded, and the offer counts as unanswered); an answer to an offer that is not
open (unknown, answered already, withdrawn) is refused with a reply when it asked for one;
an inbox nobody listens on (NATS "no responders") ``UNREACHABLE_AFTER`` times in a row gets
its participant marked lost, with a reason that says so, instead of being offered work for
ever."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable

import nats.errors
from nats.aio.client import NO_RESPONDERS_STATUS
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from protocols import (
    MAX_ASSIGNMENT_BATCH,
    Accept,
    Assignment,
    Assignments,
    AttemptOutcome,
    Decline,
    ErrorCode,
    ErrorReply,
    ProtocolError,
    decode,
    encode,
    subjects,
)

from ..board import Board, Offer

#: Offers in a row that found nobody on a participant's inbox before it is marked lost.
UNREACHABLE_AFTER = 3


def answer_mismatch(
    task_id: str, attempt: int, agent_id: str, answer: Accept | Decline
) -> ProtocolError | None:
    """Why ``answer`` does not answer the offer of ``attempt`` of ``task_id`` to
    ``agent_id`` (``forbidden``: from another participant; ``conflict``: another task or
    attempt); None when it does."""
    if answer.agent_id != agent_id:
        return ProtocolError(
            ErrorCode.FORBIDDEN,
            f"the answer names participant {answer.agent_id}; the offer was made to {agent_id}",
        )
    if (answer.task_id, answer.attempt) != (task_id, attempt):
        return ProtocolError(
            ErrorCode.CONFLICT,
            f"the answer names task {answer.task_id} attempt {answer.attempt}; the offer is "
            f"task {task_id} attempt {attempt}",
        )
    return None


class Offers:
    """The offers in flight of one hub."""

    def __init__(
        self,
        board: Board,
        group: str,
        nc: Callable[[], NATS],
        headers: Callable[[str, int], dict[str, str] | None] = lambda _task, _attempt: None,
    ) -> None:
        """``headers``: the NATS headers of an offer of a task's attempt (its traceparent when
        tracing is on, ``runtime.trace``)."""
        self.board = board
        self.group = group
        self.nc = nc
        self.headers = headers
        self.inbox = ""
        """Prefix of the reply subjects (set by ``listen``)."""
        self._pending: dict[str, tuple[Offer, asyncio.TimerHandle]] = {}
        self._seq = 0
        self._unreachable: Counter[str] = Counter()
        """Offers in a row that found nobody on each participant's inbox."""

    async def listen(self) -> None:
        """Subscribe to the replies of every offer."""
        self.inbox = self.nc().new_inbox()
        await self.nc().subscribe(subjects.replies(self.inbox), cb=self.on_reply)

    def clear(self) -> None:
        """Forget the offers in flight (the hub stops)."""
        for _, timer in self._pending.values():
            timer.cancel()
        self._pending.clear()

    async def send_all(self, offers: list[Offer]) -> None:
        """Send what one scheduler pass decided: pushed attempts for an agent that takes
        batches (``Offer.batch``, no trace headers to keep apart) in one ``Assignments`` per
        agent, the rest one by one."""
        batches: dict[str, list[Offer]] = {}
        for offer in offers:
            # once per offer: a traced offer's headers end its span when it is pushed
            headers = self.headers(offer.task.id, offer.attempt)
            if offer.batch and headers is None:
                batches.setdefault(offer.agent_id, []).append(offer)
            else:
                await self.send(offer, headers)
        for agent_id, batch in batches.items():
            for at in range(0, len(batch), MAX_ASSIGNMENT_BATCH):
                chunk = batch[at : at + MAX_ASSIGNMENT_BATCH]
                if len(chunk) == 1:
                    await self.send(chunk[0], None)
                else:
                    await self._push_batch(agent_id, chunk)

    @staticmethod
    def assignment(offer: Offer) -> Assignment:
        """The wire message of ``offer``."""
        rec = offer.task
        return Assignment(
            task_id=rec.id,
            attempt=offer.attempt,
            spec=rec.spec,
            dependency_outputs=offer.dependency_outputs,
            feedback=offer.feedback,
            stall_timeout=offer.stall_timeout,
            run_timeout=offer.run_timeout,
            pushed=offer.pushed,
        )

    async def _push_batch(self, agent_id: str, batch: list[Offer]) -> None:
        """Several pushed attempts to one agent in one message; one the bus cannot carry
        whole goes one by one (each then fits, or fails as too large on its own)."""
        message = Assignments(assignments=[self.assignment(offer) for offer in batch])
        try:
            await self.nc().publish(subjects.agent_inbox(self.group, agent_id), encode(message))
        except nats.errors.MaxPayloadError:
            for offer, assignment in zip(batch, message.assignments, strict=True):
                await self._push(offer, assignment, None)
        except Exception as exc:  # connection trouble: as no reply, push them again
            for offer in batch:
                self._push_failed(offer, exc)

    async def send(self, offer: Offer, headers: dict[str, str] | None) -> None:
        """Send an offer as a request whose answer comes to ``on_reply`` (one reply
        subscription and a timer, rather than a task awaiting each offer); a pushed
        assignment (credit) as a plain publish: nothing to wait for. ``headers``: the
        offer's, from ``self.headers``."""
        assignment = self.assignment(offer)
        if offer.pushed:
            await self._push(offer, assignment, headers)
            return
        self._seq += 1
        token = str(self._seq)
        timer = asyncio.get_running_loop().call_later(offer.accept_timeout, self._unanswered, token)
        self._pending[token] = (offer, timer)
        inbox = subjects.agent_inbox(self.group, offer.agent_id)
        try:
            await self.nc().publish(
                inbox,
                encode(assignment),
                reply=subjects.reply_to(self.inbox, token),
                headers=headers,
            )
        except nats.errors.MaxPayloadError as exc:  # can never be sent: fail, do not cycle
            if self._pending.pop(token, None) is not None:
                timer.cancel()
                self._too_large(offer, exc)
        except Exception as exc:  # connection trouble: treat as no reply, re-offer
            if self._pending.pop(token, None) is not None:
                timer.cancel()
                self._refuse(offer, "no_reply", f"offer failed: {type(exc).__name__}: {exc}")

    async def _push(
        self, offer: Offer, assignment: Assignment, headers: dict[str, str] | None
    ) -> None:
        """Publish a pushed assignment; the board hears back through a decline, the agent's
        heartbeats, progress and result, or their absence (``board.credit``)."""
        try:
            await self.nc().publish(
                subjects.agent_inbox(self.group, offer.agent_id),
                encode(assignment),
                headers=headers,
            )
        except nats.errors.MaxPayloadError as exc:  # can never be sent: fail, do not cycle
            self._too_large(offer, exc)
        except Exception as exc:  # connection trouble: as no reply, push it again
            self._push_failed(offer, exc)

    def _push_failed(self, offer: Offer, exc: Exception) -> None:
        self._refuse(offer, "no_reply", f"push failed: {type(exc).__name__}: {exc}")

    def _too_large(self, offer: Offer, exc: Exception) -> None:
        """An assignment the bus can never carry: the task fails rather than cycle."""
        self.board.offer_undeliverable(
            offer.task.id,
            offer.attempt,
            offer.agent_id,
            f"the assignment is too large for the bus ({exc}); its input or its "
            "dependencies' outputs must be smaller",
        )

    def _refuse(self, offer: Offer, outcome: AttemptOutcome, reason: str) -> None:
        self.board.offer_refused(offer.task.id, offer.attempt, offer.agent_id, outcome, reason)

    def _unanswered(self, token: str) -> None:
        entry = self._pending.pop(token, None)
        if entry is not None:
            offer = entry[0]
            self._refuse(offer, "no_reply", f"no answer within {offer.accept_timeout:g}s")

    async def on_reply(self, msg: Msg) -> None:
        entry = self._pending.pop(subjects.reply_token(msg.subject), None)
        no_responders = bool(msg.headers and msg.headers.get("Status") == NO_RESPONDERS_STATUS)
        if entry is None:  # answered already, or too late: the offer was withdrawn
            if not no_responders:
                await self._not_open(msg)
            return
        offer, timer = entry
        timer.cancel()
        inbox = subjects.agent_inbox(self.group, offer.agent_id)
        if no_responders:
            self._nobody_listens(offer, inbox)
            return
        self._unreachable.pop(offer.agent_id, None)
        rec = offer.task
        try:
            answer = decode(msg.data, Accept, Decline, ErrorReply)
            if isinstance(answer, Accept | Decline):
                wrong = answer_mismatch(rec.id, offer.attempt, offer.agent_id, answer)
                if wrong is not None:
                    raise wrong
        except ProtocolError as exc:
            self.board.refused(inbox, exc, offer.agent_id)
            self._refuse(offer, "no_reply", f"bad answer: {exc.message}")
            await self._answer_back(msg, exc)
            return
        if isinstance(answer, Accept):
            self.board.offer_accepted(rec.id, offer.attempt, offer.agent_id)
        elif isinstance(answer, Decline):
            self._refuse(offer, "declined", answer.reason or "declined")
        elif isinstance(answer, ErrorReply):
            self._refuse(offer, "declined", f"{answer.code.value}: {answer.message}")

    def _nobody_listens(self, offer: Offer, inbox: str) -> None:
        """No responders on the participant's inbox: the offer is unanswered; after
        ``UNREACHABLE_AFTER`` in a row the participant is unreachable (it would be offered
        work for ever otherwise): lost, and kept out until it registers again (heartbeats
        alone do not bring it back)."""
        self._refuse(offer, "no_reply", "nobody listens on the agent's inbox")
        agent_id = offer.agent_id
        self._unreachable[agent_id] += 1
        if self._unreachable[agent_id] >= UNREACHABLE_AFTER:
            tries = self._unreachable.pop(agent_id)
            self.board.agent_unreachable(
                agent_id,
                f"its inbox {inbox} is unreachable: nobody listened there for {tries} "
                "offer(s) in a row (is it subscribed, and may its token subscribe there?); "
                "it gets work again once it registers again",
            )

    async def _not_open(self, msg: Msg) -> None:
        """An answer to an offer that is not open: recorded, and refused to its sender when
        it asked for a reply."""
        exc = ProtocolError(
            ErrorCode.CONFLICT,
            "this answers an offer that is not open (unknown, answered already, or withdrawn)",
        )
        self.board.refused(msg.subject, exc, None)
        await self._answer_back(msg, exc)

    async def _answer_back(self, msg: Msg, exc: ProtocolError) -> None:
        if msg.reply:
            with contextlib.suppress(Exception):
                await self.nc().publish(
                    msg.reply, encode(ErrorReply(code=exc.code, message=exc.message))
                )
