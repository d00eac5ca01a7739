"""Goals on the board: planning (by the coordinator model, or a given plan), approval of
plans by humans, running the task graph, progress, the deliverable, and budgets.

::

    planning ──plan valid──► (awaiting_approval ──approved──►) running ──deliverable done──► done
        │ invalid plan: sent back to the model (plan_tries), then ─► failed
        │ no key for the model ─► failed          any task failed / budget spent ─► failed
                                                   cancel ─► cancelled
"""

from __future__ import annotations

import time

from pydantic import JsonValue

from protocols import (
    GOAL_TERMINAL,
    CancelGoal,
    DecidePlan,
    ErrorCode,
    GoalState,
    GoalStatus,
    Plan,
    ProtocolError,
    SubmitGoal,
    TaskState,
    Usage,
)

from ..settings import HubSettings
from .plans import GoalRecord, goal_tasks, new_goal_id, plan_problems, refuse
from .records import TaskRecord
from .reviewboard import ReviewBoard
from .sink import Sink

S = TaskState


class GoalBoard(ReviewBoard):
    """Goals and their task graphs."""

    def __init__(self, group: str, settings: HubSettings, sink: Sink, hub_id: str) -> None:
        super().__init__(group, settings, sink, hub_id)
        self.goals: dict[str, GoalRecord] = {}
        self._goal_seq = 0

    # ------------------------------------------------------------------ helpers

    def group_skills(self) -> dict[str, float]:
        """Every skill of the group's known participants, with its highest level."""
        skills: dict[str, float] = {}
        for agent in self.agents.values():
            if agent.state == "left":
                continue
            for name, level in agent.profile.skills.items():
                skills[name] = max(level, skills.get(name, 0.0))
        return skills

    def goal_status(self, goal: GoalRecord) -> GoalStatus:
        """The wire view of one goal."""
        states = {t: self.tasks[t].state for t in goal.task_ids if t in self.tasks}
        return goal.status(states)

    def find_goal(self, goal_id: str) -> GoalRecord:
        """The goal, or ``unknown_task`` (the code for any unknown id a request names)."""
        goal = self.goals.get(goal_id)
        if goal is None:
            raise ProtocolError(ErrorCode.UNKNOWN_TASK, f"no goal {goal_id}")
        return goal

    def _save_goal(self, goal: GoalRecord) -> None:
        goal.updated_at = time.time()
        self.sink.write(goal.write(self.group))

    def _goal_event(
        self, kind: str, goal: GoalRecord, message: str, data: dict[str, JsonValue] | None = None
    ) -> None:
        self.emit(
            kind, message=message, data={"goal": goal.id, "state": goal.state, **(data or {})}
        )

    def _set(
        self, goal: GoalRecord, state: GoalState, message: str, error: str | None = None
    ) -> None:
        goal.state = state
        goal.error = error
        self._goal_event(f"goal.{state}", goal, message)
        self._save_goal(goal)

    # ------------------------------------------------------------------ submit and plan

    def submit_goal(self, msg: SubmitGoal) -> GoalRecord:
        """A new goal: run its given plan, or ask the coordinator model for one."""
        spec = msg.goal
        goal_id = spec.id or new_goal_id()
        if goal_id in self.goals:
            raise ProtocolError(ErrorCode.CONFLICT, f"goal {goal_id} already exists")
        if msg.plan is not None:
            errors, _ = plan_problems(msg.plan, goal_id, spec, None)
            if errors:
                raise refuse(errors)
        now = time.time()
        self._goal_seq += 1
        goal = GoalRecord(
            id=goal_id,
            seq=self._goal_seq,
            spec=spec.model_copy(update={"id": goal_id}),
            state="planning",
            created_at=now,
            updated_at=now,
        )
        self.goals[goal_id] = goal
        self._goal_event("goal.submitted", goal, spec.text[:500])
        if msg.plan is not None:
            self._take_plan(goal, msg.plan, "given")
        else:
            self._save_goal(goal)
            self.sink.plan(goal_id, "")
        return goal

    def _take_plan(self, goal: GoalRecord, plan: Plan, source: str) -> None:
        """A usable plan: wait for a human's approval if asked for, else start it."""
        _, flags = plan_problems(plan, goal.id, goal.spec, set(self.group_skills()))
        goal.plan = plan
        self._goal_event(
            "goal.planned",
            goal,
            f"{len(plan.tasks)} tasks ({source})"
            + (f"; flagged: {'; '.join(flags)}" if flags else ""),
            {"tasks": len(plan.tasks), "flagged": list(flags), "source": source},
        )
        if goal.spec.approve_plan and source != "approved":
            self._set(goal, "awaiting_approval", "the plan waits for a human's approval")
            return
        self._start_goal(goal, plan)

    def _start_goal(self, goal: GoalRecord, plan: Plan) -> None:
        try:
            goal.task_ids = self.submit(goal_tasks(goal, plan))
        except ProtocolError as exc:
            self._set(goal, "failed", f"its tasks were refused: {exc.message}", exc.message)
            return
        self._set(goal, "running", f"{len(goal.task_ids)} tasks submitted")

    def plan_ready(
        self, goal_id: str, plan: Plan | None, problem: str, usage: Usage, answer: str
    ) -> None:
        """The coordinator model answered (``plan`` None: unusable, ``problem`` says why)."""
        goal = self.goals.get(goal_id)
        if goal is None or goal.state != "planning":
            return
        goal.planning_attempts += 1
        goal.last_answer = answer
        goal.planning_usage = goal.planning_usage.plus(usage)
        self._spend(goal, usage)
        if goal.state != "planning":
            return  # the budget ran out
        if plan is not None:
            errors, flags = plan_problems(plan, goal.id, goal.spec, set(self.group_skills()))
            errors += flags  # a model must use the skills the group has
            if not errors:
                self._take_plan(goal, plan, "model")
                return
            problem = "; ".join(errors)
        self._goal_event(
            "goal.plan_invalid",
            goal,
            f"plan {goal.planning_attempts} unusable: {problem}"[:2000],
        )
        if goal.planning_attempts >= self.settings.plan_tries:
            self._set(
                goal,
                "failed",
                "no usable plan",
                f"no usable plan after {goal.planning_attempts} tries; last: {problem}"[:5000],
            )
            return
        self._save_goal(goal)
        self.sink.plan(goal_id, problem)

    def plan_failed(self, goal_id: str, reason: str) -> None:
        """The coordinator model cannot be asked (no key, provider down): the goal fails."""
        goal = self.goals.get(goal_id)
        if goal is None or goal.state != "planning":
            return
        self._set(goal, "failed", reason[:2000], reason[:5000])

    def decide_plan(self, msg: DecidePlan) -> GoalRecord:
        """A human approves (maybe an edited plan) or rejects a plan."""
        goal = self.find_goal(msg.goal_id)
        self.check_human(msg.by, "approve plans")
        if goal.state != "awaiting_approval" or goal.plan is None:
            raise ProtocolError(
                ErrorCode.CONFLICT, f"goal {goal.id} is {goal.state}, not waiting for approval"
            )
        if not msg.approve:
            why = f"plan rejected by {msg.by}" + (f": {msg.reason}" if msg.reason else "")
            self._set(goal, "failed", why, why)
            return goal
        plan = msg.plan or goal.plan
        if msg.plan is not None:
            errors, _ = plan_problems(plan, goal.id, goal.spec, None)
            if errors:
                raise refuse(errors)
        self._goal_event("goal.plan_approved", goal, f"approved by {msg.by}")
        self._take_plan(goal, plan, "approved")
        return goal

    def cancel_goal(self, msg: CancelGoal) -> GoalRecord:
        """Stop a goal and every open task of it."""
        goal = self.find_goal(msg.goal_id)
        if goal.state in GOAL_TERMINAL:
            raise ProtocolError(ErrorCode.CONFLICT, f"goal {goal.id} is already {goal.state}")
        why = f"cancelled by {msg.by or 'a client'}" + (f": {msg.reason}" if msg.reason else "")
        self._set(goal, "cancelled", why, why)
        self._close_tasks(goal, why)
        return goal

    def _close_tasks(self, goal: GoalRecord, why: str) -> None:
        for task_id in goal.task_ids:
            rec = self.tasks.get(task_id)
            if rec is not None and not rec.state.terminal:
                self.cancel_task(task_id, f"goal {goal.id}: {why}")

    # ------------------------------------------------------------------ progress and money

    def _finished(self, rec: TaskRecord) -> None:
        super()._finished(rec)
        goal = self.goals.get(rec.spec.goal) if rec.spec.goal else None
        if goal is None or goal.state != "running" or rec.id not in goal.task_ids:
            return
        if rec.state is S.DONE:
            done = sum(1 for t in goal.task_ids if self.tasks[t].state is S.DONE)
            self._goal_event(
                "goal.progress",
                goal,
                f"{done}/{len(goal.task_ids)} tasks done",
                {"done": done, "total": len(goal.task_ids)},
            )
            if rec.id == goal.deliverable_task:
                goal.deliverable = rec.output
                self._set(goal, "done", f"deliverable from {rec.id}")
            return
        local = rec.spec.metadata.get("goal_task", rec.id)
        why = f"task {local} {rec.state.value}: {rec.error or ''}".strip()
        self._set(goal, "failed", why[:2000], why[:5000])
        self._close_tasks(goal, "the goal failed")

    def _add_usage(self, rec: TaskRecord, agent_id: str | None, usage: Usage | None) -> None:
        super()._add_usage(rec, agent_id, usage)
        goal = self.goals.get(rec.spec.goal) if rec.spec.goal else None
        if goal is not None and usage is not None:
            self._spend(goal, usage)

    def _spend(self, goal: GoalRecord, usage: Usage) -> None:
        goal.usage = goal.usage.plus(usage)
        self._save_goal(goal)
        budget = goal.spec.budget
        if budget is None or goal.usage.cost <= budget or goal.state in GOAL_TERMINAL:
            return
        why = f"budget exceeded: spent ${goal.usage.cost:.4f} of ${budget:.4f}"
        self._set(goal, "failed", why, why)
        self._close_tasks(goal, why)

    def _cost_limit(self, rec: TaskRecord) -> float | None:
        goal = self.goals.get(rec.spec.goal) if rec.spec.goal else None
        if goal is None or goal.spec.budget is None:
            return None
        return max(0.0, goal.spec.budget - goal.usage.cost)

    def group_usage(self) -> Usage:
        """Model usage of the whole group: every task (judging included), plus planning."""
        total = Usage()
        for rec in self.tasks.values():
            if rec.usage.calls or rec.usage.cost or rec.usage.prompt_tokens:
                total = total.plus(rec.usage)
        for goal in self.goals.values():
            total = total.plus(goal.planning_usage)
        return total
