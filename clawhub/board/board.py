"""The board: every task and participant, and every rule that moves them. No I/O.

The hub feeds it messages and clock ticks; it answers with replies, and tells the hub what
to write, publish and cancel through a ``Sink``. Keeping the rules here, synchronous and free
of the bus, makes each one testable on its own and every change atomic in the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

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

from ..store.store import AgentRow, GoalRow, TaskRow
from .goalboard import GoalBoard
from .lifecycle import HELD, initial_state
from .plans import GoalRecord
from .records import AgentRecord, TaskRecord
from .sink import FAILED_OUTCOMES, Offer, Sink, new_task_id

S = TaskState

__all__ = ["FAILED_OUTCOMES", "Board", "Offer", "Sink", "new_task_id"]


class Board(GoalBoard):
    """State and rules of one Claw Group: tasks (``TaskBoard``), participants, the lease
    watcher and recovery after a restart."""

    # ------------------------------------------------------------------ participants

    def lost_after(self) -> float:
        """Seconds of silence after which a participant is lost."""
        return self.settings.heartbeat_interval * self.settings.missed_beats

    def register(self, msg: Register) -> RegisterAck:
        """A participant joins, or re-joins after a reconnect."""
        profile = msg.profile
        now = time.monotonic()
        old = self.agents.get(profile.id)
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
                self.revoke(self.tasks[task_id], "lost", "agent restarted (new session)")
        agent = old or AgentRecord(profile=profile, session=msg.session)
        rejoin = old is not None and old.session == msg.session
        agent.profile = profile
        agent.session = msg.session
        agent.state = "online"
        agent.last_beat = now
        agent.last_seen = time.time()
        agent.heard = True
        revoked: list[TaskRef] = []
        for ref in msg.running:
            rec = self._current(ref.task_id, ref.attempt, profile.id)
            if rec is None:
                revoked.append(ref)
            else:
                agent.held[rec.id] = rec.attempt
                rec.last_progress = now
        self.agents[profile.id] = agent
        self.index.add(profile)
        self._save_agent(agent)
        self.emit(
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
        agent = self.agents.get(msg.agent_id)
        if agent is None or agent.state == "left":
            raise ProtocolError(ErrorCode.UNKNOWN_AGENT, f"unknown agent {msg.agent_id}")
        if agent.session != msg.session:
            raise ProtocolError(
                ErrorCode.WRONG_SESSION, f"heartbeat from a stale session of {msg.agent_id}"
            )
        agent.last_beat = time.monotonic()
        agent.last_seen = time.time()
        agent.heard = True
        if agent.state != "online":
            agent.state = "online"
            self.index.add(agent.profile)
            self._save_agent(agent)
            self.emit("agent.back", agent_id=agent.id, message="heart-beating again")
            self.sink.wake()
        for ref in msg.running:
            if self._current(ref.task_id, ref.attempt, agent.id) is None:
                self.sink.cancel(
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
        agent = self.agents.get(msg.agent_id)
        if agent is None:
            raise ProtocolError(ErrorCode.UNKNOWN_AGENT, f"unknown agent {msg.agent_id}")
        if agent.session != msg.session:
            raise ProtocolError(ErrorCode.WRONG_SESSION, f"stale session of {msg.agent_id}")
        for task_id in list(agent.held):
            self.revoke(self.tasks[task_id], "revoked", f"agent left: {msg.reason or 'stopped'}")
        agent.state = "left"
        self.index.remove(agent.id)
        self._save_agent(agent)
        self.emit("agent.left", agent_id=agent.id, message=msg.reason)

    def agent_lost(self, agent_id: str, reason: str) -> None:
        """A participant is gone (missed beats, closed connection): revoke all it held."""
        agent = self.agents.get(agent_id)
        if agent is None or agent.state != "online":
            return
        agent.state = "lost"
        self.index.remove(agent_id)
        held = list(agent.held)
        for task_id in held:
            self.revoke(self.tasks[task_id], "lost", f"agent {agent_id} lost: {reason}")
        agent.reliability *= 0.5 if not held else 1.0
        self._save_agent(agent)
        self.emit("agent.lost", agent_id=agent_id, message=reason, data={"revoked": list(held)})

    # ------------------------------------------------------------------ the lease watcher

    def sweep(self) -> None:
        """Detect lost participants, stalled and timed-out attempts, and passed deadlines."""
        now = time.monotonic()
        gap = now - self._last_sweep if self._last_sweep else 0.0
        self._last_sweep = now
        if gap > 2 * self.settings.sweep_interval + 0.05 or not self.bus_up:
            # the hub itself was paused (busy loop, suspended laptop) or cut off from the bus:
            # beats and progress sent meanwhile never reached it, so that time must not count;
            # a watcher that stays late still ages every timer by one interval per sweep
            pause = gap if not self.bus_up else gap - self.settings.sweep_interval
            for agent in self.agents.values():
                agent.last_beat += pause
            for rec in self._active.values():
                rec.last_progress += pause
                rec.started += pause
            if not self.bus_up:
                return
        limit = self.lost_after()
        for agent in list(self.agents.values()):
            if agent.state == "online" and now - agent.last_beat > limit:
                self.agent_lost(
                    agent.id,
                    f"no heartbeat for {now - agent.last_beat:.1f}s "
                    f"({self.settings.missed_beats} missed)",
                )
        for rec in list(self._active.values()):
            if rec.state is not S.RUNNING:
                continue
            holder = self.agents.get(rec.assigned_to or "")
            # people send no progress: only run timeouts and deadlines apply to them
            human = holder is not None and holder.human
            t = rec.spec.timeouts
            stall = t.stall or self.settings.stall_timeout
            run = t.run or self.settings.run_timeout
            if not human and now - rec.last_progress > stall:
                self.revoke(
                    rec,
                    "stalled",
                    f"no progress for {now - rec.last_progress:.1f}s (stall timeout {stall:g}s)",
                )
            elif run is not None and now - rec.started > run:
                self.revoke(rec, "timed_out", f"attempt ran past its {run:g}s run timeout")
        wall = time.time()
        for rec in list(self._deadlines.values()):
            deadline = rec.spec.deadline
            if deadline is not None and wall > deadline and not rec.state.terminal:
                if rec.state in HELD:
                    self._end_attempt(rec, "timed_out", "deadline passed", notify=True)
                self._finish(rec, S.FAILED, "deadline passed")

    # ------------------------------------------------------------------ recovery

    def load(
        self,
        task_rows: Iterable[TaskRow],
        agent_rows: Iterable[AgentRow],
        last_seq: int,
        goal_rows: Iterable[GoalRow] = (),
    ) -> None:
        """Rebuild the board from the store after a restart."""
        self._event_seq = last_seq
        for goal_row in goal_rows:
            goal = GoalRecord.from_row(goal_row)
            self.goals[goal.id] = goal
            self._goal_seq = max(self._goal_seq, goal.seq)
        now = time.monotonic()
        for row in agent_rows:
            agent = AgentRecord.from_row(row)
            agent.last_beat = now  # a grace window to re-attach
            agent.heard = False  # ... but a new process under its id is not refused
            self.agents[agent.id] = agent
            if agent.state == "online":
                self.index.add(agent.profile)
        recs = [TaskRecord.from_row(r) for r in task_rows]
        for rec in recs:
            self.tasks[rec.id] = rec
            self._task_seq = max(self._task_seq, rec.seq)
        for rec in recs:
            for dep in rec.spec.depends_on:
                if dep in self.tasks:
                    self.tasks[dep].dependents.append(rec.id)
            if rec.spec.deadline is not None and not rec.state.terminal:
                self._deadlines[rec.id] = rec
        recovered = 0
        validating: list[TaskRecord] = []
        for rec in recs:
            if rec.state is S.READY:
                self._enqueue(rec)
            elif rec.state is S.ASSIGNED:
                # the offer died with the old hub: offer again, without counting a failure
                holder = self.agents.get(rec.assigned_to or "")
                self._active[rec.id] = rec
                if holder is not None:
                    holder.held[rec.id] = rec.attempt
                self._end_attempt(rec, "revoked", "hub restarted during the offer", notify=True)
                self._move(rec, S.READY)
                self._save(rec)
            elif rec.state is S.RUNNING:
                holder = self.agents.get(rec.assigned_to or "")
                rec.started = rec.last_progress = now
                self._active[rec.id] = rec
                if holder is not None and holder.state == "online":
                    holder.held[rec.id] = rec.attempt
                else:
                    self.revoke(rec, "lost", "holder not online after hub restart")
            elif rec.state is S.VALIDATING:
                validating.append(rec)
            elif rec.state is S.PENDING:
                deps = [self.tasks[d].state for d in rec.spec.depends_on if d in self.tasks]
                start = initial_state(deps)
                if start is S.READY:
                    self._move(rec, S.READY)
                    self._save(rec)
                elif start is S.FAILED:
                    self._finish(rec, S.FAILED, "a dependency failed or was cancelled")
            if not rec.state.terminal:
                recovered += 1
        for rec in validating:
            self.resume_validation(rec)
        for goal in self.goals.values():
            if goal.state == "planning":
                self.sink.plan(goal.id, "")  # the planning call died with the old hub
        self.emit(
            "hub.recovered",
            message=f"{recovered} open tasks, {len(self.agents)} agents",
            data={"open_tasks": recovered},
        )
