"""Tasks: the spec a submitter writes, and the status the hub reports."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, JsonValue, field_validator

from ._base import Clearance, Device, Identifier, Kind, Level, SkillName, Timestamp, WireModel
from .review import ValidationStep, Verdict
from .usage import Usage


class TaskState(StrEnum):
    """Where a task is in its lifecycle: pending, ready, assigned, running, validating (and
    needs_human when a person must decide), done; a lost, stalled or rejected attempt sends
    the task back to ready; done, failed and cancelled are terminal."""

    PENDING = "pending"
    """Waiting for the tasks it depends on."""
    READY = "ready"
    """Can run; waiting for a qualified participant with free capacity."""
    ASSIGNED = "assigned"
    """Offered to one participant; waiting for accept or decline."""
    RUNNING = "running"
    """Accepted; the participant works on it."""
    VALIDATING = "validating"
    """A result arrived and is being checked (schema, reviewer, judge model)."""
    NEEDS_HUMAN = "needs_human"
    """The result waits for a human to approve or reject it."""
    DONE = "done"
    """Finished, output accepted. Terminal."""
    FAILED = "failed"
    """Gave up (attempts exhausted, deadline passed, a dependency failed). Terminal."""
    CANCELLED = "cancelled"
    """Cancelled by a human or client. Terminal."""

    @property
    def terminal(self) -> bool:
        """True for done, failed and cancelled."""
        return self in (TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED)


#: How an attempt ended. ``delivered``: its result is in and under validation (the holder
#: is free again); it becomes ``done`` or ``rejected`` when the validation ends.
AttemptOutcome = Literal[
    "offered",
    "running",
    "delivered",
    "declined",
    "no_reply",
    "done",
    "rejected",
    "error",
    "lost",
    "stalled",
    "timed_out",
    "revoked",
    "cancelled",
]


class Constraints(WireModel):
    """Hard filters beyond skills. An empty list means "no constraint"."""

    labels: list[str] = Field(default_factory=list, description="Labels the agent must all carry.")
    models: list[str] = Field(
        default_factory=list,
        description="Allowed model prefixes (`anthropic/`, `ollama/`, `gpt-4o`); "
        "`none` allows plain-code agents.",
    )
    devices: list[Device] = Field(default_factory=list, description="Allowed devices.")
    kinds: list[Kind] = Field(default_factory=list, description="Allowed participant kinds.")
    data: Clearance = Field(
        default="public",
        description="Sensitivity of the task's data; the participant's clearance must reach it.",
    )
    local_only: bool = Field(
        default=False,
        description="Only participants whose model runs locally (plain code or `ollama/...`).",
    )
    agents: list[Identifier] = Field(
        default_factory=list, description="Only these participant ids (pinning)."
    )
    exclude_agents: list[Identifier] = Field(
        default_factory=list, description="Never these participant ids."
    )
    max_cost: float | None = Field(default=None, ge=0, description="Most a participant may cost.")


class Timeouts(WireModel):
    """Per-task timeouts in seconds; null takes the hub's default."""

    accept: float | None = Field(default=None, gt=0, description="Wait for accept/decline.")
    stall: float | None = Field(
        default=None, gt=0, description="Longest time without progress before a revoke."
    )
    run: float | None = Field(default=None, gt=0, description="Hard limit for one attempt.")


