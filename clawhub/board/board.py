"""The board: one Claw Group's state and every rule that moves it. No I/O.

The hub feeds it messages and clock ticks; it answers with replies and tells the hub what to
write, publish and cancel through a ``Sink``. Keeping the rules synchronous and free of the
bus makes each one testable on its own and every change atomic in the event loop.

``Board`` is a façade over collaborators that share one ``GroupState`` and one ``Journal``
and hand work on through explicit listeners, wired in ``Board.__init__``:

============== ==================================================================
``matcher``     ready tasks → the best participant → an ``Offer`` (``offers``)
``attempts``    submit, cancel, an attempt from offer to result, a task's end
``validation``  a good result through schema / reviewer / judge / human to done
``humans``      decide, reassign, claim, pause/resume/drain, chat
``planner``     goals: planning, approval, the task graph, the deliverable, budgets
``participants`` register, heartbeat, deregister, lost
``delegation``  child tasks of running attempts (``Delegate``) and their parents' fates
``watcher``     the lease sweep: lost, stalled, timed out, deadlines
============== ==================================================================

The path of a result, top to bottom::

    Board.result ─► Attempts.result      fenced: attempt, holder, session
        error ─► Attempts.retry_or_fail  ready again, or failed when attempts are spent
        good  ─► validating ─► Attempts.deliver = Validation.deliver
                   no steps ─► Attempts.accept_at_once ─► Attempts.finish(done)
                   steps    ─► Validation.advance, one step at a time:
                                schema   decided at once
                                reviewer a review task; its end comes back through
                                         Attempts.finished ─► Validation.review_finished
                                judge    Sink.judge; the model's answer ─► Board.judge_verdict
                                human    needs_human; a person ─► Board.decide
                   accepted ─► Attempts.finish(done);  rejected ─► Attempts.retry_or_fail
    Attempts.finish ─► Attempts.finished listeners: Validation.review_finished,
                       Planner.task_finished, Delegation.task_finished (a child's end on
                       its parent's log; a parent's end cancels its open children)
                       ─► then the dependents: ready, or failed
    Attempts.add_usage ─► Attempts.spent listeners: Planner.spent (the goal's budget)
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import JsonValue

from protocols import (
    AttemptOutcome,
    CancelGoal,
    ClaimTask,
    DecidePlan,
    DecideTask,
    Decline,
    Delegate,
    Delegated,
    Deregister,
    ErrorCode,
    ErrorReply,
    Event,
    GoalStatus,
    Heartbeat,
    Plan,
    PostChat,
    Progress,
    ProtocolError,
    ReassignTask,
    Register,
    RegisterAck,
    Result,
    ResultAck,
    ResultAcks,
    Results,
    SetAgentMode,
    SubmitGoal,
    TaskSpec,
    Usage,
    subjects,
)

from ..settings import HubSettings
from .attempts import Attempts
from .credit import Credit
from .delegation import Delegation
from .goals import Planner
from .humans import Humans
from .offers import Matcher
from .participants import Participants
from .plans import GoalRecord
from .records import AgentRecord, TaskRecord
from .recovery import recover
from .sink import Offer, Sink
from .state import GroupState, Journal
from .validation import Validation
from .watcher import Watcher


class Board:
    """State and rules of one Claw Group (see the module docstring for who does what)."""

    def __init__(self, group: str, settings: HubSettings, sink: Sink, hub_id: str) -> None:
        self.group = group
        self.settings = settings
        self.sink = sink
        self.hub_id = hub_id
        self.state = GroupState(sink)
        self.journal = Journal(group, sink)
        state, journal = self.state, self.journal
        self.tasks: dict[str, TaskRecord] = state.tasks
        self.agents: dict[str, AgentRecord] = state.agents
        self.goals: dict[str, GoalRecord] = state.goals
        self.index = state.index

        self.matcher = Matcher(state, journal, settings)
        self.attempts = Attempts(state, journal, sink)
        self.validation = Validation(state, journal, settings, sink, self.attempts)
        self.humans = Humans(state, journal, sink, self.attempts, self.validation, self.matcher)
        self.planner = Planner(
            state, journal, settings, sink, self.attempts, cancel_task=self.validation.cancel
        )
        self.participants = Participants(state, journal, settings, sink, self.attempts, hub_id)
        self.delegation = Delegation(
            state, journal, self.attempts, cancel_task=self.validation.cancel
        )
        self.credit = Credit(state, self.attempts, self.participants)
        self.watcher = Watcher(
            state, settings, self.participants, self.attempts, self.delegation, self.credit
        )

        # the hand-offs, in the order they run
        self.attempts.deliver = self.validation.deliver  # a good result is validated
        self.attempts.finished.append(self.validation.review_finished)  # a review's verdict
        self.attempts.finished.append(self.planner.task_finished)  # a goal's progress
        self.attempts.finished.append(self.delegation.task_finished)  # parents and children
        self.attempts.spent.append(self.planner.spent)  # a goal's budget
        self.matcher.cost_limit = self.planner.cost_limit  # ... limits who may be chosen
        self.matcher.start = self.attempts.start  # a pushed attempt runs at once (credit)

    @property
    def bus_up(self) -> bool:
        """False while the hub is cut off from NATS: nobody is judged lost meanwhile."""
        return self.state.bus_up

    @bus_up.setter
    def bus_up(self, value: bool) -> None:
        self.state.bus_up = value

    # ------------------------------------------------------------------ the journal

    def emit(
        self,
        kind: str,
        *,
        task: TaskRecord | None = None,
        task_id: str | None = None,
        agent_id: str | None = None,
        attempt: int | None = None,
        message: str = "",
        data: dict[str, JsonValue] | None = None,
        store: bool = True,
    ) -> Event:
        """Publish an event and, unless ``store`` is false, append it to the event log."""
        return self.journal.emit(
            kind,
            task=task,
            task_id=task_id,
            agent_id=agent_id,
            attempt=attempt,
            message=message,
            data=data,
            store=store,
        )

    def refused(
        self, subject: str, error: ProtocolError, agent_id: str | None = None
    ) -> ErrorReply:
        """Record a refused message in the event log (bad input is never silent); the
        reply that says so to its sender."""
        self.journal.refused(subject, error, agent_id)
        return ErrorReply(code=error.code, message=error.message)

    # ------------------------------------------------------------------ tasks and attempts

    def submit(self, specs: list[TaskSpec]) -> list[str]:
        """Add a batch of tasks (a graph). All or nothing. Only a ``Delegate`` makes a
        child task: a submission naming a ``parent`` is refused."""
        return self.attempts.submit(specs)

    def delegate(self, msg: Delegate) -> Delegated:
        """The holder of a running attempt hands part of its work to the group."""
        return self.delegation.delegate(msg)

    def cancel_task(self, task_id: str, reason: str) -> TaskRecord:
        """Cancel a task that has not finished (and the review of it, if one is under way)."""
        return self.validation.cancel(task_id, reason)

    def next_offers(self, now: float) -> list[Offer]:
        """Match ready tasks to participants with free capacity; mark each one assigned."""
        return self.matcher.next_offers(now)

    def next_retry(self) -> float | None:
        """Earliest monotonic time a backed-off ready task may be offered again."""
        return self.matcher.next_retry()

    def offer_accepted(self, task_id: str, attempt: int, agent_id: str) -> None:
        """The participant accepted: the attempt runs."""
        self.attempts.offer_accepted(task_id, attempt, agent_id)

    def offer_refused(
        self, task_id: str, attempt: int, agent_id: str, outcome: AttemptOutcome, reason: str
    ) -> None:
        """The participant declined, or did not reply in time: try the next candidate."""
        self.attempts.offer_refused(task_id, attempt, agent_id, outcome, reason)

    def decline(self, msg: Decline) -> None:
        """A credit agent cannot take an attempt pushed to it (``hub_decline``)."""
        self.credit.decline(msg)

    def offer_undeliverable(self, task_id: str, attempt: int, agent_id: str, reason: str) -> None:
        """The offer cannot be sent at all: the task fails."""
        self.attempts.offer_undeliverable(task_id, attempt, agent_id, reason)

    def progress(self, msg: Progress) -> None:
        """Progress or a log line from the holder: resets the stall timer."""
        self.attempts.progress(msg)

    def result(self, msg: Result) -> ResultAck:
        """A result (see the module docstring for its path)."""
        return self.attempts.result(msg)

    def results(self, msg: Results) -> ResultAcks:
        """Several results of one agent: each taken, or refused and recorded, exactly as if
        it had come alone. A batch naming another agent in any result is refused whole."""
        strays = {r.agent_id for r in msg.results} - {msg.agent_id}
        if strays:
            raise ProtocolError(
                ErrorCode.FORBIDDEN,
                f"results from {msg.agent_id} may not carry results of {sorted(strays)}",
            )
        where = subjects.hub_results(self.group, subjects.ANY)
        acks: list[ResultAck | ErrorReply] = []
        for one in msg.results:
            try:
                acks.append(self.attempts.result(one))
            except ProtocolError as exc:
                acks.append(self.refused(where, exc, one.agent_id))
        return ResultAcks(acks=acks)

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
        self.validation.judge_verdict(
            task_id, attempt, by=by, accepted=accepted, reasons=reasons, usage=usage
        )

    # ------------------------------------------------------------------ humans

    def check_human(self, who: str | None, what: str) -> None:
        """Refuse ``what`` (``forbidden``) when ``who`` is a known agent."""
        self.humans.check_human(who, what)

    def decide(self, msg: DecideTask) -> TaskRecord:
        """A human approves or rejects a result waiting in ``needs_human``."""
        return self.humans.decide(msg)

    def reassign(self, msg: ReassignTask) -> TaskRecord:
        """Take a task back from its holder (no failure counted) and offer it again."""
        return self.humans.reassign(msg)

    def claim(self, msg: ClaimTask) -> TaskRecord:
        """A participant takes a ready task: it is offered to them next."""
        return self.humans.claim(msg)

    def set_mode(self, msg: SetAgentMode) -> AgentRecord:
        """Pause, resume or drain a participant."""
        return self.humans.set_mode(msg)

    def chat(self, msg: PostChat) -> None:
        """A line in the group's shared channel."""
        self.humans.chat(msg)

    # ------------------------------------------------------------------ goals

    def submit_goal(self, msg: SubmitGoal) -> GoalRecord:
        """A new goal: run its given plan, or ask the coordinator model for one."""
        return self.planner.submit(msg)

    def plan_ready(
        self, goal_id: str, plan: Plan | None, problem: str, usage: Usage, answer: str
    ) -> None:
        """The coordinator model answered (``plan`` None: unusable, ``problem`` says why)."""
        self.planner.plan_ready(goal_id, plan, problem, usage, answer)

    def plan_failed(self, goal_id: str, reason: str) -> None:
        """The coordinator model cannot be asked: the goal fails."""
        self.planner.plan_failed(goal_id, reason)

    def decide_plan(self, msg: DecidePlan) -> GoalRecord:
        """A human approves (maybe an edited plan) or rejects a plan."""
        return self.planner.decide_plan(msg)

    def cancel_goal(self, msg: CancelGoal) -> GoalRecord:
        """Stop a goal and every open task of it."""
        return self.planner.cancel(msg)

    def find_goal(self, goal_id: str) -> GoalRecord:
        """The goal, or ``unknown_task``."""
        return self.planner.find(goal_id)

    def goal_status(self, goal: GoalRecord) -> GoalStatus:
        """The wire view of one goal."""
        return self.planner.status(goal)

    def group_skills(self) -> dict[str, float]:
        """Every skill of the group's known participants, with its highest level."""
        return self.planner.group_skills()

    def group_usage(self) -> Usage:
        """Model usage of the whole group: every task (judging included), plus planning."""
        return self.planner.group_usage()

    # ------------------------------------------------------------------ participants

    def lost_after(self) -> float:
        """Seconds of silence after which a participant is lost."""
        return self.participants.lost_after()

    def register(self, msg: Register, credential: str | None = None) -> RegisterAck:
        """A participant joins, or re-joins after a reconnect (``credential``: the token id
        that sent it, when the bus vouches for senders)."""
        return self.participants.register(msg, credential)

    def heartbeat(self, msg: Heartbeat) -> None:
        """A heartbeat: the participant is alive."""
        self.participants.heartbeat(msg)

    def deregister(self, msg: Deregister) -> None:
        """A participant leaves on purpose; what it held goes back to ready."""
        self.participants.deregister(msg)

    def agent_lost(self, agent_id: str, reason: str) -> None:
        """A participant is gone (missed beats, closed connection): revoke all it held."""
        self.participants.lost(agent_id, reason)

    def agent_unreachable(self, agent_id: str, reason: str) -> None:
        """Offers cannot reach a participant: lost until it registers again."""
        self.participants.unreachable(agent_id, reason)

    def sweep(self) -> None:
        """The lease watcher's pass: lost, stalled, timed out, deadlines."""
        self.watcher.sweep()

    # ------------------------------------------------------------------ recovery

    def load(
        self,
        tasks: Iterable[TaskRecord],
        agents: Iterable[AgentRecord],
        last_seq: int,
        goals: Iterable[GoalRecord] = (),
    ) -> None:
        """Rebuild the board from what the store kept, after a restart."""
        recover(
            self.state,
            self.journal,
            self.attempts,
            self.validation,
            self.planner,
            self.delegation,
            tasks=tasks,
            agents=agents,
            last_seq=last_seq,
            goals=goals,
            grace=(
                2 * self.settings.heartbeat_interval
                if self.settings.recovery_grace is None
                else self.settings.recovery_grace
            ),
            confirm_within=self.participants.lost_after(),
        )
