"""An in-memory view of one Claw Group: what the screens show, with no I/O.

``GroupSession`` (``session.py``) feeds it from the hub (polling plus the live event stream);
the screens read it and never talk to the hub themselves. Everything here is plain data and
pure derivations, so it can be built from a fixed data set (the snapshot tests do).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import JsonValue

from protocols import (
    AgentInfo,
    Event,
    GoalStatus,
    GroupInfo,
    TaskSpec,
    TaskState,
    TaskStatus,
    Verdict,
)

#: What an agent is doing, as the agents table shows it.
Activity = Literal["idle", "busy", "stalled", "away", "lost", "left"]

#: An agent whose latest attempt stalled this recently (seconds) shows as ``stalled``.
STALL_WINDOW = 300.0

#: The board lists tasks in this order of state (the work that needs a human first).
STATE_ORDER: tuple[TaskState, ...] = (
    TaskState.NEEDS_HUMAN,
    TaskState.RUNNING,
    TaskState.ASSIGNED,
    TaskState.VALIDATING,
    TaskState.READY,
    TaskState.PENDING,
    TaskState.FAILED,
    TaskState.DONE,
    TaskState.CANCELLED,
)

#: Board filters, cycled with ``f``: a name and the states it shows (empty: all).
BOARD_FILTERS: tuple[tuple[str, frozenset[TaskState]], ...] = (
    ("all", frozenset()),
    ("open", frozenset(s for s in TaskState if not s.terminal)),
    ("needs_human", frozenset({TaskState.NEEDS_HUMAN})),
    ("ready", frozenset({TaskState.READY, TaskState.PENDING})),
    ("running", frozenset({TaskState.ASSIGNED, TaskState.RUNNING, TaskState.VALIDATING})),
    ("done", frozenset({TaskState.DONE})),
    ("failed", frozenset({TaskState.FAILED, TaskState.CANCELLED})),
)


@dataclass
class ChatLine:
    """One line of the group's shared channel."""

    ts: float
    sender: str
    text: str
    task_id: str | None = None
    seq: int = 0


@dataclass
class WorkItem:
    """A task offered to this human and accepted: it waits until they submit a result."""

    task_id: str
    attempt: int
    spec: TaskSpec
    received: float
    dependency_outputs: dict[str, JsonValue] = field(default_factory=dict)
    feedback: list[Verdict] = field(default_factory=list)
    """Rejections of earlier attempts: what to fix."""


def local_clock(ts: float) -> str:
    """``HH:MM:SS`` in local time."""
    return time.strftime("%H:%M:%S", time.localtime(ts))


def utc_clock(ts: float) -> str:
    """``HH:MM:SS`` in UTC (stable pictures in tests)."""
    return time.strftime("%H:%M:%S", time.gmtime(ts))


def age_text(seconds: float) -> str:
    """A short age: ``3s``, ``4m``, ``2h``, ``5d``."""
    seconds = max(0.0, seconds)
    if seconds < 100:
        return f"{seconds:.0f}s"
    if seconds < 100 * 60:
        return f"{seconds / 60:.0f}m"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def skills_text(skills: dict[str, float]) -> str:
    """``python 0.9, review 0.6`` (highest first)."""
    ordered = sorted(skills.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{name} {level:.1f}" for name, level in ordered)


def parse_skills(text: str) -> dict[str, float]:
    """``"python=0.8, review"`` → ``{"python": 0.8, "review": 0.5}``; ``ValueError`` if bad."""
    skills: dict[str, float] = {}
    for raw in text.replace(";", ",").split(","):
        part = raw.strip()
        if not part:
            continue
        name, sep, level = part.partition("=")
        try:
            value = float(level) if sep else 0.5
        except ValueError:
            raise ValueError(
                f"skill level of {name.strip()!r} is not a number: {level!r}"
            ) from None
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"skill level of {name.strip()!r} must be within 0..1")
        skills[name.strip().lower()] = value
    return skills


