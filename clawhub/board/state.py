"""What one group's board holds (``GroupState``) and how it records what happens
(``Journal``). Every collaborator of the board shares one of each. No I/O.

``GroupState`` keeps the records (tasks, participants, goals) and the indexes that must move
in step with them: the ready queue the matcher reads, the held attempts the lease watcher
reads, the deadlines, the skill index and ladder. ``GroupState.move`` is the one place a
task changes state, so those indexes can never disagree with the records.
"""

from __future__ import annotations

import heapq
import time

from pydantic import JsonValue

from protocols import ErrorCode, Event, ProtocolError, TaskState, type_name
from protocols._base import trusted

from .lifecycle import HELD, transition
from .matching import Ladder, SkillIndex
from .plans import GoalRecord
from .records import AgentRecord, AgentTable, TaskRecord
from .rows import EVENTS, Write, dumps
from .sink import Sink

S = TaskState
EVENT = type_name(Event)


class GroupState:
    """The records of one group and the indexes kept in step with them."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.tasks: dict[str, TaskRecord] = {}
        self.ladder = Ladder()
        self.agents: dict[str, AgentRecord] = AgentTable(self.rerank)
        self.goals: dict[str, GoalRecord] = {}
        self.index = SkillIndex()
        self.ready: dict[str, TaskRecord] = {}
        self.queue: list[tuple[int, int, str]] = []
        """``(-priority, seq, id)`` of ready tasks, a heap; entries of tasks no longer
        ready are dropped when they come up."""
        self.backoff: dict[str, TaskRecord] = {}
        """Ready tasks that every candidate declined, waiting for ``not_before``."""
        self.active: dict[str, TaskRecord] = {}
        """Tasks a participant holds (assigned or running): what the lease watcher checks."""
        self.deadlines: dict[str, TaskRecord] = {}
        self.task_seq = 0
        self.goal_seq = 0
        self.bus_up = True
        self.recovering_until = 0.0
        """After a restart or takeover (``recover``), until this monotonic time: nothing is
        offered, so that participants still running attempts the old hub sent but did not
        record can claim them in their heartbeats (``Attempts.claim``)."""
        self.held_over: list[str] = []
        """Tasks that were being offered when the old hub stopped: their holders may have
        accepted; they keep them if they say so before ``recovering_until``."""
        """False while the hub is cut off from NATS: nobody is judged lost meanwhile."""

    def rerank(self, agent: AgentRecord) -> None:
        """A participant changed in a way that can move it on the matcher's ladder."""
        online = agent.state == "online"
        self.ladder.update(agent.profile, agent.load, agent.reliability, online, agent.takes_work)

    def task(self, task_id: str) -> TaskRecord:
        """The task, or ``unknown_task``."""
        rec = self.tasks.get(task_id)
        if rec is None:
            raise ProtocolError(ErrorCode.UNKNOWN_TASK, f"no task {task_id}")
        return rec

    def current(self, task_id: str, attempt: int, agent_id: str) -> TaskRecord | None:
        """The task, if ``agent_id`` holds its ``attempt`` right now."""
        rec = self.tasks.get(task_id)
        if (
            rec is None
            or rec.attempt != attempt
            or rec.assigned_to != agent_id
            or rec.state not in HELD
        ):
            return None
        return rec

    def enqueue(self, rec: TaskRecord) -> None:
        """Add a ready task to the matcher's queue."""
        if rec.id not in self.ready:
            heapq.heappush(self.queue, (-rec.spec.priority, rec.seq, rec.id))
        self.ready[rec.id] = rec

    def move(self, rec: TaskRecord, dst: TaskState) -> None:
        """Move a task to ``dst`` (a lifecycle transition) and keep the indexes in step."""
        rec.state = transition(rec.id, rec.state, dst)
        if dst is S.READY:
            self.enqueue(rec)
            self.sink.wake()
        else:
            self.ready.pop(rec.id, None)
        if dst in HELD:
            self.active[rec.id] = rec
        else:
            self.active.pop(rec.id, None)
        if dst.terminal:
            self.deadlines.pop(rec.id, None)


class Journal:
    """What the board records: events (published, and appended to the event log) and the
    rows to keep, all handed to the ``Sink``."""

    def __init__(self, group: str, sink: Sink) -> None:
        self.group = group
        self.sink = sink
        self.seq = 0
        """Sequence number of the last event appended to the log."""

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
        seq = 0
        if store:
            self.seq += 1
            seq = self.seq
        event = trusted(  # every value from the board's validated records: no validation
            Event,
            {
                "type": EVENT,
                "seq": seq,
                "ts": time.time(),
                "kind": kind,
                "task_id": task.id if task else task_id,
                "agent_id": agent_id,
                "attempt": attempt if attempt is not None else (task.attempt if task else None),
                "state": task.state.value if task else None,
                "message": message,
                "data": dict(data) if data else {},
            },
        )
        if store:
            self.sink.write(
                Write(
                    EVENTS,
                    {
                        "group": self.group,
                        "seq": seq,
                        "ts": event.ts,
                        "kind": kind,
                        "task_id": event.task_id,
                        "agent_id": agent_id,
                        "attempt": event.attempt,
                        "state": event.state,
                        "message": message,
                        "data": dumps(event.data) if event.data else "{}",
                    },
                )
            )
        self.sink.publish(event)
        return event

    def refused(self, subject: str, error: ProtocolError, agent_id: str | None = None) -> None:
        """Record a refused message in the event log (bad input is never silent)."""
        self.emit(
            "message.refused",
            agent_id=agent_id,
            message=error.message,
            data={"subject": subject, "code": error.code.value},
        )

    def save(self, rec: TaskRecord) -> None:
        """Keep a task's latest state."""
        rec.updated_at = time.time()
        self.sink.write(rec.write(self.group))

    def save_agent(self, agent: AgentRecord) -> None:
        """Keep a participant's latest state."""
        self.sink.write(agent.write(self.group))

    def save_goal(self, goal: GoalRecord) -> None:
        """Keep a goal's latest state."""
        goal.updated_at = time.time()
        self.sink.write(goal.write(self.group))
