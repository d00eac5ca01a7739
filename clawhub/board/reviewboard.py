"""Validation and the powers of humans: the half of the board between a result and done.

A good result moves its task to ``validating`` and frees its holder; the task's validation
steps then run in order (``validation_steps``):

- ``schema``: the output must match ``output_schema`` (decided at once);
- ``reviewer``: a review task is submitted and matched like any other task, to a participant
  with the review skill who is not the author; its output ``{"accept": bool, "reasons": str}``
  is the verdict;
- ``judge``: the hub asks the coordinator model (``Sink.judge``) and hears back through
  ``judge_verdict``; no usable verdict escalates to a human;
- ``human``: the task waits in ``needs_human`` until ``decide``.

The first rejection sends the task back for rework with the reasons attached (counted
against ``max_attempts``; to another participant when ``rework`` is ``other``). Every
verdict is kept on the task and in the event log.
"""

from __future__ import annotations

import secrets
import time

from protocols import (
    AttemptOutcome,
    ClaimTask,
    Constraints,
    DecideTask,
    ErrorCode,
    PostChat,
    ProtocolError,
    ReassignTask,
    ResultAck,
    SetAgentMode,
    TaskSpec,
    TaskState,
    Usage,
    ValidationKind,
    ValidationStep,
    Verdict,
)

from .lifecycle import HELD
from .records import AgentRecord, TaskRecord
from .schemas import output_problem
from .taskboard import TaskBoard

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


