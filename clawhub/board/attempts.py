"""Tasks and their attempts: submission, cancellation, an attempt from offer to result
(accepted, declined, ended, revoked), progress, and a task's end. No I/O.

What happens next is handed on, never reached for: a good result goes to ``deliver`` (the
validation pipeline, wired by the board), and a task that ends is announced to every
``finished`` listener (validation, for the reviews it waits on; goals, for their progress);
spent money is announced to every ``spent`` listener (goals, for their budgets).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import JsonValue

from protocols import (
    AttemptInfo,
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

from .graph import new_task_id, topological
from .lifecycle import (
    FAILED_OUTCOMES,
    HELD,
    after_failed_attempt,
    initial_state,
    needs_validation,
)
from .records import AgentRecord, TaskRecord
from .schemas import schema_problem
from .sink import Sink
from .state import GroupState, Journal

S = TaskState

#: A task reached a terminal state.
Finished = Callable[[TaskRecord], None]
#: Model usage was spent on a task.
Spent = Callable[[TaskRecord, Usage], None]
#: A good result is in (state ``validating``, ``rec.output`` set): decide on it (the task,
#: the attempt, who sent it → the acknowledgement).
Deliver = Callable[[TaskRecord, int, str], ResultAck]


class Attempts:
    """Submitting tasks and running their attempts to a result."""

    def __init__(self, state: GroupState, journal: Journal, sink: Sink) -> None:
        self.state = state
        self.journal = journal
        self.sink = sink
        self.deliver: Deliver = self.accept_at_once
        self.finished: list[Finished] = []
        self.spent: list[Spent] = []

    # ------------------------------------------------------------------ submit / cancel

    def submit(self, specs: list[TaskSpec], *, children: bool = False) -> list[str]:
        """Add a batch of tasks (a graph). All or nothing. A task naming a ``parent`` is
        refused unless ``children`` (the batch comes from ``Delegation``, which set it):
        neither a client nor a goal's plan may make itself some task's child."""
        tasks = self.state.tasks
        ids: list[str] = []
        batch: dict[str, TaskSpec] = {}
        for spec in specs:
            if spec.parent is not None and not children:
                raise ProtocolError(
                    ErrorCode.INVALID,
                    f"task {spec.id or spec.title[:40]!r}: parent is set by the hub; "
                    "a running attempt delegates with ctx.delegate",
                )
            task_id = spec.id or new_task_id()
            if task_id in batch or task_id in tasks:
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
                if dep not in batch and dep not in tasks:
                    raise ProtocolError(
                        ErrorCode.INVALID, f"task {task_id} depends on unknown task {dep}"
                    )
        order = topological(batch)
        now = time.time()
        for task_id in order:
            spec = batch[task_id]
            self.state.task_seq += 1
            dep_states = [tasks[d].state for d in spec.depends_on]
            rec = TaskRecord(
                id=task_id,
                seq=self.state.task_seq,
                spec=spec,
                state=S.PENDING,
                created_at=now,
                updated_at=now,
            )
            tasks[task_id] = rec
            for dep in spec.depends_on:
                tasks[dep].dependents.append(task_id)
            if spec.deadline is not None:
                self.state.deadlines[task_id] = rec
            start = initial_state(dep_states)
            if start is S.READY:  # one event: submitted, and ready (its ``state``)
                self.state.move(rec, S.READY)
            self.journal.emit("task.submitted", task=rec, message=spec.title)
            if start is S.FAILED:
                bad = next(d for d in spec.depends_on if tasks[d].state in (S.FAILED, S.CANCELLED))
                self.finish(rec, S.FAILED, f"dependency {bad} {tasks[bad].state.value}")
            self.journal.save(rec)
        return ids

    def cancel(self, rec: TaskRecord, reason: str) -> TaskRecord:
        """Cancel a task that has not finished (``Validation.cancel`` first settles a result
        under validation and its review)."""
        if rec.state.terminal:
            raise ProtocolError(ErrorCode.CONFLICT, f"task {rec.id} is already {rec.state.value}")
        if rec.state in HELD:
            self.end_attempt(rec, "cancelled", reason or "cancelled", notify=True)
        self.finish(rec, S.CANCELLED, reason or "cancelled")
        return rec

    # ------------------------------------------------------------------ an offer's answer

    def offer_accepted(self, task_id: str, attempt: int, agent_id: str) -> None:
        """The participant accepted: the attempt runs."""
        rec = self.state.current(task_id, attempt, agent_id)
        if rec is None:
            known = self.state.tasks.get(task_id)
            past = next((h for h in known.history if h.attempt == attempt), None) if known else None
            if past is not None and past.outcome in ("delivered", "done", "rejected", "error"):
                return  # its result overtook this reply: nothing to stop
            # withdrawn while the answer travelled (cancelled, agent judged lost): stop it
            self.sink.send_cancel(
                agent_id,
                Cancel(task_id=task_id, attempt=attempt, reason="offer withdrawn", ts=time.time()),
            )
            return
        if rec.state is S.ASSIGNED:
            self.start(rec)

    def start(self, rec: TaskRecord, announce: bool = True) -> None:
        """The attempt runs: its stall and run timers start. ``announce`` false: the
        caller's event says so (a pushed attempt's ``task.assigned``, state ``running``)."""
        self.state.move(rec, S.RUNNING)
        mono = time.monotonic()
        rec.started = rec.last_progress = mono
        cur = rec.current
        if cur is not None:
            cur.outcome = "running"
            cur.started_at = time.time()
        if announce:
            self.journal.emit("task.running", task=rec, agent_id=rec.assigned_to)
        self.journal.save(rec)

    def claim(self, agent: AgentRecord, task_id: str, attempt: int) -> bool:
        """After a restart or takeover (``GroupState.recovering_until``): ``agent`` says it
        runs ``attempt`` of ``task_id``, which the old hub offered it but did not record.
        It keeps it when that is the task's next attempt and nobody holds the task."""
        state = self.state
        rec = state.tasks.get(task_id)
        if time.monotonic() >= state.recovering_until or rec is None:
            return False
        if rec.state is not S.READY or attempt != rec.attempt + 1:
            return False
        state.move(rec, S.ASSIGNED)
        rec.attempt = attempt
        rec.assigned_to = agent.id
        agent.held[rec.id] = attempt
        rec.history.append(
            AttemptInfo(
                attempt=attempt, agent_id=agent.id, outcome="offered", offered_at=time.time()
            )
        )
        self.journal.emit(
            "task.assigned",
            task=rec,
            agent_id=agent.id,
            message=f"{agent.id} was running it when the hub took over: kept",
        )
        self.start(rec)
        return True

    def _claimed(self, agent_id: str, task_id: str, attempt: int) -> bool:
        """A progress or result, during the recovery grace, for an attempt the old hub did
        not record: its sender claims it (``claim``) when nobody else can hold it."""
        agent = self.state.agents.get(agent_id)
        return agent is not None and self.claim(agent, task_id, attempt)

    def release_held_over(self) -> None:
        """The recovery grace is over: offers nobody claimed go out again."""
        state = self.state
        for task_id in state.held_over:
            rec = state.tasks.get(task_id)
            if rec is not None and rec.state is S.ASSIGNED:
                self.end_attempt(rec, "revoked", "hub restarted during the offer", notify=True)
                state.move(rec, S.READY)
                self.journal.save(rec)
        state.held_over = []
        state.recovering_until = 0.0
        self.sink.wake()

    def offer_refused(
        self, task_id: str, attempt: int, agent_id: str, outcome: AttemptOutcome, reason: str
    ) -> None:
        """The participant declined, or did not reply in time: try the next candidate."""
        rec = self.state.current(task_id, attempt, agent_id)
        if rec is None or not self.unanswered(rec):
            return
        rec.declined.add(agent_id)
        self.end_attempt(rec, outcome, reason, notify=outcome == "no_reply")
        self.state.move(rec, S.READY)
        self.journal.emit(
            "task.declined", task=rec, agent_id=agent_id, message=reason, data={"outcome": outcome}
        )
        self.journal.save(rec)

    def offer_undeliverable(self, task_id: str, attempt: int, agent_id: str, reason: str) -> None:
        """The offer cannot be sent at all (larger than the bus allows): the task fails, as
        no participant could ever receive it."""
        rec = self.state.current(task_id, attempt, agent_id)
        if rec is None or not self.unanswered(rec):
            return
        self.end_attempt(rec, "revoked", reason, notify=False)
        self.finish(rec, S.FAILED, reason)

    @staticmethod
    def unanswered(rec: TaskRecord) -> bool:
        """The current attempt may still be declined: an offer not accepted, or a pushed
        attempt (running, its result not in)."""
        return rec.state is S.ASSIGNED or (rec.pushed and rec.state is S.RUNNING)

    # ------------------------------------------------------------------ attempts ending

    def end_attempt(
        self, rec: TaskRecord, outcome: AttemptOutcome, reason: str, *, notify: bool
    ) -> None:
        """Close the current attempt: free the holder, record the outcome, maybe tell it."""
        agent_id = rec.assigned_to
        agent = self.state.agents.get(agent_id) if agent_id else None
        if agent is not None:
            agent.reclaim(rec.id)
            agent.held.pop(rec.id, None)
            self.score(agent, outcome)
            if agent.mode == "draining" and not agent.held:
                self.journal.emit(
                    "agent.drained", agent_id=agent.id, message="drained: holds nothing"
                )
            self.sink.wake()
        if notify and agent_id:
            self.sink.send_cancel(
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
        rec.pushed = False
        rec.unconfirmed = 0.0

    def score(self, agent: AgentRecord, outcome: AttemptOutcome) -> None:
        """Count an attempt's outcome in its holder's record and reliability."""
        if outcome in FAILED_OUTCOMES:
            agent.failed += 1
            if outcome == "stalled":
                agent.stalled += 1
            weight = 0.5 if outcome in ("lost", "stalled") else 0.2
            agent.reliability *= 1.0 - weight
            self.journal.save_agent(agent)
        elif outcome == "done":
            agent.completed += 1
            agent.reliability = agent.reliability * 0.9 + 0.1
            self.journal.save_agent(agent)

    def revoke(self, rec: TaskRecord, outcome: AttemptOutcome, reason: str) -> None:
        """Take a held attempt back (lost, stalled, timed out): retry elsewhere or fail."""
        agent_id = rec.assigned_to
        counts = outcome in FAILED_OUTCOMES and rec.state is S.RUNNING
        self.end_attempt(rec, outcome, reason, notify=True)
        if agent_id and outcome in FAILED_OUTCOMES:
            rec.excluded.add(agent_id)
        if counts:
            rec.failures += 1
        self.journal.emit(
            "task.revoked", task=rec, agent_id=agent_id, message=reason, data={"outcome": outcome}
        )
        self.retry_or_fail(rec, reason)

    def retry_or_fail(self, rec: TaskRecord, reason: str) -> None:
        """After an attempt that failed: ready again while attempts are left, else failed."""
        dst = after_failed_attempt(rec.failures, rec.spec.max_attempts)
        if dst is S.READY:
            self.state.move(rec, S.READY)
            self.journal.emit(
                "task.retry",
                task=rec,
                message=f"retry ({rec.failures}/{rec.spec.max_attempts} failed): {reason}",
            )
            self.journal.save(rec)
        else:
            self.finish(
                rec,
                S.FAILED,
                f"{rec.failures} failed attempts (max {rec.spec.max_attempts}); last: {reason}",
            )

    def finish(
        self, rec: TaskRecord, dst: TaskState, error: str | None, agent_id: str | None = None
    ) -> None:
        """Move to a terminal state, tell the ``finished`` listeners, settle the dependents.
        ``agent_id``: whose result made it so (a result done at once, with no validation)."""
        tasks = self.state.tasks
        self.state.move(rec, dst)
        rec.error = error
        self.journal.emit(f"task.{dst.value}", task=rec, agent_id=agent_id, message=error or "")
        self.journal.save(rec)
        for listener in self.finished:
            listener(rec)
        for dep_id in rec.dependents:
            dep = tasks[dep_id]
            if dep.state is not S.PENDING:
                continue
            if dst is S.DONE:
                if all(tasks[d].state is S.DONE for d in dep.spec.depends_on):
                    self.state.move(dep, S.READY)
                    self.journal.emit("task.ready", task=dep)
                    self.journal.save(dep)
            else:
                self.finish(dep, S.FAILED, f"dependency {rec.id} {dst.value}")

    def accept_at_once(self, rec: TaskRecord, attempt: int, agent_id: str) -> ResultAck:
        """A result with nothing to validate it: the task is done (one event,
        ``task.done``: there was no validation to announce)."""
        self.end_attempt(rec, "done", "", notify=False)
        self.finish(rec, S.DONE, None, agent_id)
        return ResultAck(task_id=rec.id, attempt=attempt, accepted=True, state=rec.state)

    def add_usage(self, rec: TaskRecord, agent_id: str | None, usage: Usage | None) -> None:
        """Sum model usage into the task and the participant that spent it; tell the
        ``spent`` listeners."""
        if usage is None:
            return
        rec.usage = rec.usage.plus(usage)
        agent = self.state.agents.get(agent_id) if agent_id else None
        if agent is not None:
            agent.usage = agent.usage.plus(usage)
            self.journal.save_agent(agent)
        for listener in self.spent:
            listener(rec, usage)

    # ------------------------------------------------------------------ progress and results

    def progress(self, msg: Progress) -> None:
        """Progress or a log line from the holder: resets the stall timer."""
        rec = self.state.tasks.get(msg.task_id)
        if rec is None:
            raise ProtocolError(ErrorCode.UNKNOWN_TASK, f"no task {msg.task_id}")
        if self.state.current(msg.task_id, msg.attempt, msg.agent_id) is None and not (
            self._claimed(msg.agent_id, msg.task_id, msg.attempt)
        ):
            raise self.not_current(rec, msg.attempt, msg.agent_id)
        rec.last_progress = time.monotonic()
        rec.unconfirmed = 0.0  # a pushed attempt's progress shows it runs
        agent = self.state.agents.get(msg.agent_id)
        if agent is not None:
            agent.last_beat = rec.last_progress
            if agent.unconfirmed_pushes:
                agent.unconfirmed_pushes = 0
        if msg.log:
            self.journal.emit(
                "task.log", task=rec, agent_id=msg.agent_id, message=msg.message or ""
            )
            return
        if msg.fraction is not None:
            rec.progress = msg.fraction
        if msg.message is not None:
            rec.progress_message = msg.message
        data: dict[str, JsonValue] = {"fraction": msg.fraction}
        self.journal.emit(
            "task.progress",
            task=rec,
            agent_id=msg.agent_id,
            message=msg.message or "",
            data=data,
            store=False,
        )

    def result(self, msg: Result) -> ResultAck:
        """A result: fenced by attempt and session, then handed to ``deliver`` (good) or
        retried or failed (an error)."""
        rec = self.state.tasks.get(msg.task_id)
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
        if self.state.current(msg.task_id, msg.attempt, msg.agent_id) is None and not (
            self._claimed(msg.agent_id, msg.task_id, msg.attempt)
        ):
            raise self.not_current(rec, msg.attempt, msg.agent_id)
        holder = self.state.agents.get(msg.agent_id)
        if holder is not None and holder.unconfirmed_pushes:
            holder.unconfirmed_pushes = 0  # it runs what is pushed to it (credit)
        if holder is not None and holder.session != msg.session:
            raise ProtocolError(
                ErrorCode.WRONG_SESSION,
                f"result for {rec.id} from a session of {msg.agent_id} that does not hold it",
            )
        if rec.state is S.ASSIGNED:  # the result overtook the accept reply
            self.start(rec)
        ack = self._take(rec, msg)
        # spent either way; counted once the result is settled (a budget may stop the goal)
        self.add_usage(rec, msg.agent_id, msg.usage)
        return ack.model_copy(update={"state": rec.state}) if ack.state != rec.state else ack

    def _take(self, rec: TaskRecord, msg: Result) -> ResultAck:
        if not msg.ok:
            reason = f"handler error: {msg.error or 'unknown error'}"
            agent_id = rec.assigned_to
            rec.failures += 1
            self.end_attempt(rec, "error", reason, notify=False)
            self.journal.emit("task.error", task=rec, agent_id=agent_id, message=reason)
            self.retry_or_fail(rec, reason)
            return ResultAck(
                task_id=rec.id, attempt=msg.attempt, accepted=False, state=rec.state, reason=reason
            )
        self.state.move(rec, S.VALIDATING)
        rec.output = msg.output
        if needs_validation(rec.spec):
            self.journal.emit("task.validating", task=rec, agent_id=msg.agent_id)
        return self.deliver(rec, msg.attempt, msg.agent_id)

    def not_current(self, rec: TaskRecord, attempt: int, agent_id: str) -> ProtocolError:
        """Why a message about ``attempt`` of ``rec`` from ``agent_id`` is refused."""
        past = next((h for h in rec.history if h.attempt == attempt), None)
        if agent_id not in self.state.agents and (past is None or past.agent_id != agent_id):
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
