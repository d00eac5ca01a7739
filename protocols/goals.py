"""Goals: free text that the coordinator model plans into a task graph, or an explicit plan."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, JsonValue

from ._base import Identifier, Timestamp, WireModel
from .review import ValidationStep
from .tasks import TaskSpec
from .usage import Usage

GoalState = Literal["planning", "awaiting_approval", "running", "done", "failed", "cancelled"]

#: Goal states after which nothing changes.
GOAL_TERMINAL: frozenset[str] = frozenset({"done", "failed", "cancelled"})


class Plan(WireModel):
    """A task graph for a goal: tasks with ids, instructions, skills, dependencies and
    acceptance criteria, ending in a consolidation task whose output is the deliverable."""

    tasks: list[TaskSpec] = Field(
        min_length=1, max_length=1000, description="The tasks; each needs an `id`."
    )
    deliverable: Identifier | None = Field(
        default=None,
        description="Id of the consolidation task whose output is the goal's deliverable "
        "(null: the last task).",
    )
    rationale: str = Field(default="", max_length=20_000, description="The planner's notes.")


class GoalSpec(WireModel):
    """What a submitter wants done, in words, with the limits it must keep."""

    id: Identifier | None = Field(default=None, description="Client-chosen id; else generated.")
    text: str = Field(min_length=1, max_length=50_000, description="The goal, in words.")
    budget: float | None = Field(
        default=None, ge=0, description="Most USD its tasks may spend on models."
    )
    deadline: Timestamp | None = Field(
        default=None, description="Absolute time by which every task must be done."
    )
    validation: list[ValidationStep] = Field(
        default_factory=list,
        max_length=10,
        description="Validation every task of the plan must pass (added to its own).",
    )
    approve_plan: bool = Field(
        default=False, description="A human must approve the plan before any task starts."
    )
    model: str | None = Field(
        default=None, max_length=200, description="Coordinator model for this goal (litellm)."
    )
    max_tasks: int = Field(default=30, ge=1, le=1000, description="Most tasks a plan may have.")
    metadata: dict[str, str] = Field(default_factory=dict, description="Free key/value tags.")


class SubmitGoal(WireModel):
    """Client → hub (request on ``api.goal_submit``): plan and run a goal. With ``plan``
    the coordinator model is not asked. Replied with ``GoalStatus``."""

    type: Literal["claw.v1.api.submit_goal"] = "claw.v1.api.submit_goal"
    goal: GoalSpec = Field(description="The goal.")
    plan: Plan | None = Field(default=None, description="An explicit plan (no model needed).")


class GoalStatus(WireModel):
    """The hub's view of one goal."""

    type: Literal["claw.v1.goal.status"] = "claw.v1.goal.status"
    id: Identifier = Field(description="Goal id.")
    spec: GoalSpec = Field(description="The goal as submitted (id filled in).")
    state: GoalState = Field(description="Where the goal is.")
    plan: Plan | None = Field(default=None, description="The plan (once made).")
    task_ids: list[Identifier] = Field(
        default_factory=list, description="Ids of its tasks as submitted to the board."
    )
    tasks_total: int = Field(default=0, ge=0, description="Tasks in the plan.")
    tasks_done: int = Field(default=0, ge=0, description="Tasks done.")
    tasks_failed: int = Field(default=0, ge=0, description="Tasks failed or cancelled.")
    deliverable: JsonValue = Field(default=None, description="The final output, once done.")
    usage: Usage = Field(default_factory=Usage, description="Model usage: planning and tasks.")
    planning_attempts: int = Field(default=0, ge=0, description="Times the model was asked.")
    error: str | None = Field(default=None, description="Why it failed or was cancelled.")
    created_at: Timestamp = Field(description="Submitted at.")
    updated_at: Timestamp = Field(description="Last change.")


class ListGoals(WireModel):
    """Client → hub (request on ``api.goals``)."""

    type: Literal["claw.v1.api.list_goals"] = "claw.v1.api.list_goals"
    limit: int = Field(default=100, ge=1, le=10_000, description="Most goals returned.")


class GoalList(WireModel):
    """Hub → client: goals, oldest first."""

    type: Literal["claw.v1.api.goal_list"] = "claw.v1.api.goal_list"
    goals: list[GoalStatus] = Field(description="The goals.")


class GetGoal(WireModel):
    """Client → hub (request on ``api.goal``): one goal's status."""

    type: Literal["claw.v1.api.get_goal"] = "claw.v1.api.get_goal"
    goal_id: Identifier = Field(description="Goal id.")


class DecidePlan(WireModel):
    """Client → hub (request on ``api.goal_decide``): approve (optionally edited) or reject
    the plan of a goal waiting in ``awaiting_approval``. Replied with ``GoalStatus``."""

    type: Literal["claw.v1.api.decide_plan"] = "claw.v1.api.decide_plan"
    goal_id: Identifier = Field(description="Goal id.")
    approve: bool = Field(description="True starts the plan; false fails the goal.")
    plan: Plan | None = Field(default=None, description="An edited plan to run instead.")
    reason: str = Field(default="", max_length=10_000, description="Why.")
    by: Identifier = Field(description="Who decides.")


class CancelGoal(WireModel):
    """Client → hub (request on ``api.goal_cancel``): stop a goal and its open tasks.
    Replied with ``GoalStatus``."""

    type: Literal["claw.v1.api.cancel_goal"] = "claw.v1.api.cancel_goal"
    goal_id: Identifier = Field(description="Goal id.")
    reason: str = Field(default="", max_length=1000, description="Why.")
    by: Identifier | None = Field(default=None, description="Who cancels.")