class ReviewBoard(TaskBoard):
    """Validation steps, verdicts and the human actions (decide, reassign, claim, modes)."""

    # ------------------------------------------------------------------ the pipeline

    def _delivered(self, rec: TaskRecord, attempt: int) -> ResultAck:
        if not rec.spec.validation and rec.spec.output_schema is None:
            return super()._delivered(rec, attempt)
        self._end_attempt(rec, "delivered", "result under validation", notify=False)
        rec.validation_step = 0
        self._advance(rec)
        accepted = rec.state is S.DONE
        reason = ""
        if rec.state in (S.READY, S.FAILED) and rec.verdicts and not rec.verdicts[-1].accepted:
            reason = rec.verdicts[-1].reasons
        elif not accepted:
            reason = f"under validation ({rec.state.value})"
        return ResultAck(
            task_id=rec.id, attempt=attempt, accepted=accepted, state=rec.state, reason=reason
        )

    def _advance(self, rec: TaskRecord) -> None:
        """Run the validation steps from ``rec.validation_step`` until one waits or rejects."""
        steps = validation_steps(rec.spec)
        while rec.validation_step is not None and rec.validation_step < len(steps):
            step = steps[rec.validation_step]
            if step.kind == "schema":
                try:
                    problem = output_problem(rec.spec.output_schema, rec.output)
                except Exception as exc:  # a schema that cannot be applied ($ref unresolvable)
                    # the output is not at fault: a person decides instead
                    self._escalate(rec, f"output_schema cannot be applied: {exc}"[:2000])
                    return
                verdict = self._verdict(
                    rec, "schema", "schema", problem is None, problem or "matches output_schema"
                )
                if not self._record(rec, verdict):
                    return
                continue
            if step.kind == "reviewer":
                self._start_review(rec, step)
            elif step.kind == "judge":
                rec.judge_tries += 1
                self.emit(
                    "task.judging",
                    task=rec,
                    message=f"judge model {step.model or self.settings.coordinator_model}",
                )
                self._save(rec)
                self.sink.judge(rec.id, rec.attempt, step)
            else:
                self._await_human(rec, "result waits for a human decision")
            return
        self._accept(rec)

    @staticmethod
    def _verdict(
        rec: TaskRecord, step: ValidationKind, by: str, accepted: bool, reasons: str
    ) -> Verdict:
        return Verdict(
            step=step,
            by=by[:300],
            accepted=accepted,
            reasons=reasons[:20_000],
            attempt=max(1, rec.attempt),
            ts=time.time(),
        )

    def _record(self, rec: TaskRecord, verdict: Verdict) -> bool:
        """Keep a verdict; on acceptance move to the next step (True), else reject (False)."""
        rec.verdicts.append(verdict)
        self.emit(
            "task.verdict",
            task=rec,
            agent_id=verdict.by if verdict.step in ("reviewer", "human") else None,
            message=f"{verdict.step} {verdict.by}: "
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
        agent = self.agents.get(cur.agent_id)
        if agent is not None:
            self._score(agent, outcome)
        return cur.agent_id

    def _accept(self, rec: TaskRecord) -> None:
        self._settle(rec, "done", "")
        rec.validation_step = None
        self._finish(rec, S.DONE, None)

    def _reject(self, rec: TaskRecord, verdict: Verdict) -> None:
        reason = f"rejected by {verdict.step} {verdict.by}: {verdict.reasons or 'no reason'}"
        author = self._settle(rec, "rejected", reason)
        rec.failures += 1
        if author and rec.spec.rework == "other":
            rec.excluded.add(author)
        rec.output = None
        rec.validation_step = None
        rec.review_task = None
        self.emit("task.rejected", task=rec, agent_id=author, message=reason[:2000])
        self._after_attempt(rec, reason)

    def _await_human(self, rec: TaskRecord, why: str) -> None:
        self._move(rec, S.NEEDS_HUMAN)
        self.emit("task.needs_human", task=rec, message=why)
        self._save(rec)

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
        self.submit([spec])
        self.emit(
            "task.reviewing",
            task=rec,
            message=f"review task {review_id} (skill {step.skill})",
            data={"review_task": review_id},
        )
        self._save(rec)

    def _finished(self, rec: TaskRecord) -> None:
        super()._finished(rec)
        target_id = rec.spec.metadata.get("review_of")
        target = self.tasks.get(target_id) if target_id else None
        if target is None or target.review_task != rec.id or target.state is not S.VALIDATING:
            return
        target.review_task = None
        output = rec.output
        if rec.state is S.DONE and isinstance(output, dict):
            done = next((h for h in reversed(rec.history) if h.outcome == "done"), None)
            verdict = self._verdict(
                target,
                "reviewer",
                done.agent_id if done else "reviewer",
                bool(output.get("accept")),
                str(output.get("reasons") or ""),
            )
            if self._record(target, verdict):
                self._advance(target)
            return
        self._escalate(target, f"review task {rec.id} {rec.state.value}: {rec.error or ''}")

    def _escalate(self, rec: TaskRecord, why: str) -> None:
        """A step could not decide: a human decides instead."""
        self.emit("task.escalated", task=rec, message=why[:2000])
        self._await_human(rec, why[:2000])

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
        rec = self.tasks.get(task_id)
        if rec is None:
            return
        self._add_usage(rec, None, usage)
        if rec.state is not S.VALIDATING or rec.attempt != attempt:
            return  # cancelled or moved on meanwhile: a stale verdict changes nothing
        if accepted is None:
            self._escalate(rec, f"judge {by} gave no usable verdict: {reasons}")
        elif self._record(rec, self._verdict(rec, "judge", by, accepted, reasons)):
            self._advance(rec)

    def resume_validation(self, rec: TaskRecord) -> None:
        """After a restart: carry on with a validation that was under way."""
        if rec.validation_step is None:
            rec.validation_step = 0
        cur = rec.current
        if cur is not None and cur.outcome in ("offered", "running"):
            # written by a release that kept the attempt open while validating
            if rec.assigned_to:
                self._end_attempt(rec, "delivered", "result under validation", notify=False)
            else:
                cur.outcome = "delivered"
        steps = validation_steps(rec.spec)
        step = steps[rec.validation_step] if rec.validation_step < len(steps) else None
        if step is not None and step.kind == "reviewer" and rec.review_task in self.tasks:
            review = self.tasks[rec.review_task]
            if review.state.terminal:
                self._finished(review)
            return
        self._advance(rec)

    def cancel_task(self, task_id: str, reason: str) -> TaskRecord:
        rec = self._task(task_id)
        review = self.tasks.get(rec.review_task) if rec.review_task else None
        if rec.state in (S.VALIDATING, S.NEEDS_HUMAN):
            self._settle(rec, "cancelled", reason or "cancelled")
            rec.review_task = None
        rec = super().cancel_task(task_id, reason)
        if review is not None and not review.state.terminal:
            super().cancel_task(review.id, f"the task it reviews was cancelled: {reason}")
        return rec

    # ------------------------------------------------------------------ human powers

    def decide(self, msg: DecideTask) -> TaskRecord:
        """A human approves or rejects a result waiting in ``needs_human``."""
        rec = self._task(msg.task_id)
        self.check_human(msg.by, "decide on results")
        if rec.state is not S.NEEDS_HUMAN:
            raise ProtocolError(
                ErrorCode.CONFLICT,
                f"task {rec.id} is {rec.state.value}, not waiting for a human decision",
            )
        verdict = self._verdict(rec, "human", msg.by, msg.accept, msg.reason)
        if self._record(rec, verdict):
            self._move(rec, S.VALIDATING)
            self._advance(rec)
        return rec

    def check_human(self, who: str | None, what: str) -> None:
        agent = self.agents.get(who) if who else None
        if agent is not None and agent.profile.kind != "human":
            raise ProtocolError(
                ErrorCode.FORBIDDEN, f"{who} is an agent; only humans and admins {what}"
            )

    def reassign(self, msg: ReassignTask) -> TaskRecord:
        """Take a task back from its holder (no failure counted) and offer it again."""
        rec = self._task(msg.task_id)
        self.check_human(msg.by, "reassign tasks")
        if rec.state.terminal or rec.state in (S.VALIDATING, S.NEEDS_HUMAN):
            raise ProtocolError(
                ErrorCode.CONFLICT, f"task {rec.id} is {rec.state.value}: nothing to reassign"
            )
        target = self._target(rec, msg.to) if msg.to else None
        who = msg.by or "a client"
        reason = f"reassigned by {who}" + (f": {msg.reason}" if msg.reason else "")
        holder = rec.assigned_to
        if rec.state in HELD:
            self._end_attempt(rec, "revoked", reason, notify=True)
            if holder and target is None:
                rec.excluded.add(holder)
            self._move(rec, S.READY)
        rec.pinned = target.id if target else None
        rec.declined.clear()
        rec.not_before = 0.0
        self.emit(
            "task.reassigned",
            task=rec,
            agent_id=holder,
            message=reason + (f" (to {target.id})" if target else ""),
            data={"to": target.id if target else None, "by": msg.by},
        )
        self._save(rec)
        self.sink.wake()
        return rec

    def _target(self, rec: TaskRecord, agent_id: str) -> AgentRecord:
        agent = self.agents.get(agent_id)
        if agent is None or agent.state != "online":
            raise ProtocolError(ErrorCode.UNKNOWN_AGENT, f"no online participant {agent_id}")
        why = self.qualifies(rec, agent)
        if why is not None:
            raise ProtocolError(ErrorCode.CONFLICT, f"{agent_id} cannot take {rec.id}: {why}")
        return agent

    def claim(self, msg: ClaimTask) -> TaskRecord:
        """A participant (a human, usually) takes a ready task: it is offered to them next."""
        rec = self._task(msg.task_id)
        if rec.state is not S.READY:
            holder = f" (held by {rec.assigned_to})" if rec.assigned_to else ""
            raise ProtocolError(
                ErrorCode.CONFLICT, f"task {rec.id} is {rec.state.value}{holder}, not ready"
            )
        agent = self._target(rec, msg.agent_id)
        rec.pinned = agent.id
        rec.declined.discard(agent.id)
        rec.not_before = 0.0
        self.emit("task.claimed", task=rec, agent_id=agent.id, message=f"claimed by {agent.id}")
        self._save(rec)
        self.sink.wake()
        return rec

    def set_mode(self, msg: SetAgentMode) -> AgentRecord:
        """Pause, resume or drain a participant."""
        agent = self.agents.get(msg.agent_id)
        if agent is None:
            raise ProtocolError(ErrorCode.UNKNOWN_AGENT, f"unknown agent {msg.agent_id}")
        if msg.by != msg.agent_id:
            self.check_human(msg.by, "pause or drain others")
        agent.mode = msg.mode
        self._save_agent(agent)
        self.emit(
            "agent.mode",
            agent_id=agent.id,
            message=f"{msg.mode}" + (f": {msg.reason}" if msg.reason else ""),
            data={"mode": msg.mode, "by": msg.by},
        )
        if msg.mode == "draining" and not agent.held:
            self.emit("agent.drained", agent_id=agent.id, message="drained: holds nothing")
        self.sink.wake()
        return agent

    def chat(self, msg: PostChat) -> None:
        """A line in the group's shared channel (kept in the event log)."""
        self.emit("chat.message", agent_id=msg.sender, task_id=msg.task_id, message=msg.text)
