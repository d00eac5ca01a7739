"""Validation of results: the steps a task's output goes through, and their verdicts."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ._base import Level, SkillName, Timestamp, WireModel

ValidationKind = Literal["schema", "reviewer", "judge", "human"]


class ValidationStep(WireModel):
    """One check a result must pass before the task is done. Steps run in order; the first
    rejection sends the task back for rework (counted against ``max_attempts``)."""

    kind: ValidationKind = Field(
        description="`schema`: output matches `output_schema`; `reviewer`: a review task is "
        "matched to another participant with `skill`; `judge`: the coordinator model (or "
        "`model`) judges against the acceptance criteria; `human`: the task waits in "
        "`needs_human` until a human decides."
    )
    skill: SkillName = Field(default="review", description="Skill a reviewer must have.")
    level: Level = Field(default=0.0, description="Lowest level of `skill` a reviewer needs.")
    model: str | None = Field(
        default=None,
        max_length=200,
        description="litellm model string for `judge` (null: the hub's coordinator model).",
    )
    criteria: str = Field(
        default="", max_length=10_000, description="Extra criteria for this step only."
    )


class Verdict(WireModel):
    """What one validation step decided about one attempt's output."""

    step: ValidationKind = Field(description="Which kind of step gave it.")
    by: str = Field(
        max_length=300,
        description="Who decided: a participant id, `model:<litellm model>`, or `schema`.",
    )
    accepted: bool = Field(description="True: the output passes this step.")
    reasons: str = Field(default="", max_length=20_000, description="Why, in words.")
    attempt: int = Field(ge=1, description="The attempt whose output was judged.")
    ts: Timestamp = Field(description="When it was decided.")