class GroupModel:
    """The group as the TUI knows it. Call ``touch`` after changes to tell the listeners."""

    def __init__(
        self,
        group: str = "default",
        me: str | None = None,
        *,
        clock: Callable[[], float] = time.time,
        clock_text: Callable[[float], str] = local_clock,
        max_events: int = 1000,
        max_chat: int = 500,
    ) -> None:
        self.group = group
        self.me = me
        """The human participant's id (None: watching only)."""
        self.clock = clock
        self.clock_text = clock_text
        self.agents: dict[str, AgentInfo] = {}
        self.tasks: dict[str, TaskStatus] = {}
        self.goals: dict[str, GoalStatus] = {}
        self.info: GroupInfo | None = None
        self.events: deque[Event] = deque(maxlen=max_events)
        self.chat: deque[ChatLine] = deque(maxlen=max_chat)
        self.work: dict[str, WorkItem] = {}
        """This human's work items by task id."""
        self.logs: dict[str, list[Event]] = {}
        """Stored event log of tasks whose detail was opened."""
        self.status: str = "not connected"
        self.connected = False
        self.version = 0
        self.events_added = 0
        """Events appended so far (the events panel writes the ones it has not shown)."""
        self.chat_added = 0
        """Chat lines appended so far."""
        self._seen_seq: set[int] = set()
        self._listeners: list[Callable[[], None]] = []

    # -- change notification ----------------------------------------------------------------

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every ``touch``."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[], None]) -> None:
        """Stop calling ``listener``."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def touch(self) -> None:
        """Mark the model changed and tell the listeners."""
        self.version += 1
        for listener in list(self._listeners):
            listener()

    # -- feeding ----------------------------------------------------------------------------

    def set_agents(self, agents: Iterable[AgentInfo]) -> bool:
        """Replace the participants; True if anything but a heartbeat time changed (the
        clock tick redraws heartbeat ages on its own)."""
        new = {a.profile.id: a for a in agents}
        old, self.agents = self.agents, new
        if old.keys() != new.keys():
            return True
        return any(_beat_aside(old[k]) != _beat_aside(a) for k, a in new.items())

    def set_agent(self, agent: AgentInfo) -> None:
        """Add or update one participant."""
        self.agents[agent.profile.id] = agent

    def set_tasks(self, tasks: Iterable[TaskStatus]) -> bool:
        """Replace the tasks; True if any changed."""
        new = {t.id: t for t in tasks}
        old, self.tasks = self.tasks, new
        return old != new

    def set_task(self, task: TaskStatus) -> None:
        """Add or update one task (an older status never replaces a newer one)."""
        old = self.tasks.get(task.id)
        if old is None or task.updated_at >= old.updated_at:
            self.tasks[task.id] = task

    def set_goals(self, goals: Iterable[GoalStatus]) -> bool:
        """Replace the goals; True if any changed."""
        new = {g.id: g for g in goals}
        old, self.goals = self.goals, new
        return old != new

    def set_goal(self, goal: GoalStatus) -> None:
        """Add or update one goal."""
        self.goals[goal.id] = goal

    def add_event(self, event: Event) -> bool:
        """Append an event (a stored one only once); a ``chat.message`` also joins the chat.
        False if it was already there."""
        if event.seq:
            if event.seq in self._seen_seq:
                return False
            self._seen_seq.add(event.seq)
            if len(self._seen_seq) > 4 * (self.events.maxlen or 1000):
                self._seen_seq = {e.seq for e in self.events if e.seq}
        if event.kind != "task.progress":
            self.events.append(event)
            self.events_added += 1
        if event.kind == "chat.message":
            self.chat_added += 1
            self.chat.append(
                ChatLine(
                    ts=event.ts,
                    sender=event.agent_id or "?",
                    text=event.message,
                    task_id=event.task_id,
                    seq=event.seq,
                )
            )
        return True

    def set_log(self, task_id: str, events: list[Event]) -> None:
        """The stored event log of one task."""
        self.logs[task_id] = events

    # -- derived views ----------------------------------------------------------------------

    def agent_name(self, agent_id: str | None) -> str:
        """Display name of a participant (its id if unknown)."""
        if agent_id is None:
            return "-"
        info = self.agents.get(agent_id)
        return info.profile.name if info else agent_id

    def activity(self, agent: AgentInfo) -> Activity:
        """idle, busy, stalled (its latest attempt stalled recently), away, lost or left."""
        if agent.state == "lost":
            return "lost"
        if agent.state == "away":
            return "away"
        if agent.state == "left":
            return "left"
        latest = self.latest_attempt_of(agent.profile.id)
        if (
            latest is not None
            and latest[1] == "stalled"
            and self.clock() - latest[0] < STALL_WINDOW
            and agent.load == 0
        ):
            return "stalled"
        return "busy" if agent.load > 0 else "idle"

    def latest_attempt_of(self, agent_id: str) -> tuple[float, str] | None:
        """(when it ended or was offered, outcome) of the newest attempt ``agent_id`` held."""
        best: tuple[float, str] | None = None
        for task in self.tasks.values():
            for att in task.history:
                if att.agent_id != agent_id:
                    continue
                when = att.ended_at or att.started_at or att.offered_at
                if best is None or when > best[0]:
                    best = (when, att.outcome)
        return best

    def heartbeat_age(self, agent: AgentInfo) -> float:
        """Seconds since the hub last heard from the participant."""
        return max(0.0, self.clock() - agent.last_seen)

    def agent_list(self) -> list[AgentInfo]:
        """Participants: online first, then by name."""
        rank = {"online": 0, "away": 1, "lost": 2, "left": 3}
        return sorted(
            self.agents.values(),
            key=lambda a: (rank.get(a.state, 3), a.profile.name.lower(), a.profile.id),
        )

    def board(self, states: frozenset[TaskState] = frozenset(), text: str = "") -> list[TaskStatus]:
        """Tasks in ``states`` (all if empty) whose id, title, skills or holder contain
        ``text``: by state (``STATE_ORDER``), then higher priority, then older first."""
        needle = text.strip().lower()
        order = {s: i for i, s in enumerate(STATE_ORDER)}
        rows = []
        for task in self.tasks.values():
            if states and task.state not in states:
                continue
            if needle and needle not in self._haystack(task):
                continue
            rows.append(task)
        rows.sort(key=lambda t: (order[t.state], -t.spec.priority, t.created_at, t.id))
        return rows

    def _haystack(self, task: TaskStatus) -> str:
        holder = self.agent_name(task.assigned_to) if task.assigned_to else ""
        parts = [task.id, task.spec.title, holder, task.assigned_to or "", *task.spec.skills]
        return " ".join(parts).lower()

    def counts(self) -> dict[TaskState, int]:
        """Tasks by state (only states with tasks), in ``STATE_ORDER``."""
        found: dict[TaskState, int] = {}
        for task in self.tasks.values():
            found[task.state] = found.get(task.state, 0) + 1
        return {s: found[s] for s in STATE_ORDER if s in found}

    def waiting_for_humans(self) -> list[TaskStatus]:
        """Tasks whose result waits for a human decision."""
        return self.board(frozenset({TaskState.NEEDS_HUMAN}))

    def my_work(self) -> list[WorkItem]:
        """This human's work items, oldest first."""
        return sorted(self.work.values(), key=lambda w: (w.received, w.task_id))

    def task_events(self, task_id: str) -> list[Event]:
        """A task's events: the stored log if loaded, plus live ones not in it."""
        stored = self.logs.get(task_id, [])
        seen = {e.seq for e in stored if e.seq}
        live = [e for e in self.events if e.task_id == task_id and e.seq and e.seq not in seen]
        return sorted([*stored, *live], key=lambda e: (e.seq, e.ts))

    def goal_list(self) -> list[GoalStatus]:
        """Goals, newest first."""
        return sorted(self.goals.values(), key=lambda g: (-g.created_at, g.id))


