"""The powers of humans: decide on a result, reassign, claim, pause/resume/drain, and the
group's shared chat. An agent that asks for a human's power is refused (``forbidden``); a
request with no participant behind it (an admin's client) is allowed. No I/O.
"""

from __future__ import annotations

from protocols import (
    ClaimTask,
    DecideTask,
    ErrorCode,
    PostChat,
    ProtocolError,
    ReassignTask,
    SetAgentMode,
    TaskState,
)

from .attempts import Attempts
from .lifecycle import HELD
from .offers import Matcher
from .records import AgentRecord, TaskRecord
from .sink import Sink
from .state import GroupState, Journal
from .validation import Validation, make_verdict

S = TaskState


def require_human(agents: dict[str, AgentRecord], who: str | None, what: str) -> None:
    """Refuse ``what`` when ``who`` is a known agent (humans and admins may)."""
    agent = agents.get(who) if who else None
    if agent is not None and agent.profile.kind != "human":
        raise ProtocolError(
            ErrorCode.FORBIDDEN, f"{who} is an agent; only humans and admins {what}"
        )


class Humans:
    """What humans (and admins) may do to tasks and participants."""

    def __init__(
        self,
        state: GroupState,
        journal: Journal,
        sink: Sink,
        attempts: Attempts,
        validation: Validation,
        matcher: Matcher,
    ) -> None:
        self.state = state
        self.journal = journal
        self.sink = sink
        self.attempts = attempts
        self.validation = validation
        self.matcher = matcher

    def check_human(self, who: str | None, what: str) -> None:
        """Refuse ``what`` when ``who`` is a known agent."""
        require_human(self.state.agents, who, what)

    def decide(self, msg: DecideTask) -> TaskRecord:
        """A human approves or rejects a result waiting in ``needs_human``."""
        rec = self.state.task(msg.task_id)
        self.check_human(msg.by, "decide on results")
        if rec.state is not S.NEEDS_HUMAN:
            raise ProtocolError(
                ErrorCode.CONFLICT,
                f"task {rec.id} is {rec.state.value}, not waiting for a human decision",
            )
        verdict = make_verdict(rec, "human", msg.by, msg.accept, msg.reason)
        if self.validation.record(rec, verdict):
            self.state.move(rec, S.VALIDATING)
            self.validation.advance(rec)
        return rec

    def reassign(self, msg: ReassignTask) -> TaskRecord:
        """Take a task back from its holder (no failure counted) and offer it again."""
        rec = self.state.task(msg.task_id)
        self.check_human(msg.by, "reassign tasks")
        if rec.state.terminal or rec.state in (S.VALIDATING, S.NEEDS_HUMAN):
            raise ProtocolError(
                ErrorCode.CONFLICT, f"task {rec.id} is {rec.state.value}: nothing to reassign"
            )
        target = self._target(rec, msg.to) if msg.to else None
        who = msg.by or "a client"
        reason = f"reassigned by {who}" + (f": {msg.reason}" if msg.reason else "")
        holder = rec.assigned_to
        if rec.state in HELD:
            self.attempts.end_attempt(rec, "revoked", reason, notify=True)
            if holder and target is None:
                rec.excluded.add(holder)
            self.state.move(rec, S.READY)
        rec.pinned = target.id if target else None
        rec.declined.clear()
        rec.not_before = 0.0
        self.journal.emit(
            "task.reassigned",
            task=rec,
            agent_id=holder,
            message=reason + (f" (to {target.id})" if target else ""),
            data={"to": target.id if target else None, "by": msg.by},
        )
        self.journal.save(rec)
        self.sink.wake()
        return rec

    def _target(self, rec: TaskRecord, agent_id: str) -> AgentRecord:
        agent = self.state.agents.get(agent_id)
        if agent is None or agent.state != "online":
            raise ProtocolError(ErrorCode.UNKNOWN_AGENT, f"no online participant {agent_id}")
        why = self.matcher.qualifies(rec, agent)
        if why is not None:
            raise ProtocolError(ErrorCode.CONFLICT, f"{agent_id} cannot take {rec.id}: {why}")
        return agent

    def claim(self, msg: ClaimTask) -> TaskRecord:
        """A participant (a human, usually) takes a ready task: it is offered to them next."""
        rec = self.state.task(msg.task_id)
        if rec.state is not S.READY:
            holder = f" (held by {rec.assigned_to})" if rec.assigned_to else ""
            raise ProtocolError(
                ErrorCode.CONFLICT, f"task {rec.id} is {rec.state.value}{holder}, not ready"
            )
        agent = self._target(rec, msg.agent_id)
        rec.pinned = agent.id
        rec.declined.discard(agent.id)
        rec.not_before = 0.0
        self.journal.emit(
            "task.claimed", task=rec, agent_id=agent.id, message=f"claimed by {agent.id}"
        )
        self.journal.save(rec)
        self.sink.wake()
        return rec

    def set_mode(self, msg: SetAgentMode) -> AgentRecord:
        """Pause, resume or drain a participant."""
        agent = self.state.agents.get(msg.agent_id)
        if agent is None:
            raise ProtocolError(ErrorCode.UNKNOWN_AGENT, f"unknown agent {msg.agent_id}")
        if msg.by != msg.agent_id:
            self.check_human(msg.by, "pause or drain others")
        agent.mode = msg.mode
        self.journal.save_agent(agent)
        self.journal.emit(
            "agent.mode",
            agent_id=agent.id,
            message=f"{msg.mode}" + (f": {msg.reason}" if msg.reason else ""),
            data={"mode": msg.mode, "by": msg.by},
        )
        if msg.mode == "draining" and not agent.held:
            self.journal.emit("agent.drained", agent_id=agent.id, message="drained: holds nothing")
        self.sink.wake()
        return agent

    def chat(self, msg: PostChat) -> None:
        """A line in the group's shared channel (kept in the event log)."""
        self.journal.emit(
            "chat.message", agent_id=msg.sender, task_id=msg.task_id, message=msg.text
        )
