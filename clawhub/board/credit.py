"""Credit: assignments pushed to an agent that registered with ``Register.credit``, like an
AMQP prefetch or a JetStream pull consumer. No I/O.

A pushed attempt is assigned and running at once (``Matcher.assign``): there is no accept
to wait for. What an offer's answer would have said comes another way:

* the agent cannot take it (no handler, stopping, over capacity by a race): it publishes
  ``Decline`` on ``hub_decline``, and the attempt ends ``declined`` as a declined offer does;
* the agent never shows it runs it (lists it in a heartbeat, or sends progress or a
  result) within the accept timeout plus one heartbeat interval: the attempt ends
  ``no_reply`` as an unanswered offer does (``TaskRecord.unconfirmed``); after
  ``UNCONFIRMED_AFTER`` such attempts in a row the agent is unreachable, like an inbox
  nobody listens on.

After a restart or takeover the store says which attempts run, not whether a pushed one
reached its holder: each running attempt must be named again the same way, or it is
revoked (``recovery``).
"""

from __future__ import annotations

from protocols import Decline, ErrorCode, ProtocolError

from .attempts import Attempts
from .participants import Participants
from .records import TaskRecord
from .state import GroupState

#: Pushed attempts in a row an agent never confirmed before it is judged unreachable.
UNCONFIRMED_AFTER = 3


class Credit:
    """Declines and confirmations of pushed attempts."""

    def __init__(self, state: GroupState, attempts: Attempts, participants: Participants) -> None:
        self.state = state
        self.attempts = attempts
        self.participants = participants

    def decline(self, msg: Decline) -> None:
        """A credit agent cannot take an attempt pushed to it: the next candidate gets it.
        A decline of an attempt that ended meanwhile (withdrawn, cancelled) changes
        nothing; one that names an attempt its sender never held, or an offer (answered by
        its reply, not here), is refused."""
        rec = self.state.current(msg.task_id, msg.attempt, msg.agent_id)
        if rec is None:
            known = self.state.tasks.get(msg.task_id)
            if known is None:
                raise ProtocolError(ErrorCode.UNKNOWN_TASK, f"no task {msg.task_id}")
            past = next((h for h in known.history if h.attempt == msg.attempt), None)
            if past is not None and past.agent_id == msg.agent_id:
                return  # it ended while the decline travelled: nothing left to give back
            raise self.attempts.not_current(known, msg.attempt, msg.agent_id)
        if not rec.pushed:
            raise ProtocolError(
                ErrorCode.CONFLICT,
                f"attempt {msg.attempt} of task {msg.task_id} was offered, not pushed: "
                "decline it in the reply to its offer",
            )
        self.attempts.offer_refused(
            rec.id, rec.attempt, msg.agent_id, "declined", msg.reason or "declined"
        )

    def sweep(self, now: float) -> None:
        """Pushed attempts nobody confirmed in time go back, as unanswered offers do."""
        for rec in [r for r in self.state.active.values() if 0.0 < r.unconfirmed < now]:
            self.unconfirmed(rec)

    def unconfirmed(self, rec: TaskRecord) -> None:
        """``rec``'s pushed attempt was never confirmed: ``no_reply``, the next candidate.
        A running attempt the hub found in the store after a restart (``recovery``), that
        its holder never named since: revoked (not a failure), it goes out again."""
        if not rec.pushed:
            self.attempts.revoke(
                rec,
                "revoked",
                "not seen running since the hub restarted (its holder's heartbeats do not "
                "list it: pushed, maybe, and lost with the old hub)",
            )
            return
        agent = self.state.agents.get(rec.assigned_to or "")
        waited = rec.unconfirmed - rec.started
        self.attempts.offer_refused(
            rec.id,
            rec.attempt,
            rec.assigned_to or "",
            "no_reply",
            f"pushed, and not seen running within {waited:.1f}s (no heartbeat, progress or "
            "result listed it)",
        )
        if agent is None:
            return
        agent.unconfirmed_pushes += 1
        if agent.unconfirmed_pushes >= UNCONFIRMED_AFTER:
            tries, agent.unconfirmed_pushes = agent.unconfirmed_pushes, 0
            self.participants.unreachable(
                agent.id,
                f"{tries} attempts pushed to it in a row were never seen running (does it "
                "listen on its inbox?); it gets work again once it registers again",
            )
