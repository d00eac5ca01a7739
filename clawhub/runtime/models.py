"""The coordinator model's work for the board: judging a result and planning a goal, each
run in the background when the board asks (``Sink.judge``, ``Sink.plan``) and answered
back to the board (``Board.judge_verdict``, ``Board.plan_ready`` / ``Board.plan_failed``)."""

from __future__ import annotations

import logging

from protocols import Usage, ValidationStep

from ..board import Board
from ..errors import ModelUnavailable
from .coordinator import Coordinator

log = logging.getLogger("clawhub.models")


class ModelCalls:
    """Calls to the coordinator model on behalf of one board."""

    def __init__(self, board: Board, coordinator: Coordinator) -> None:
        self.board = board
        self.coordinator = coordinator

    async def judge(self, task_id: str, attempt: int, step: ValidationStep) -> None:
        """Ask the judge model about the output of ``attempt``; tell the board."""
        rec = self.board.tasks.get(task_id)
        if rec is None:
            return
        try:
            accepted, reasons, by, usage = await self.coordinator.judge(rec.spec, rec.output, step)
        except Exception as exc:  # a failing judge must never leave the task hanging
            log.exception("judging %s failed", task_id)
            accepted, reasons, usage = None, f"{type(exc).__name__}: {exc}", Usage()
            by = f"model:{step.model or self.coordinator.model}"
        self.board.judge_verdict(
            task_id, attempt, by=by, accepted=accepted, reasons=reasons, usage=usage
        )

    async def plan(self, goal_id: str, feedback: str) -> None:
        """Ask the coordinator model for a goal's plan; tell the board."""
        goal = self.board.goals.get(goal_id)
        if goal is None:
            return
        skills = self.board.group_skills()
        try:
            plan, problem, usage, answer = await self.coordinator.plan(
                goal.spec, skills, feedback, goal.last_answer
            )
        except ModelUnavailable as exc:
            self.board.plan_failed(goal_id, f"cannot plan goal {goal_id}: {exc}")
            return
        except Exception as exc:  # provider errors count as a failed try
            log.warning("planning %s failed: %s", goal_id, exc)
            plan, problem, usage, answer = None, f"{type(exc).__name__}: {exc}", Usage(), ""
        self.board.plan_ready(goal_id, plan, problem, usage, answer)
