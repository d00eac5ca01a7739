"""Goals on the board: planning (by the coordinator model, or a given plan), approval of
plans by humans, running the task graph, progress, the deliverable, and budgets. No I/O.

::

    planning ──plan valid──► (awaiting_approval ──approved──►) running ──deliverable done──► done
        │ invalid plan: sent back to the model (plan_tries), then ─► failed
        │ no key for the model ─► failed          any task failed / budget spent ─► failed
                                                   cancel ─► cancelled

The planner hears of its tasks through two listeners: ``task_finished`` (an
``Attempts.finished`` listener: progress, the deliverable, a failed task) and ``spent``
(an ``Attempts.spent`` listener: the budget), and limits the matcher through
``cost_limit``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

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
from .attempts import Attempts
from .humans import require_human
from .plans import GoalRecord, goal_tasks, new_goal_id, plan_problems, refuse
from .records import TaskRecord
from .sink import Sink
from .state import GroupState, Journal

S = TaskState

#: Cancel a task (``Validation.cancel``: a result under validation is settled too).
CancelTask = Callable[[str, str], TaskRecord]


class Planner:
    """Goals from planning to the deliverable, and what they may spend."""

    def __init__(
        self,
        state: GroupState,
        journal: Journal,
        settings: HubSettings,
        sink: Sink,
        attempts: Attempts,
        cancel_task: CancelTask,
    ) -> None:
        self.state = state
        self.journal = journal
        self.settings = settings
        self.sink = sink
        self.attempts = attempts
        self.cancel_task = cancel_task

    # ------------------------------------------------------------------ views

    def group_skills(self) -> dict[str, float]:
        """Every skill of the group's known participants, with its highest level."""
        skills: dict[str, float] = {}
        for agent in self.state.agents.values():
            if agent.state == "left":
                continue
            for name, level in agent.profile.skills.items():
                skills[name] = max(level, skills.get(name, 0.0))
        return skills

    def status(self, goal: GoalRecord) -> GoalStatus:
        """The wire view of one goal."""
        tasks = self.state.tasks
        states = {t: tasks[t].state for t in goal.task_ids if t in tasks}
        return goal.status(states)

    def find(self, goal_id: str) -> GoalRecord:
        """The goal, or ``unknown_task`` (the code for any unknown id a request names)."""
        goal = self.state.goals.get(goal_id)
        if goal is None:
            raise ProtocolError(ErrorCode.UNKNOWN_TASK, f"no goal {goal_id}")
        return goal

    def group_usage(self) -> Usage:
        """Model usage of the whole group: every task (judging included), plus planning."""
        total = Usage()
        for rec in self.state.tasks.values():
            if rec.usage.calls or rec.usage.cost or rec.usage.prompt_tokens:
                total = total.plus(rec.usage)
        for goal in self.state.goals.values():
            total = total.plus(goal.planning_usage)
        return total

    def _event(
        self, kind: str, goal: GoalRecord, message: str, data: dict[str, JsonValue] | None = None
    ) -> None:
        self.journal.emit(
            kind, message=message, data={"goal": goal.id, "state": goal.state, **(data or {})}
        )

    def _set(
        self, goal: GoalRecord, state: GoalState, message: str, error: str | None = None
    ) -> None:
        goal.state = state
        goal.error = error
        self._event(f"goal.{state}", goal, message)
        self.journal.save_goal(goal)

    # ------------------------------------------------------------------ submit and plan

    def submit(self, msg: SubmitGoal) -> GoalRecord:
        """A new goal: run its given plan, or ask the coordinator model for one."""
        spec = msg.goal
        goal_id = spec.id or new_goal_id()
        if goal_id in self.state.goals:
            raise ProtocolError(ErrorCode.CONFLICT, f"goal {goal_id} already exists")
        if msg.plan is not None:
            errors, _ = plan_problems(msg.plan, goal_id, spec, None)
            if errors:
                raise refuse(errors)
        now = time.time()
        self.state.goal_seq += 1
        goal = GoalRecord(
            id=goal_id,
            seq=self.state.goal_seq,
            spec=spec.model_copy(update={"id": goal_id}),
            state="planning",
            created_at=now,
            updated_at=now,
        )
        self.state.goals[goal_id] = goal
        self._event("goal.submitted", goal, spec.text[:500])
        if msg.plan is not None:
            self._take_plan(goal, msg.plan, "given")
        else:
            self.journal.save_goal(goal)
            self.sink.plan(goal_id, "")
        return goal

    def _take_plan(self, goal: GoalRecord, plan: Plan, source: str) -> None:
        """A usable plan: wait for a human's approval if asked for, else start it."""
        _, flags = plan_problems(plan, goal.id, goal.spec, set(self.group_skills()))
        goal.plan = plan
        self._event(
            "goal.planned",
            goal,
            f"{len(plan.tasks)} tasks ({source})"
            + (f"; flagged: {'; '.join(flags)}" if flags else ""),
            {"tasks": len(plan.tasks), "flagged": list(flags), "source": source},
        )
        if goal.spec.approve_plan and source != "approved":
            self._set(goal, "awaiting_approval", "the plan waits for a human's approval")
            return
        self._start(goal, plan)

    def _start(self, goal: GoalRecord, plan: Plan) -> None:
        try:
            goal.task_ids = self.attempts.submit(goal_tasks(goal, plan))
        except ProtocolError as exc:
            self._set(goal, "failed", f"its tasks were refused: {exc.message}", exc.message)
            return
        self._set(goal, "running", f"{len(goal.task_ids)} tasks submitted")

    def plan_ready(
        self, goal_id: str, plan: Plan | None, problem: str, usage: Usage, answer: str
    ) -> None:
        """The coordinator model answered (``plan`` None: unusable, ``problem`` says why)."""
        goal = self.state.goals.get(goal_id)
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
        self._event(
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
        self.journal.save_goal(goal)
        self.sink.plan(goal_id, problem)

    def plan_failed(self, goal_id: str, reason: str) -> None:
        """The coordinator model cannot be asked (no key, provider down): the goal fails."""
        goal = self.state.goals.get(goal_id)
        if goal is None or goal.state != "planning":
            return
        self._set(goal, "failed", reason[:2000], reason[:5000])

    def decide_plan(self, msg: DecidePlan) -> GoalRecord:
        """A human approves (maybe an edited plan) or rejects a plan."""
        goal = self.find(msg.goal_id)
        require_human(self.state.agents, msg.by, "approve plans")
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
        self._event("goal.plan_approved", goal, f"approved by {msg.by}")
        self._take_plan(goal, plan, "approved")
        return goal

    def cancel(self, msg: CancelGoal) -> GoalRecord:
        """Stop a goal and every open task of it."""
        goal = self.find(msg.goal_id)
        if goal.state in GOAL_TERMINAL:
            raise ProtocolError(ErrorCode.CONFLICT, f"goal {goal.id} is already {goal.state}")
        why = f"cancelled by {msg.by or 'a client'}" + (f": {msg.reason}" if msg.reason else "")
        self._set(goal, "cancelled", why, why)
        self._close_tasks(goal, why)
        return goal

    def _close_tasks(self, goal: GoalRecord, why: str) -> None:
        for task_id in goal.task_ids:
            rec = self.state.tasks.get(task_id)
            if rec is not None and not rec.state.terminal:
                self.cancel_task(task_id, f"goal {goal.id}: {why}")

    def replan(self) -> None:
        """After a restart: ask again for the plans whose call died with the old hub."""
        for goal in self.state.goals.values():
            if goal.state == "planning":
                self.sink.plan(goal.id, "")

    # ------------------------------------------------------------------ progress and money

    def task_finished(self, rec: TaskRecord) -> None:
        """``Attempts.finished`` listener: a goal's task ended (progress, the deliverable,
        or the goal fails with it)."""
        goal = self.state.goals.get(rec.spec.goal) if rec.spec.goal else None
        if goal is None or goal.state != "running" or rec.id not in goal.task_ids:
            return
        tasks = self.state.tasks
        if rec.state is S.DONE:
            done = sum(1 for t in goal.task_ids if tasks[t].state is S.DONE)
            self._event(
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

    def spent(self, rec: TaskRecord, usage: Usage) -> None:
        """``Attempts.spent`` listener: money spent on a goal's task counts to its budget."""
        goal = self.state.goals.get(rec.spec.goal) if rec.spec.goal else None
        if goal is not None:
            self._spend(goal, usage)

    def _spend(self, goal: GoalRecord, usage: Usage) -> None:
        goal.usage = goal.usage.plus(usage)
        self.journal.save_goal(goal)
        budget = goal.spec.budget
        if budget is None or goal.usage.cost <= budget or goal.state in GOAL_TERMINAL:
            return
        why = f"budget exceeded: spent ${goal.usage.cost:.4f} of ${budget:.4f}"
        self._set(goal, "failed", why, why)
        self._close_tasks(goal, why)

    def cost_limit(self, rec: TaskRecord) -> float | None:
        """``Matcher.cost_limit``: the most a participant may cost for a goal's task (what
        is left of the goal's budget)."""
        goal = self.state.goals.get(rec.spec.goal) if rec.spec.goal else None
        if goal is None or goal.spec.budget is None:
            return None
        return max(0.0, goal.spec.budget - goal.usage.cost)