class TaskSpec(WireModel):
    """What a submitter asks for."""

    id: Identifier | None = Field(
        default=None, description="Client-chosen id (so a graph can refer to it); else generated."
    )
    title: str = Field(min_length=1, max_length=300, description="Short title.")
    instructions: str = Field(default="", max_length=100_000, description="What to do.")
    input: JsonValue = Field(default=None, description="Input data (any JSON).")
    skills: dict[SkillName, Level] = Field(
        default_factory=dict, description="Required skills with the minimum level of each."
    )
    constraints: Constraints = Field(default_factory=Constraints, description="Hard filters.")
    priority: int = Field(default=0, ge=-1000, le=1000, description="Higher runs first.")
    deadline: Timestamp | None = Field(
        default=None, description="Absolute time after which the task fails."
    )
    depends_on: list[Identifier] = Field(
        default_factory=list, description="Tasks that must be done first; their outputs pass on."
    )
    max_attempts: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Failed attempts (lost, stalled, rejected, error) "
        "before the task fails. Declines do not count.",
    )
    timeouts: Timeouts = Field(default_factory=Timeouts, description="Per-task timeouts.")
    output_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema the output must match to be accepted."
    )
    acceptance: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Acceptance criteria, in words: what reviewers and the judge model check.",
    )
    validation: list[ValidationStep] = Field(
        default_factory=list,
        max_length=10,
        description="Checks a result goes through, in order. A `schema` step runs first "
        "whenever `output_schema` is set, listed or not.",
    )
    rework: Literal["other", "any"] = Field(
        default="other",
        description="After a rejection: `other` gives the rework to another participant "
        "when one qualifies; `any` lets the author try again with the reasons.",
    )
    prefer_cheap: bool = Field(
        default=False, description="Prefer the cheapest qualified participant."
    )
    goal: Identifier | None = Field(
        default=None, description="The goal this task belongs to (set by the hub)."
    )
    parent: Identifier | None = Field(
        default=None,
        description="The task that delegated this one (set by the hub on a `Delegate`; "
        "a plain submission may not set it).",
    )
    metadata: dict[str, str] = Field(default_factory=dict, description="Free key/value tags.")

    @field_validator("skills", mode="before")
    @classmethod
    def _lower_skill_names(cls, value: object) -> object:
        if isinstance(value, dict):
            return {str(k).lower(): v for k, v in value.items()}
        return value


class CandidateScore(WireModel):
    """Why a participant was (or was not) chosen: its score and the parts of it."""

    agent_id: Identifier = Field(description="The candidate.")
    score: float = Field(description="Total score; the highest is offered first.")
    skill: float = Field(description="Skill part (0..1).")
    load: float = Field(description="Free-capacity part (0..1).")
    reliability: float = Field(description="Reliability part (0..1).")
    cost: float = Field(description="Cheapness part (0..1).")


class AttemptInfo(WireModel):
    """One attempt in a task's history."""

    attempt: int = Field(ge=1, description="Attempt number (fencing token).")
    agent_id: Identifier = Field(description="Who held it.")
    outcome: AttemptOutcome = Field(description="How it ended (or `offered`/`running`).")
    reason: str = Field(default="", description="Human-readable detail of the outcome.")
    offered_at: Timestamp = Field(description="When it was offered.")
    started_at: Timestamp | None = Field(default=None, description="When it was accepted.")
    ended_at: Timestamp | None = Field(default=None, description="When it ended.")
    why: list[CandidateScore] = Field(
        default_factory=list, description="Scores of the top candidates when it was matched."
    )


class TaskStatus(WireModel):
    """The hub's view of one task."""

    type: Literal["claw.v1.task.status"] = "claw.v1.task.status"
    id: Identifier = Field(description="Task id.")
    spec: TaskSpec = Field(description="The spec as submitted (with its id filled in).")
    state: TaskState = Field(description="Lifecycle state.")
    attempt: int = Field(ge=0, description="Current (latest) attempt number; 0 before any.")
    failures: int = Field(ge=0, description="Attempts that counted against max_attempts.")
    assigned_to: Identifier | None = Field(default=None, description="Current holder, if any.")
    output: JsonValue = Field(default=None, description="The accepted output, once done.")
    error: str | None = Field(default=None, description="Why it failed or was cancelled.")
    progress: float | None = Field(default=None, description="Last reported fraction 0..1.")
    progress_message: str | None = Field(default=None, description="Last progress message.")
    created_at: Timestamp = Field(description="Submitted at.")
    updated_at: Timestamp = Field(description="Last state change.")
    history: list[AttemptInfo] = Field(default_factory=list, description="Every attempt.")
    verdicts: list[Verdict] = Field(
        default_factory=list, description="Every validation verdict, oldest first."
    )
    validation_step: int | None = Field(
        default=None, description="Index of the validation step under way (validating only)."
    )
    review_of: Identifier | None = Field(
        default=None, description="For a review task: the task whose output it reviews."
    )
    children: list[Identifier] = Field(
        default_factory=list,
        description="Tasks this one delegated (``ctx.delegate``), oldest first; each names "
        "this task as its `spec.parent`.",
    )
    usage: Usage = Field(default_factory=Usage, description="Model usage of every attempt.")
