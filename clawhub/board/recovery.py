"""Recovery: a board rebuilt from what the store kept, after a restart of the hub. No I/O
(the store reads its rows and maps them to records: ``clawhub.store.mapping``)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from protocols import TaskState

from .attempts import Attempts
from .delegation import Delegation
from .goals import Planner
from .lifecycle import initial_state
from .plans import GoalRecord
from .records import AgentRecord, TaskRecord
from .state import GroupState, Journal
from .validation import Validation

S = TaskState


def recover(
    state: GroupState,
    journal: Journal,
    attempts: Attempts,
    validation: Validation,
    planner: Planner,
    delegation: Delegation,
    *,
    tasks: Iterable[TaskRecord],
    agents: Iterable[AgentRecord],
    last_seq: int,
    goals: Iterable[GoalRecord],
    grace: float = 0.0,
    confirm_within: float = 0.0,
) -> None:
    """Load what the store kept (tasks, participants, the last event's sequence number,
    goals) into an empty board and carry on with what was under way: offers that died with the
    old hub go out again, running attempts wait for their holders to re-attach, validation
    resumes, and planning calls are made again.

    For ``grace`` seconds nothing is offered: a participant whose heartbeat names an attempt
    the old hub offered but had not recorded (or recorded as offered, not yet accepted) keeps
    it (``Attempts.claim``), so no task runs twice because its hub died mid-offer; offers
    nobody claimed go out again when the grace ends (``Watcher``).

    A running attempt may have been pushed (credit) and lost with the old hub before it
    reached its holder: unless the holder's heartbeat (or progress, or result) names it
    within ``grace`` + ``confirm_within`` seconds, it is revoked and goes out again
    (``Credit.sweep``)."""
    journal.seq = last_seq
    for goal in goals:
        state.goals[goal.id] = goal
        state.goal_seq = max(state.goal_seq, goal.seq)
    now = time.monotonic()
    state.recovering_until = now + grace if grace > 0 else 0.0
    for agent in agents:
        agent.last_beat = now  # a grace window to re-attach
        agent.heard = False  # ... but a new process under its id is not refused
        state.agents[agent.id] = agent
        if agent.state == "online":
            state.index.add(agent.profile)
    recs = list(tasks)
    for rec in recs:
        state.tasks[rec.id] = rec
        state.task_seq = max(state.task_seq, rec.seq)
    for rec in recs:
        for dep in rec.spec.depends_on:
            if dep in state.tasks:
                state.tasks[dep].dependents.append(rec.id)
        if rec.spec.deadline is not None and not rec.state.terminal:
            state.deadlines[rec.id] = rec
    recovered = 0
    validating: list[TaskRecord] = []
    for rec in recs:
        if rec.state is S.READY:
            state.enqueue(rec)
        elif rec.state is S.ASSIGNED:
            # the offer died with the old hub: its holder may have accepted (it says so in
            # its next heartbeat); if not, offer again without counting a failure
            holder = state.agents.get(rec.assigned_to or "")
            state.active[rec.id] = rec
            if holder is not None:
                holder.held[rec.id] = rec.attempt
            if holder is not None and grace > 0:
                state.held_over.append(rec.id)
            else:
                attempts.end_attempt(rec, "revoked", "hub restarted during the offer", notify=True)
                state.move(rec, S.READY)
                journal.save(rec)
        elif rec.state is S.RUNNING:
            holder = state.agents.get(rec.assigned_to or "")
            rec.started = rec.last_progress = now
            state.active[rec.id] = rec
            if holder is not None and holder.state == "online":
                holder.held[rec.id] = rec.attempt
                if confirm_within > 0 and not holder.human:
                    rec.unconfirmed = now + max(grace, 0.0) + confirm_within
            else:
                attempts.revoke(rec, "lost", "holder not online after hub restart")
        elif rec.state is S.VALIDATING:
            validating.append(rec)
        elif rec.state is S.PENDING:
            deps = [state.tasks[d].state for d in rec.spec.depends_on if d in state.tasks]
            start = initial_state(deps)
            if start is S.READY:
                state.move(rec, S.READY)
                journal.save(rec)
            elif start is S.FAILED:
                attempts.finish(rec, S.FAILED, "a dependency failed or was cancelled")
        if not rec.state.terminal:
            recovered += 1
    delegation.recover()  # children to parents; parents that still wait lend their slots
    for rec in validating:
        validation.resume(rec)
    planner.replan()
    journal.emit(
        "hub.recovered",
        message=f"{recovered} open tasks, {len(state.agents)} agents",
        data={"open_tasks": recovered},
    )
