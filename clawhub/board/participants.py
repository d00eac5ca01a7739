"""Participants joining, beating and leaving: register (and re-register after a reconnect),
heartbeat, deregister, and lost (missed beats or a closed connection). No I/O."""

from __future__ import annotations

import time

from protocols import (
    Cancel,
    Deregister,
    ErrorCode,
    Heartbeat,
    ProtocolError,
    Register,
    RegisterAck,
    TaskRef,
    TaskState,
)

from ..settings import HubSettings
from .attempts import Attempts
from .records import AgentRecord
from .sink import Sink
from .state import GroupState, Journal

S = TaskState


class Participants:
    """Who is in the group and whether they are alive."""

    def __init__(
        self,
        state: GroupState,
        journal: Journal,
        settings: HubSettings,
        sink: Sink,
        attempts: Attempts,
        hub_id: str,
    ) -> None:
        self.state = state
        self.journal = journal
        self.settings = settings
        self.sink = sink
        self.attempts = attempts
        self.hub_id = hub_id

    def lost_after(self) -> float:
        """Seconds of silence after which a participant is lost."""
        return self.settings.heartbeat_interval * self.settings.missed_beats

    def register(self, msg: Register, credential: str | None = None) -> RegisterAck:
        """A participant joins, or re-joins after a reconnect; ``credential``: the token id
        the bus vouches sent it (None when the hub runs without identity)."""
        state = self.state
        profile = msg.profile
        now = time.monotonic()
        old = state.agents.get(profile.id)
        if (
            old is not None
            and old.state == "online"
            and old.session != msg.session
            and old.heard
            and now - old.last_beat <= self.lost_after()
        ):
            raise ProtocolError(
                ErrorCode.WRONG_SESSION,
                f"agent id {profile.id} is held by another live session; pick another id or "
                f"wait {self.lost_after():.0f}s for it to be declared lost",
            )
        if old is not None and old.session != msg.session:
            for task_id in list(old.held):
                self.attempts.revoke(state.tasks[task_id], "lost", "agent restarted (new session)")
        agent = old or AgentRecord(profile=profile, session=msg.session)
        rejoin = old is not None and old.session == msg.session
        agent.profile = profile
        agent.session = msg.session
        agent.state = "online"
        agent.last_beat = now
        agent.last_seen = time.time()
        agent.heard = True
        agent.unreachable = False
        agent.credential = credential
        agent.credit = msg.credit
        agent.batches = msg.credit and msg.batches
        agent.unconfirmed_pushes = 0
        revoked: list[TaskRef] = []
        for ref in msg.running:
            rec = state.current(ref.task_id, ref.attempt, profile.id)
            if rec is None:
                revoked.append(ref)
            else:
                agent.held[rec.id] = rec.attempt
                rec.last_progress = now
                rec.unconfirmed = 0.0
        state.agents[profile.id] = agent
        state.index.add(profile)
        self.journal.save_agent(agent)
        self.journal.emit(
            "agent.rejoined" if rejoin else "agent.registered",
            agent_id=profile.id,
            message=f"{profile.name} ({profile.kind}, {profile.model or 'plain code'}, "
            f"{profile.device})",
            data={"skills": dict(profile.skills), "capacity": profile.capacity},
        )
        self.sink.wake()
        return RegisterAck(
            agent_id=profile.id,
            hub_id=self.hub_id,
            heartbeat_interval=self.settings.heartbeat_interval,
            missed_beats=self.settings.missed_beats,
            max_message_bytes=self.settings.max_message_bytes,
            revoked=revoked,
        )

    def heartbeat(self, msg: Heartbeat) -> None:
        """A heartbeat: the participant is alive; cancel attempts it runs but no longer holds."""
        agent = self.state.agents.get(msg.agent_id)
        if agent is None or agent.state == "left":
            raise ProtocolError(ErrorCode.UNKNOWN_AGENT, f"unknown agent {msg.agent_id}")
        if agent.session != msg.session:
            raise ProtocolError(
                ErrorCode.WRONG_SESSION, f"heartbeat from a stale session of {msg.agent_id}"
            )
        agent.last_beat = time.monotonic()
        agent.last_seen = time.time()
        agent.heard = True
        if agent.unreachable:
            return  # alive, but offers cannot reach it: it must register again
        if agent.state != "online":
            agent.state = "online"
            self.state.index.add(agent.profile)
            self.journal.save_agent(agent)
            self.journal.emit("agent.back", agent_id=agent.id, message="heart-beating again")
            self.sink.wake()
        for ref in msg.running:
            held = self.state.current(ref.task_id, ref.attempt, agent.id)
            if held is not None and held.unconfirmed:  # a pushed attempt: it runs it
                held.unconfirmed = 0.0
                agent.unconfirmed_pushes = 0
            if held is not None and held.state is S.ASSIGNED and held.id in self.state.held_over:
                self.attempts.start(held)  # it accepted before the old hub could record it
            elif held is None and not self.attempts.claim(agent, ref.task_id, ref.attempt):
                self.sink.send_cancel(
                    agent.id,
                    Cancel(
                        task_id=ref.task_id,
                        attempt=ref.attempt,
                        reason="this attempt is no longer yours",
                        ts=time.time(),
                    ),
                )

    def deregister(self, msg: Deregister) -> None:
        """A participant leaves on purpose; what it held goes back to ready."""
        agent = self.state.agents.get(msg.agent_id)
        if agent is None:
            raise ProtocolError(ErrorCode.UNKNOWN_AGENT, f"unknown agent {msg.agent_id}")
        if agent.session != msg.session:
            raise ProtocolError(ErrorCode.WRONG_SESSION, f"stale session of {msg.agent_id}")
        if agent.state == "left":
            return  # said already (a retried goodbye)
        for task_id in list(agent.held):
            self.attempts.revoke(
                self.state.tasks[task_id], "revoked", f"agent left: {msg.reason or 'stopped'}"
            )
        agent.state = "left"
        self.state.index.remove(agent.id)
        self.journal.save_agent(agent)
        self.journal.emit("agent.left", agent_id=agent.id, message=msg.reason)

    def lost(self, agent_id: str, reason: str) -> None:
        """A participant is gone (missed beats, closed connection): revoke all it held. A
        person is *away*, not lost: leaving is not a crash, so their reliability stays and
        what they held goes back to ready uncounted."""
        agent = self.state.agents.get(agent_id)
        if agent is None or agent.state != "online":
            return
        if agent.human:
            self._away(agent, reason)
            return
        agent.state = "lost"
        self.state.index.remove(agent_id)
        held = list(agent.held)
        for task_id in held:
            self.attempts.revoke(
                self.state.tasks[task_id], "lost", f"agent {agent_id} lost: {reason}"
            )
        # each revoked attempt halved it already (a "lost" outcome); with none, halve it once
        agent.reliability *= 0.5 if not held else 1.0
        self.journal.save_agent(agent)
        self.journal.emit(
            "agent.lost", agent_id=agent_id, message=reason, data={"revoked": list(held)}
        )

    def unreachable(self, agent_id: str, reason: str) -> None:
        """Offers cannot reach the participant (nobody listens on its inbox): lost, and
        kept out until it registers again."""
        agent = self.state.agents.get(agent_id)
        if agent is None:
            return
        agent.unreachable = True
        if agent.state == "online":
            agent.state = "lost"  # a person too: away would come back on the next beat
            self.state.index.remove(agent_id)
            held = list(agent.held)
            for task_id in held:
                self.attempts.revoke(self.state.tasks[task_id], "lost", reason)
            self.journal.save_agent(agent)
        self.journal.emit("agent.unreachable", agent_id=agent_id, message=reason)

    def _away(self, agent: AgentRecord, reason: str) -> None:
        agent.state = "away"
        self.state.index.remove(agent.id)
        held = list(agent.held)
        for task_id in held:
            self.attempts.revoke(
                self.state.tasks[task_id], "revoked", f"{agent.id} is away: {reason}"
            )
        self.journal.save_agent(agent)
        self.journal.emit(
            "agent.away", agent_id=agent.id, message=reason, data={"revoked": list(held)}
        )
