"""Validation: the part of a task's life between a good result and done. No I/O.

A good result moves its task to ``validating`` and frees its holder; the task's validation
steps then run in order (``validation_steps``):

- ``schema``: the output must match ``output_schema`` (decided at once);
- ``reviewer``: a review task is submitted and matched like any other task, to a participant
  with the review skill who is not the author; its output ``{"accept": bool, "reasons": str}``
  is the verdict (heard through ``review_finished``, an ``Attempts.finished`` listener);
- ``judge``: the hub asks the coordinator model (``Sink.judge``) and hears back through
  ``judge_verdict``; no usable verdict escalates to a human;
- ``human``: the task waits in ``needs_human`` until a human decides (``Humans.decide``).

The first rejection sends the task back for rework with the reasons attached (counted
against ``max_attempts``; to another participant when ``rework`` is ``other``). Every
verdict is kept on the task and in the event log.
"""

from __future__ import annotations

import secrets
import time

from protocols import (
    AttemptOutcome,
    Constraints,
    ResultAck,
    TaskSpec,
    TaskState,
    Usage,
    ValidationKind,
    ValidationStep,
    Verdict,
)

from ..settings import HubSettings
from .attempts import Attempts
from .lifecycle import needs_validation
from .records import TaskRecord
from .schemas import output_problem
from .sink import Sink
from .state import GroupState, Journal

S = TaskState

#: What a reviewer's output must look like.
REVIEW_OUTPUT_SCHEMA = {
    "type": "object",
    "properties": {"accept": {"type": "boolean"}, "reasons": {"type": "string"}},
    "required": ["accept"],
}

REVIEW_INSTRUCTIONS = (
    "Review the output of another participant's task against its instructions and "
    "acceptance criteria (all in `input`). Answer with JSON "
    '{"accept": true|false, "reasons": "..."}; give concrete reasons for a rejection, '
    "they are sent to whoever reworks the task."
)


def validation_steps(spec: TaskSpec) -> list[ValidationStep]:
    """The checks a result of ``spec`` goes through, in order (schema first when set)."""
    steps = list(spec.validation)
    if spec.output_schema is not None and not any(s.kind == "schema" for s in steps):
        steps.insert(0, ValidationStep(kind="schema"))
    return steps


def make_verdict(
    rec: TaskRecord, step: ValidationKind, by: str, accepted: bool, reasons: str
) -> Verdict:
    """A verdict on the current output of ``rec``."""
    return Verdict(
        step=step,
        by=by[:300],
        accepted=accepted,
        reasons=reasons[:20_000],
        attempt=max(1, rec.attempt),
        ts=time.time(),
    )


def _who(verdict: Verdict) -> str:
    """Who gave a verdict, for a message: ``reviewer critic-2``, but ``schema`` and an agent
    named ``reviewer`` once (not ``schema schema``, ``reviewer reviewer``)."""
    if verdict.step in verdict.by:
        return verdict.by
    return f"{verdict.step} {verdict.by}"