def _beat_aside(agent: AgentInfo) -> AgentInfo:
    """``agent`` with its heartbeat time set aside, to compare what else changed."""
    return agent.model_copy(update={"last_seen": 0.0})


#: Actions on the selected task (the app dims the keys of those that do not apply).
TASK_ACTIONS = frozenset(
    {"approve", "reject", "take", "reassign", "cancel_task", "submit_result", "hand_back"}
)

#: Task states a reassign does not apply to (the result is being judged).
NOT_REASSIGNABLE = frozenset({TaskState.VALIDATING, TaskState.NEEDS_HUMAN})


def why_not(
    model: GroupModel,
    action: str,
    *,
    task_id: str | None = None,
    agent_id: str | None = None,
    goal_id: str | None = None,
) -> str | None:
    """Why the app's ``action`` cannot apply to the selected task, agent or goal (None: it
    can). The hub has the last word; this only spares the human a request bound to fail."""
    if action in TASK_ACTIONS:
        task = model.tasks.get(task_id) if task_id else None
        if action in ("submit_result", "hand_back"):
            return None if task_id in model.work else "select one of your work items (tab 3)"
        if task is None:
            return "select a task first (tab 1)"
        state = task.state.value
        if action in ("approve", "reject") and task.state is not TaskState.NEEDS_HUMAN:
            return f"{task.id} is {state}: only a result waiting for a human is decided"
        if action == "take" and task.state is not TaskState.READY:
            return f"{task.id} is {state}: only a ready task can be taken"
        if action == "take" and task.id in model.work:
            return f"{task.id} is already yours"
        if action == "reassign" and (task.state.terminal or task.state in NOT_REASSIGNABLE):
            return f"{task.id} is {state}: nothing to reassign"
        if action == "cancel_task" and task.state.terminal:
            return f"{task.id} is {state} already"
        return None
    if action in ("pause_agent", "drain_agent"):
        agent = model.agents.get(agent_id) if agent_id else None
        if agent is None:
            return "select an agent first (tab 2)"
        return None if agent.state == "online" else f"{agent.profile.name} is {agent.state}"
    if action in ("approve_plan", "reject_plan"):
        goal = model.goals.get(goal_id) if goal_id else None
        if goal is None:
            return "select a goal first (tab 6)"
        if goal.state != "awaiting_approval":
            return f"goal {goal.id} is {goal.state}: no plan waits for approval"
    return None
