"""Goals as the hub keeps them, and the checks a plan must pass. Pure: no I/O."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from pydantic import JsonValue

from protocols import (
    ErrorCode,
    GoalSpec,
    GoalState,
    GoalStatus,
    Plan,
    ProtocolError,
    TaskSpec,
    TaskState,
    Usage,
)

from .graph import topological
from .rows import GOALS, Write, dumps
from .schemas import schema_problem

#: Longest plan-local task id (the board id is ``<goal id>-<local id>``).
MAX_LOCAL_ID = 40


def new_goal_id() -> str:
    """A fresh goal id."""
    return "g-" + secrets.token_hex(4)


def board_id(goal_id: str, local_id: str) -> str:
    """The board's id of a plan task."""
    return f"{goal_id}-{local_id}"


@dataclass(eq=False)
class GoalRecord:
    """One goal and what the hub knows of it."""

    id: str
    seq: int
    spec: GoalSpec
    state: GoalState
    created_at: float
    updated_at: float
    plan: Plan | None = None
    task_ids: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    """Everything the goal spent: planning and its tasks (reviews and judging included)."""
    planning_usage: Usage = field(default_factory=Usage)
    deliverable: JsonValue = None
    error: str | None = None
    planning_attempts: int = 0
    last_answer: str = ""
    """The planner's last raw answer (sent back with the errors when it is repaired)."""

    @property
    def deliverable_task(self) -> str | None:
        """Board id of the task whose output is the deliverable."""
        if self.plan is None:
            return None
        local = self.plan.deliverable or self.plan.tasks[-1].id
        return board_id(self.id, local or "")

    def status(self, states: dict[str, TaskState]) -> GoalStatus:
        """The wire view; ``states``: the board's state of each of its tasks."""
        mine = [states[t] for t in self.task_ids if t in states]
        return GoalStatus(
            id=self.id,
            spec=self.spec,
            state=self.state,
            plan=self.plan,
            task_ids=list(self.task_ids),
            tasks_total=len(self.plan.tasks) if self.plan else 0,
            tasks_done=sum(1 for s in mine if s is TaskState.DONE),
            tasks_failed=sum(1 for s in mine if s in (TaskState.FAILED, TaskState.CANCELLED)),
            deliverable=self.deliverable,
            usage=self.usage,
            planning_attempts=self.planning_attempts,
            error=self.error,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )

    def write(self, group: str) -> Write:
        """What the store keeps of this goal."""
        return Write(
            GOALS,
            {
                "group": group,
                "id": self.id,
                "seq": self.seq,
                "state": self.state,
                "spec": self.spec.model_dump_json(),
                "plan": self.plan.model_dump_json() if self.plan else None,
                "task_ids": dumps(self.task_ids),
                "usage": self.usage.model_dump_json(),
                "planning_usage": self.planning_usage.model_dump_json(),
                "deliverable": None if self.deliverable is None else dumps(self.deliverable),
                "error": self.error,
                "planning_attempts": self.planning_attempts,
                "created_at": self.created_at,
                "updated_at": self.updated_at,
            },
        )


def plan_problems(
    plan: Plan, goal_id: str, goal: GoalSpec, skills: set[str] | None
) -> tuple[list[str], list[str]]:
    """``(errors, flags)`` of a plan. Errors make it unusable; flags are skills nobody in
    the group has (an error too when ``skills`` is given: a model must use known skills)."""
    errors: list[str] = []
    flags: list[str] = []
    if len(plan.tasks) > goal.max_tasks:
        errors.append(f"{len(plan.tasks)} tasks, more than the goal's limit of {goal.max_tasks}")
    ids: list[str] = []
    for n, task in enumerate(plan.tasks):
        if not task.id:
            errors.append(f"task #{n + 1} ({task.title!r}) has no id")
            continue
        if len(task.id) > MAX_LOCAL_ID or len(board_id(goal_id, task.id)) > 64:
            errors.append(f"task id {task.id!r} is longer than {MAX_LOCAL_ID} characters")
        if task.id in ids:
            errors.append(f"task id {task.id!r} is used twice")
        ids.append(task.id)
        if task.output_schema is not None:
            problem = schema_problem(task.output_schema)
            if problem:
                errors.append(f"task {task.id}: invalid output_schema: {problem}")
    known = set(ids)
    batch: dict[str, TaskSpec] = {}
    for task in plan.tasks:
        if not task.id:
            continue
        batch[task.id] = task
        for dep in task.depends_on:
            if dep == task.id:
                errors.append(f"task {task.id} depends on itself")
            elif dep not in known:
                errors.append(f"task {task.id} depends on {dep!r}, which is not in the plan")
        for skill in task.skills:
            if skills is not None and skill not in skills:
                flags.append(f"task {task.id} needs skill {skill!r}, which nobody in the group has")
    if errors:
        return errors, flags
    try:
        topological(batch)
    except ProtocolError as exc:
        return [exc.message], flags
    final = plan.deliverable or plan.tasks[-1].id or ""
    if final not in batch:
        return [f"the deliverable {final!r} is not a task of the plan"], flags
    needed = {final}
    stack = [final]
    while stack:
        for dep in batch[stack.pop()].depends_on:
            if dep not in needed:
                needed.add(dep)
                stack.append(dep)
    loose = [i for i in batch if i not in needed]
    if loose:
        errors.append(
            f"the final task {final!r} must consolidate every other task, but does not "
            f"depend on {', '.join(loose)}"
        )
    return errors, flags


def goal_tasks(goal: GoalRecord, plan: Plan) -> list[TaskSpec]:
    """The plan's tasks as the board runs them: ids namespaced by the goal, its deadline,
    validation and id passed down."""
    specs: list[TaskSpec] = []
    for task in plan.tasks:
        local = task.id or ""
        deadline = task.deadline
        if goal.spec.deadline is not None:
            deadline = min(deadline or goal.spec.deadline, goal.spec.deadline)
        metadata = {**task.metadata, "goal_task": local}
        specs.append(
            task.model_copy(
                update={
                    "id": board_id(goal.id, local),
                    "depends_on": [board_id(goal.id, d) for d in task.depends_on],
                    "deadline": deadline,
                    "validation": [*task.validation, *goal.spec.validation],
                    "goal": goal.id,
                    "metadata": metadata,
                }
            )
        )
    return specs


def refuse(errors: list[str]) -> ProtocolError:
    """The error for an unusable plan given by a client."""
    return ProtocolError(ErrorCode.INVALID, "plan: " + "; ".join(errors[:10]))
