"""Rows to records and back: how the board's records (``clawhub.board.records``) are kept in
the store's tables (``tables``). The board hands out plain values; reading them back into
records after a restart happens here, so the board never sees a database row."""

from __future__ import annotations

import json
from collections.abc import Iterable

from protocols import (
    AgentMode,
    AgentProfile,
    AgentState,
    AttemptInfo,
    GoalSpec,
    GoalState,
    Plan,
    TaskSpec,
    TaskState,
    Usage,
    Verdict,
)

from ..board.plans import GoalRecord
from ..board.records import AgentRecord, TaskRecord
from .tables import AgentRow, GoalRow, TaskRow


def task_row(rec: TaskRecord, group: str) -> TaskRow:
    """The store row of a task."""
    return TaskRow(**rec.values(group))


def task_record(row: TaskRow) -> TaskRecord:
    """A task rebuilt from the store."""
    extra = json.loads(row.extra or "{}")
    return TaskRecord(
        id=row.id,
        seq=row.seq,
        spec=TaskSpec.model_validate_json(row.spec),
        state=TaskState(row.state),
        created_at=row.created_at,
        updated_at=row.updated_at,
        attempt=row.attempt,
        failures=row.failures,
        assigned_to=row.assigned_to,
        output=None if row.output is None else json.loads(row.output),
        error=row.error,
        history=[AttemptInfo.model_validate(h) for h in json.loads(row.history)],
        excluded=set(json.loads(row.excluded)),
        verdicts=[Verdict.model_validate(v) for v in json.loads(row.verdicts or "[]")],
        usage=Usage.model_validate_json(row.usage or "{}"),
        validation_step=extra.get("validation_step"),
        review_task=extra.get("review_task"),
        pinned=extra.get("pinned"),
        delegated=dict(extra.get("delegated") or {}),
    )


def agent_row(agent: AgentRecord, group: str) -> AgentRow:
    """The store row of a participant."""
    return AgentRow(**agent.write(group).values)


def agent_record(row: AgentRow) -> AgentRecord:
    """A participant rebuilt from the store."""
    state: AgentState = _agent_state(row.state)
    return AgentRecord(
        profile=AgentProfile.model_validate_json(row.profile),
        session=row.session,
        state=state,
        reliability=row.reliability,
        completed=row.completed,
        failed=row.failed,
        last_seen=row.last_seen,
        mode=_mode(row.mode),
        usage=Usage.model_validate_json(row.usage or "{}"),
        stalled=row.stalled,
        credential=row.credential,
    )


def goal_record(row: GoalRow) -> GoalRecord:
    """A goal rebuilt from the store."""
    return GoalRecord(
        id=row.id,
        seq=row.seq,
        spec=GoalSpec.model_validate_json(row.spec),
        state=_goal_state(row.state),
        created_at=row.created_at,
        updated_at=row.updated_at,
        plan=Plan.model_validate_json(row.plan) if row.plan else None,
        task_ids=list(json.loads(row.task_ids)),
        usage=Usage.model_validate_json(row.usage or "{}"),
        planning_usage=Usage.model_validate_json(row.planning_usage or "{}"),
        deliverable=None if row.deliverable is None else json.loads(row.deliverable),
        error=row.error,
        planning_attempts=row.planning_attempts,
    )


def task_records(rows: Iterable[TaskRow]) -> list[TaskRecord]:
    """Every task of ``rows`` as a record."""
    return [task_record(r) for r in rows]


def agent_records(rows: Iterable[AgentRow]) -> list[AgentRecord]:
    """Every participant of ``rows`` as a record."""
    return [agent_record(r) for r in rows]


def goal_records(rows: Iterable[GoalRow]) -> list[GoalRecord]:
    """Every goal of ``rows`` as a record."""
    return [goal_record(r) for r in rows]


def _agent_state(value: str) -> AgentState:
    if value == "online":
        return "online"
    if value == "left":
        return "left"
    if value == "away":
        return "away"
    return "lost"


def _mode(value: str) -> AgentMode:
    if value == "paused":
        return "paused"
    if value == "draining":
        return "draining"
    return "active"


_GOAL_STATES: tuple[GoalState, ...] = (
    "planning",
    "awaiting_approval",
    "running",
    "done",
    "failed",
    "cancelled",
)


def _goal_state(value: str) -> GoalState:
    for state in _GOAL_STATES:
        if value == state:
            return state
    return "failed"