class Validation:
    """Runs each result through its task's validation steps to done or rework."""

    def __init__(
        self,
        state: GroupState,
        journal: Journal,
        settings: HubSettings,
        sink: Sink,
        attempts: Attempts,
    ) -> None:
        self.state = state
        self.journal = journal
        self.settings = settings
        self.sink = sink
        self.attempts = attempts

    # ------------------------------------------------------------------ the pipeline

    def deliver(self, rec: TaskRecord, attempt: int, agent_id: str) -> ResultAck:
        """A good result is in: validate it (``Attempts.deliver``)."""
        if not needs_validation(rec.spec):
            return self.attempts.accept_at_once(rec, attempt, agent_id)
        self.attempts.end_attempt(rec, "delivered", "result under validation", notify=False)
        rec.validation_step = 0
        self.advance(rec)
        accepted = rec.state is S.DONE
        reason = ""
        if rec.state in (S.READY, S.FAILED) and rec.verdicts and not rec.verdicts[-1].accepted:
            reason = rec.verdicts[-1].reasons
        elif not accepted:
            reason = f"under validation ({rec.state.value})"
        return ResultAck(
            task_id=rec.id, attempt=attempt, accepted=accepted, state=rec.state, reason=reason
        )

    def advance(self, rec: TaskRecord) -> None:
        """Run the validation steps from ``rec.validation_step`` until one waits or rejects."""
        steps = validation_steps(rec.spec)
        while rec.validation_step is not None and rec.validation_step < len(steps):
            step = steps[rec.validation_step]
            if step.kind == "schema":
                try:
                    problem = output_problem(rec.spec.output_schema, rec.output)
                except Exception as exc:  # a schema that cannot be applied ($ref unresolvable)
                    # the output is not at fault: a person decides instead
                    self.escalate(rec, f"output_schema cannot be applied: {exc}"[:2000])
                    return
                verdict = make_verdict(
                    rec, "schema", "schema", problem is None, problem or "matches output_schema"
                )
                if not self.record(rec, verdict):
                    return
                continue
            if step.kind == "reviewer":
                self._start_review(rec, step)
            elif step.kind == "judge":
                rec.judge_tries += 1
                self.journal.emit(
                    "task.judging",
                    task=rec,
                    message=f"judge model {step.model or self.settings.coordinator_model}",
                )
                self.journal.save(rec)
                self.sink.judge(rec.id, rec.attempt, step)
            else:
                self.await_human(rec, "result waits for a human decision")
            return
        self._accept(rec)

    def record(self, rec: TaskRecord, verdict: Verdict) -> bool:
        """Keep a verdict; on acceptance move to the next step (True), else reject (False)."""
        rec.verdicts.append(verdict)
        self.journal.emit(
            "task.verdict",
            task=rec,
            agent_id=verdict.by if verdict.step in ("reviewer", "human") else None,
            message=f"{_who(verdict)}: "
            f"{'accepted' if verdict.accepted else 'rejected'}"
            f"{': ' + verdict.reasons if verdict.reasons else ''}"[:2000],
            data=verdict.model_dump(mode="json"),
        )
        if verdict.accepted:
            rec.validation_step = (rec.validation_step or 0) + 1
            return True
        self._reject(rec, verdict)
        return False

    def _settle(self, rec: TaskRecord, outcome: AttemptOutcome, reason: str) -> str | None:
        """Close the delivered attempt under validation; its author's id."""
        cur = rec.current
        if cur is None or cur.outcome != "delivered":
            return None
        cur.outcome = outcome
        cur.reason = reason
        agent = self.state.agents.get(cur.agent_id)
        if agent is not None:
            self.attempts.score(agent, outcome)
        return cur.agent_id

    def _accept(self, rec: TaskRecord) -> None:
        self._settle(rec, "done", "")
        rec.validation_step = None
        self.attempts.finish(rec, S.DONE, None)

    def _reject(self, rec: TaskRecord, verdict: Verdict) -> None:
        reason = f"rejected by {_who(verdict)}: {verdict.reasons or 'no reason'}"
        author = self._settle(rec, "rejected", reason)
        rec.failures += 1
        if author and rec.spec.rework == "other":
            rec.excluded.add(author)
        rec.output = None
        rec.validation_step = None
        rec.review_task = None
        self.journal.emit("task.rejected", task=rec, agent_id=author, message=reason[:2000])
        self.attempts.retry_or_fail(rec, reason)

    def await_human(self, rec: TaskRecord, why: str) -> None:
        """The task waits in ``needs_human`` for a person's decision."""
        self.state.move(rec, S.NEEDS_HUMAN)
        self.journal.emit("task.needs_human", task=rec, message=why)
        self.journal.save(rec)

    def escalate(self, rec: TaskRecord, why: str) -> None:
        """A step could not decide: a human decides instead."""
        self.journal.emit("task.escalated", task=rec, message=why[:2000])
        self.await_human(rec, why[:2000])

    # ------------------------------------------------------------------ reviewers and judges

    def _start_review(self, rec: TaskRecord, step: ValidationStep) -> None:
        cur = rec.current
        author = cur.agent_id if cur is not None else None
        review_id = "rv-" + secrets.token_hex(6)
        c = rec.spec.constraints
        spec = TaskSpec(
            id=review_id,
            title=f"Review: {rec.spec.title}"[:300],
            instructions=REVIEW_INSTRUCTIONS
            + (f"\nExtra criteria: {step.criteria}" if step.criteria else ""),
            input={
                "task_id": rec.id,
                "title": rec.spec.title,
                "instructions": rec.spec.instructions,
                "input": rec.spec.input,
                "acceptance": list(rec.spec.acceptance),
                "criteria": step.criteria,
                "output": rec.output,
                "author": author,
            },
            skills={step.skill: step.level},
            constraints=Constraints(
                exclude_agents=[author] if author else [],
                data=c.data,
                local_only=c.local_only,
            ),
            output_schema=REVIEW_OUTPUT_SCHEMA,
            priority=min(1000, rec.spec.priority + 1),
            deadline=rec.spec.deadline,
            goal=rec.spec.goal,
            metadata={"review_of": rec.id, "review_attempt": str(rec.attempt)},
        )
        rec.review_task = review_id
        self.attempts.submit([spec])
        self.journal.emit(
            "task.reviewing",
            task=rec,
            message=f"review task {review_id} (skill {step.skill})",
            data={"review_task": review_id},
        )
        self.journal.save(rec)

    def review_finished(self, rec: TaskRecord) -> None:
        """``Attempts.finished`` listener: a review task ended; its verdict goes to the task
        it reviews (a review that failed or was cancelled escalates to a human)."""
        target_id = rec.spec.metadata.get("review_of")
        target = self.state.tasks.get(target_id) if target_id else None
        if target is None or target.review_task != rec.id or target.state is not S.VALIDATING:
            return
        target.review_task = None
        output = rec.output
        if rec.state is S.DONE and isinstance(output, dict):
            done = next((h for h in reversed(rec.history) if h.outcome == "done"), None)
            verdict = make_verdict(
                target,
                "reviewer",
                done.agent_id if done else "reviewer",
                bool(output.get("accept")),
                str(output.get("reasons") or ""),
            )
            if self.record(target, verdict):
                self.advance(target)
            return
        self.escalate(target, f"review task {rec.id} {rec.state.value}: {rec.error or ''}")

    def judge_verdict(
        self,
        task_id: str,
        attempt: int,
        *,
        by: str,
        accepted: bool | None,
        reasons: str,
        usage: Usage | None = None,
    ) -> None:
        """The judge model's answer (``accepted`` None: it gave no usable verdict)."""
        rec = self.state.tasks.get(task_id)
        if rec is None:
            return
        self.attempts.add_usage(rec, None, usage)
        if rec.state is not S.VALIDATING or rec.attempt != attempt:
            return  # cancelled or moved on meanwhile: a stale verdict changes nothing
        if accepted is None:
            self.escalate(rec, f"judge {by} gave no usable verdict: {reasons}")
        elif self.record(rec, make_verdict(rec, "judge", by, accepted, reasons)):
            self.advance(rec)

    # ------------------------------------------------------------------ restart and cancel

    def resume(self, rec: TaskRecord) -> None:
        """After a restart: carry on with a validation that was under way."""
        if rec.validation_step is None:
            rec.validation_step = 0
        cur = rec.current
        if cur is not None and cur.outcome in ("offered", "running"):
            # written by a release that kept the attempt open while validating
            if rec.assigned_to:
                self.attempts.end_attempt(rec, "delivered", "result under validation", notify=False)
            else:
                cur.outcome = "delivered"
        steps = validation_steps(rec.spec)
        step = steps[rec.validation_step] if rec.validation_step < len(steps) else None
        if step is not None and step.kind == "reviewer" and rec.review_task in self.state.tasks:
            review = self.state.tasks[rec.review_task]
            if review.state.terminal:
                self.review_finished(review)
            return
        self.advance(rec)

    def cancel(self, task_id: str, reason: str) -> TaskRecord:
        """Cancel a task: a result under validation is settled as cancelled, and a review
        under way is cancelled with it."""
        rec = self.state.task(task_id)
        review = self.state.tasks.get(rec.review_task) if rec.review_task else None
        if rec.state in (S.VALIDATING, S.NEEDS_HUMAN):
            self._settle(rec, "cancelled", reason or "cancelled")
            rec.review_task = None
        self.attempts.cancel(rec, reason)
        if review is not None and not review.state.terminal:
            self.attempts.cancel(review, f"the task it reviews was cancelled: {reason}")
        return rec
