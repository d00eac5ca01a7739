"""What the board hands the hub: the effects to carry out (``Sink``) and the offers to send."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pydantic import JsonValue

from protocols import Cancel, Event, ValidationStep, Verdict

from .records import TaskRecord
from .rows import Change


class Sink(Protocol):
    """Where the board's effects go (the hub implements it)."""

    def write(self, row: Change) -> None:
        """Persist a row (in order)."""

    def publish(self, event: Event) -> None:
        """Publish an event on the bus."""

    def send_cancel(self, agent_id: str, message: Cancel) -> None:
        """Tell a participant to stop an attempt."""

    def wake(self) -> None:
        """Something changed that may allow new offers."""

    def judge(self, task_id: str, attempt: int, step: ValidationStep) -> None:
        """Ask the judge model for a verdict on the output of ``attempt`` (answer through
        ``Board.judge_verdict``)."""

    def plan(self, goal_id: str, feedback: str) -> None:
        """Ask the coordinator model for a plan of a goal (answer through
        ``Board.plan_ready`` / ``Board.plan_failed``); ``feedback``: what was wrong last time."""


@dataclass(frozen=True, slots=True)
class Offer:
    """An attempt the board decided to offer; the hub sends it and reports back."""

    task: TaskRecord
    agent_id: str
    attempt: int
    accept_timeout: float
    stall_timeout: float
    run_timeout: float | None
    dependency_outputs: dict[str, JsonValue]
    feedback: list[Verdict]
    pushed: bool = False
    """Sent on credit: no reply expected, the attempt runs already (``Register.credit``)."""
    batch: bool = False
    """Pushed to an agent that takes several in one ``Assignments`` (``Register.batches``)."""
