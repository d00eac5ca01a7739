"""The task layer of the board: submission, cancellation, attempts (accepted, refused,
ended, revoked), progress and results. No I/O (see ``offerboard``).
"""

from __future__ import annotations

import time

from pydantic import JsonValue

from protocols import (
    AttemptOutcome,
    Cancel,
    ErrorCode,
    Progress,
    ProtocolError,
    Result,
    ResultAck,
    TaskSpec,
    TaskState,
    Usage,
)

from .lifecycle import HELD, after_failed_attempt, initial_state
from .offerboard import OfferBoard
from .records import AgentRecord, TaskRecord
from .schemas import schema_problem
from .sink import FAILED_OUTCOMES, new_task_id, topological

S = TaskState


class TaskBoard(OfferBoard):
    """Submitting tasks and running their attempts to a result. No I/O."""

    # ------------------------------------------------------------------ submit / cancel

    def submit(self, specs: list[TaskSpec]) -> list[str]:
        """Add a batch of tasks (a graph). All or nothing."""
        ids: list[str] = []
        batch: dict[str, TaskSpec] = {}
        for spec in specs:
            task_id = spec.id or new_task_id()
            if task_id in batch or task_id in self.tasks:
                raise ProtocolError(ErrorCode.CONFLICT, f"task id {task_id} already exists")
            if spec.output_schema is not None:
                problem = schema_problem(spec.output_schema)
                if problem:
                    raise ProtocolError(
                        ErrorCode.INVALID, f"task {task_id}: invalid output_schema: {problem}"
                    )
            batch[task_id] = spec.model_copy(update={"id": task_id})
            ids.append(task_id)
        for task_id, spec in batch.items():
            for dep in spec.depends_on:
                if dep == task_id:
                    raise ProtocolError(ErrorCode.INVALID, f"task {task_id} depends on itself")
                if dep not in batch and dep not in self.tasks:
                    raise ProtocolError(
                        ErrorCode.INVALID, f"task {task_id} depends on unknown task {dep}"
                    )
        order = topological(batch)
        now = time.time()
        for task_id in order:
            spec = batch[task_id]
            self._task_seq += 1
            dep_states = [self.tasks[d].state for d in spec.depends_on]
            rec = TaskRecord(
                id=task_id,
                seq=self._task_seq,
                spec=spec,
                state=S.PENDING,
                created_at=now,
                updated_at=now,
            )
            self.tasks[task_id] = rec
            for dep in spec.depends_on:
                self.tasks[dep].dependents.append(task_id)
            if spec.deadline is not None:
                self._deadlines[task_id] = rec
            self.emit("task.submitted", task=rec, message=spec.title)
            start = initial_state(dep_states)
            if start is S.READY:
                self._move(rec, S.READY)
                self.emit("task.ready", task=rec)
            elif start is S.FAILED:
                bad = next(
                    d for d in spec.depends_on if self.tasks[d].state in (S.FAILED, S.CANCELLED)
                )
                self._finish(rec, S.FAILED, f"dependency {bad} {self.tasks[bad].state.value}")
            self._save(rec)
        return ids

    def cancel_task(self, task_id: str, reason: str) -> TaskRecord:
        """Cancel a task that has not finished."""
        rec = self._task(task_id)
        if rec.state.terminal:
            raise ProtocolError(ErrorCode.CONFLICT, f"task {task_id} is already {rec.state.value}")
        if rec.state in HELD:
            self._end_attempt(rec, "cancelled", reason or "cancelled", notify=True)
        self._finish(rec, S.CANCELLED, reason or "cancelled")
        return rec

    def _task(self, task_id: str) -> TaskRecord:
        rec = self.tasks.get(task_id)
        if rec is None:
            raise ProtocolError(ErrorCode.UNKNOWN_TASK, f"no task {task_id}")
        return rec

    def offer_accepted(self, task_id: str, attempt: int, agent_id: str) -> None:
        """The participant accepted: the attempt runs."""
        rec = self._current(task_id, attempt, agent_id)
        if rec is None:
            known = self.tasks.get(task_id)
            past = next((h for h in known.history if h.attempt == attempt), None) if known else None
            if past is not None and past.outcome in ("delivered", "done", "rejected", "error"):
                return  # its result overtook this reply: nothing to stop
            # withdrawn while the answer travelled (cancelled, agent judged lost): stop it
            self.sink.cancel(
                agent_id,
                Cancel(task_id=task_id, attempt=attempt, reason="offer withdrawn", ts=time.time()),
            )
            return
        if rec.state is S.ASSIGNED:
            self._start(rec)

    def _start(self, rec: TaskRecord) -> None:
        self._move(rec, S.RUNNING)
        mono = time.monotonic()
        rec.started = rec.last_progress = mono
        cur = rec.current
        if cur is not None:
            cur.outcome = "running"
            cur.started_at = time.time()
        self.emit("task.running", task=rec, agent_id=rec.assigned_to)
        self._save(rec)

    def offer_refused(
        self, task_id: str, attempt: int, agent_id: str, outcome: AttemptOutcome, reason: str
    ) -> None:
        """The participant declined, or did not reply in time: try the next candidate."""
        rec = self._current(task_id, attempt, agent_id)
        if rec is None or rec.state is not S.ASSIGNED:
            return
        rec.declined.add(agent_id)
        self._end_attempt(rec, outcome, reason, notify=outcome == "no_reply")
        self._move(rec, S.READY)
        self.emit(
            "task.declined", task=rec, agent_id=agent_id, message=reason, data={"outcome": outcome}
        )
        self._save(rec)

    def offer_undeliverable(self, task_id: str, attempt: int, agent_id: str, reason: str) -> None:
        """The offer cannot be sent at all (larger than the bus allows): the task fails, as
        no participant could ever receive it."""
        rec = self._current(task_id, attempt, agent_id)
        if rec is None or rec.state is not S.ASSIGNED:
            return
        self._end_attempt(rec, "revoked", reason, notify=False)
        self._finish(rec, S.FAILED, reason)

    # ------------------------------------------------------------------ attempts ending

    def _end_attempt(
        self, rec: TaskRecord, outcome: AttemptOutcome, reason: str, *, notify: bool
    ) -> None:
        """Close the current attempt: free the holder, record the outcome, maybe tell it."""
        agent_id = rec.assigned_to
        agent = self.agents.get(agent_id) if agent_id else None
        if agent is not None:
            agent.held.pop(rec.id, None)
            self._score(agent, outcome)
            if agent.mode == "draining" and not agent.held:
                self.emit("agent.drained", agent_id=agent.id, message="drained: holds nothing")
            self.sink.wake()
        if notify and agent_id:
            self.sink.cancel(
                agent_id,
                Cancel(task_id=rec.id, attempt=rec.attempt, reason=reason, ts=time.time()),
            )
        cur = rec.current
        if cur is not None:
            cur.outcome = outcome
            cur.reason = reason
            cur.ended_at = time.time()
        rec.assigned_to = None
        rec.progress = None
        rec.progress_message = None

    def _score(self, agent: AgentRecord, outcome: AttemptOutcome) -> None:
        """Count an attempt's outcome in its holder's record and reliability."""
        if outcome in FAILED_OUTCOMES:
            agent.failed += 1
            if outcome == "stalled":
                agent.stalled += 1
            weight = 0.5 if outcome in ("lost", "stalled") else 0.2
            agent.reliability *= 1.0 - weight
            self._save_agent(agent)
        elif outcome == "done":
            agent.completed += 1
            agent.reliability = agent.reliability * 0.9 + 0.1
            self._save_agent(agent)

    def revoke(self, rec: TaskRecord, outcome: AttemptOutcome, reason: str) -> None:
        """Take a held attempt back (lost, stalled, timed out): retry elsewhere or fail."""
        agent_id = rec.assigned_to
        counts = outcome in FAILED_OUTCOMES and rec.state is S.RUNNING
        self._end_attempt(rec, outcome, reason, notify=True)
        if agent_id and outcome in FAILED_OUTCOMES:
            rec.excluded.add(agent_id)
        if counts:
            rec.failures += 1
        self.emit(
            "task.revoked", task=rec, agent_id=agent_id, message=reason, data={"outcome": outcome}
        )
        self._after_attempt(rec, reason)

    def _after_attempt(self, rec: TaskRecord, reason: str) -> None:
        dst = after_failed_attempt(rec.failures, rec.spec.max_attempts)
        if dst is S.READY:
            self._move(rec, S.READY)
            self.emit(
                "task.retry",
                task=rec,
                message=f"retry ({rec.failures}/{rec.spec.max_attempts} failed): {reason}",
            )
            self._save(rec)
        else:
            self._finish(
                rec,
                S.FAILED,
                f"{rec.failures} failed attempts (max {rec.spec.max_attempts}); last: {reason}",
            )

    def _finish(self, rec: TaskRecord, dst: TaskState, error: str | None) -> None:
        """Move to a terminal state and settle the dependents."""
        self._move(rec, dst)
        rec.error = error
        self.emit(f"task.{dst.value}", task=rec, message=error or "")
        self._save(rec)
        self._finished(rec)
        for dep_id in rec.dependents:
            dep = self.tasks[dep_id]
            if dep.state is not S.PENDING:
                continue
            if dst is S.DONE:
                if all(self.tasks[d].state is S.DONE for d in dep.spec.depends_on):
                    self._move(dep, S.READY)
                    self.emit("task.ready", task=dep)
                    self._save(dep)
            else:
                self._finish(dep, S.FAILED, f"dependency {rec.id} {dst.value}")

    def _finished(self, rec: TaskRecord) -> None:
        """Hook: ``rec`` reached a terminal state (review and goal boards react)."""

    def _delivered(self, rec: TaskRecord, attempt: int) -> ResultAck:
        """Hook: a good result is in (``rec.output`` set, state validating); validate it."""
        self._end_attempt(rec, "done", "", notify=False)
        self._finish(rec, S.DONE, None)
        return ResultAck(task_id=rec.id, attempt=attempt, accepted=True, state=rec.state)

    def _add_usage(self, rec: TaskRecord, agent_id: str | None, usage: Usage | None) -> None:
        """Sum model usage into the task and the participant that spent it."""
        if usage is None:
            return
        rec.usage = rec.usage.plus(usage)
        agent = self.agents.get(agent_id) if agent_id else None
        if agent is not None:
            agent.usage = agent.usage.plus(usage)
            self._save_agent(agent)

    # ------------------------------------------------------------------ progress and results

    def progress(self, msg: Progress) -> None:
        """Progress or a log line from the holder: resets the stall timer."""
        rec = self.tasks.get(msg.task_id)
        if rec is None:
            raise ProtocolError(ErrorCode.UNKNOWN_TASK, f"no task {msg.task_id}")
        if self._current(msg.task_id, msg.attempt, msg.agent_id) is None:
            raise self._not_current(rec, msg.attempt, msg.agent_id)
        rec.last_progress = time.monotonic()
        agent = self.agents.get(msg.agent_id)
        if agent is not None:
            agent.last_beat = rec.last_progress
        if msg.log:
            self.emit("task.log", task=rec, agent_id=msg.agent_id, message=msg.message or "")
            return
        if msg.fraction is not None:
            rec.progress = msg.fraction
        if msg.message is not None:
            rec.progress_message = msg.message
        data: dict[str, JsonValue] = {"fraction": msg.fraction}
        self.emit(
            "task.progress",
            task=rec,
            agent_id=msg.agent_id,
            message=msg.message or "",
            data=data,
            store=False,
        )

    def result(self, msg: Result) -> ResultAck:
        """A result: fenced by attempt, validated, then done, retried or failed."""
        rec = self.tasks.get(msg.task_id)
        if rec is None:
            raise ProtocolError(ErrorCode.UNKNOWN_TASK, f"no task {msg.task_id}")
        past = next((h for h in rec.history if h.attempt == msg.attempt), None)
        if (
            past is not None
            and past.agent_id == msg.agent_id
            and past.outcome in ("done", "rejected", "error", "delivered")
        ):
            return ResultAck(
                task_id=rec.id,
                attempt=msg.attempt,
                accepted=past.outcome == "done",
                state=rec.state,
                reason=past.reason,
                duplicate=True,
            )
        if self._current(msg.task_id, msg.attempt, msg.agent_id) is None:
            raise self._not_current(rec, msg.attempt, msg.agent_id)
        holder = self.agents.get(msg.agent_id)
        if holder is not None and holder.session != msg.session:
            raise ProtocolError(
                ErrorCode.WRONG_SESSION,
                f"result for {rec.id} from a session of {msg.agent_id} that does not hold it",
            )
        if rec.state is S.ASSIGNED:  # the result overtook the accept reply
            self._start(rec)
        ack = self._take_result(rec, msg)
        # spent either way; counted once the result is settled (a budget may stop the goal)
        self._add_usage(rec, msg.agent_id, msg.usage)
        return ack.model_copy(update={"state": rec.state}) if ack.state != rec.state else ack

    def _take_result(self, rec: TaskRecord, msg: Result) -> ResultAck:
        if not msg.ok:
            reason = f"handler error: {msg.error or 'unknown error'}"
            agent_id = rec.assigned_to
            rec.failures += 1
            self._end_attempt(rec, "error", reason, notify=False)
            self.emit("task.error", task=rec, agent_id=agent_id, message=reason)
            self._after_attempt(rec, reason)
            return ResultAck(
                task_id=rec.id, attempt=msg.attempt, accepted=False, state=rec.state, reason=reason
            )
        self._move(rec, S.VALIDATING)
        rec.output = msg.output
        self.emit("task.validating", task=rec, agent_id=msg.agent_id)
        return self._delivered(rec, msg.attempt)

    def _not_current(self, rec: TaskRecord, attempt: int, agent_id: str) -> ProtocolError:
        """Why a message about ``attempt`` of ``rec`` from ``agent_id`` is refused."""
        past = next((h for h in rec.history if h.attempt == attempt), None)
        if agent_id not in self.agents and (past is None or past.agent_id != agent_id):
            return ProtocolError(ErrorCode.UNKNOWN_AGENT, f"unknown agent {agent_id}")
        if past is None and rec.assigned_to == agent_id:
            return ProtocolError(
                ErrorCode.STALE_ATTEMPT,
                f"attempt {attempt} of task {rec.id} does not exist; {agent_id} holds "
                f"attempt {rec.attempt}",
            )
        if past is None or past.agent_id != agent_id:
            return ProtocolError(
                ErrorCode.NOT_HOLDER,
                f"{agent_id} never held attempt {attempt} of task {rec.id}",
            )
        return ProtocolError(
            ErrorCode.STALE_ATTEMPT,
            f"attempt {attempt} of task {rec.id} was {past.outcome}"
            f"{': ' + past.reason if past.reason else ''}; the task is now "
            f"{rec.state.value} at attempt {rec.attempt}",
        )
