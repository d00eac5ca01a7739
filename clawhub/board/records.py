"""In-memory records of tasks and participants, and their wire views and stored values (the
store maps those values to its rows: ``clawhub.store.mapping``)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import JsonValue, TypeAdapter

from protocols import (
    AgentInfo,
    AgentMode,
    AgentProfile,
    AgentState,
    AttemptInfo,
    Constraints,
    TaskRef,
    TaskSpec,
    TaskState,
    TaskStatus,
    Usage,
    Verdict,
)

from .rows import AGENTS, TASKS, Later, Write, dumps

_NO_CONSTRAINTS = Constraints()
_HISTORY = TypeAdapter(list[AttemptInfo])
_VERDICTS = TypeAdapter(list[Verdict])


@dataclass(eq=False)
class TaskRecord:
    """One task and everything the hub knows about it."""

    id: str
    seq: int
    spec: TaskSpec
    state: TaskState
    created_at: float
    updated_at: float
    attempt: int = 0
    failures: int = 0
    assigned_to: str | None = None
    output: JsonValue = None
    error: str | None = None
    history: list[AttemptInfo] = field(default_factory=list)
    excluded: set[str] = field(default_factory=set)
    declined: set[str] = field(default_factory=set)
    dependents: list[str] = field(default_factory=list)
    progress: float | None = None
    progress_message: str | None = None
    verdicts: list[Verdict] = field(default_factory=list)
    validation_step: int | None = None
    """Index (in ``validation_steps``) of the validation step under way."""
    review_task: str | None = None
    """Id of the review task judging the current output (reviewer step)."""
    usage: Usage = field(default_factory=Usage)
    pinned: str | None = None
    """Participant the next attempt must go to (claimed or reassigned to)."""
    judge_tries: int = 0
    children: list[str] = field(default_factory=list)
    """Ids of the tasks this one delegated, oldest first (rebuilt from their specs)."""
    delegated: dict[str, str] = field(default_factory=dict)
    """``"<attempt>:<key>"`` → child id: which child each ``Delegate`` of each attempt
    named (a retried request gets the same child; an attempt claims each child once)."""
    pushed: bool = False
    """The current attempt was pushed on credit (it runs without an accept; not persisted)."""
    # monotonic clocks of the current attempt (not persisted)
    unconfirmed: float = 0.0
    """A pushed attempt not yet seen running (in a heartbeat, progress or result): when its
    holder's silence makes it unanswered; 0 once confirmed, or for an offered attempt."""
    last_progress: float = 0.0
    started: float = 0.0
    not_before: float = 0.0
    spec_json: str | None = None

    @functools.cached_property
    def match_key(self) -> tuple[tuple[str, float], ...] | None:
        """Requirements as a hashable key, when skills alone decide who qualifies."""
        if self.spec.constraints != _NO_CONSTRAINTS:
            return None
        return tuple(sorted(self.spec.skills.items()))

    @property
    def current(self) -> AttemptInfo | None:
        """The latest attempt, if any."""
        return self.history[-1] if self.history else None

    def status(self) -> TaskStatus:
        """The wire view."""
        return TaskStatus(
            id=self.id,
            spec=self.spec,
            state=self.state,
            attempt=self.attempt,
            failures=self.failures,
            assigned_to=self.assigned_to,
            output=self.output,
            error=self.error,
            progress=self.progress,
            progress_message=self.progress_message,
            created_at=self.created_at,
            updated_at=self.updated_at,
            history=list(self.history),
            verdicts=list(self.verdicts),
            validation_step=self.validation_step,
            review_of=self.spec.metadata.get("review_of"),
            children=list(self.children),
            usage=self.usage,
        )

    def write(self, group: str) -> Later:
        """What the store keeps of this task, read when the writer takes it."""
        return Later(TASKS, (group, self.id), lambda: self.values(group))

    def values(self, group: str) -> dict[str, Any]:
        """The store row's values now."""
        if self.spec_json is None:
            self.spec_json = self.spec.model_dump_json()
        return {
            "group": group,
            "id": self.id,
            "seq": self.seq,
            "state": self.state.value,
            "attempt": self.attempt,
            "failures": self.failures,
            "assigned_to": self.assigned_to,
            "spec": self.spec_json,
            "output": None if self.output is None else dumps(self.output),
            "error": self.error,
            "excluded": dumps(sorted(self.excluded)),
            "history": _HISTORY.dump_json(self.history).decode(),
            "verdicts": _VERDICTS.dump_json(self.verdicts).decode(),
            "usage": self.usage.model_dump_json(),
            "extra": dumps(
                {
                    "validation_step": self.validation_step,
                    "review_task": self.review_task,
                    "pinned": self.pinned,
                    "delegated": self.delegated,
                }
            ),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


#: ``AgentRecord`` fields the matcher ranks by (a change re-ranks the participant).
_RANKED = frozenset({"profile", "state", "mode", "reliability", "held"})

Watch = Callable[["AgentRecord"], None]


class Held(dict[str, int]):
    """``AgentRecord.held``, which tells its record when it changes (load is ranked)."""

    record: AgentRecord | None = None

    def _changed(self) -> None:
        if self.record is not None:
            self.record.changed()

    def __setitem__(self, key: str, value: int) -> None:
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed()

    def pop(self, key: str, *default: Any) -> Any:
        value = super().pop(key, *default)
        self._changed()
        return value

    def popitem(self) -> tuple[str, int]:
        item = super().popitem()
        self._changed()
        return item

    def clear(self) -> None:
        super().clear()
        self._changed()

    def update(self, *args: Any, **kwargs: int) -> None:
        super().update(*args, **kwargs)
        self._changed()

    def setdefault(self, key: str, default: int) -> int:
        value = super().setdefault(key, default)
        self._changed()
        return value


class AgentTable(dict[str, "AgentRecord"]):
    """The board's participants by id: a record put here reports every change that can
    move it in the matcher's ranking to ``watch``."""

    def __init__(self, watch: Watch, records: Iterable[tuple[str, AgentRecord]] = ()) -> None:
        super().__init__()
        self.watch = watch
        for key, record in records:
            self[key] = record

    def __setitem__(self, key: str, record: AgentRecord) -> None:
        super().__setitem__(key, record)
        record.watch = self.watch
        self.watch(record)


@dataclass(eq=False)
class AgentRecord:
    """One participant as the hub sees it. Changes to the fields the matcher ranks by
    (``_RANKED``, including every change of ``held``) are reported to ``watch``."""

    profile: AgentProfile
    session: str
    state: AgentState = "online"
    reliability: float = 0.9
    completed: int = 0
    failed: int = 0
    last_seen: float = field(default_factory=time.time)
    last_beat: float = field(default_factory=time.monotonic)
    held: dict[str, int] = field(default_factory=dict)
    """task id → attempt, for every attempt offered to or run by this participant."""
    mode: AgentMode = "active"
    usage: Usage = field(default_factory=Usage)
    stalled: int = 0
    heard: bool = True
    """False for a participant loaded from the store and not heard from since the restart."""
    unreachable: bool = False
    """Lost because nobody listens on its inbox: heartbeats do not bring it back, only a new
    registration does."""
    credential: str | None = None
    """The credential (token id) that registered it, when the bus vouches for senders: only
    that credential's closed connection may mark it lost."""
    credit: bool = False
    """It registered with ``credit``: assignments are pushed to it, not offered."""
    batches: bool = False
    """It registered with ``credit`` and ``batches``: assignments pushed to it at the same
    moment may go in one ``Assignments`` message."""
    unconfirmed_pushes: int = 0
    """Pushed attempts in a row it never confirmed (``Watcher``: unreachable after a few)."""
    lent: set[str] = field(default_factory=set)
    """Held tasks whose attempt waits on the tasks it delegated: their slots are lent (not
    counted in ``load``), so a child may go to this very participant (no deadlock)."""
    watch: Watch | None = field(default=None, repr=False)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "held":
            value = value if isinstance(value, Held) else Held(value)
            value.record = self
        object.__setattr__(self, name, value)
        if name == "profile":
            self.__dict__.pop("_profile_json", None)
        if name in _RANKED:
            self.changed()

    @property
    def profile_json(self) -> str:
        """The profile as JSON (kept until the profile is replaced)."""
        cached: str | None = self.__dict__.get("_profile_json")
        if cached is None:
            cached = self.profile.model_dump_json()
            object.__setattr__(self, "_profile_json", cached)
        return cached

    def changed(self) -> None:
        """Tell the watcher (the board's matcher) that this participant may rank anew."""
        watch = self.__dict__.get("watch")
        if watch is not None:
            watch(self)

    @property
    def takes_work(self) -> bool:
        """Online, active and with free capacity."""
        return self.state == "online" and self.mode == "active" and self.free > 0

    @property
    def human(self) -> bool:
        """A person (never judged stalled: people do not send progress)."""
        return self.profile.kind == "human"

    @property
    def id(self) -> str:
        """The participant's id."""
        return self.profile.id

    @property
    def load(self) -> int:
        """Attempts held (offered or running), less those waiting on their children."""
        return len(self.held) - len(self.lent)

    @property
    def free(self) -> int:
        """Free capacity."""
        return self.profile.capacity - self.load

    def lend(self, task_id: str) -> None:
        """The held attempt of ``task_id`` waits on its children: its slot is free meanwhile."""
        if task_id in self.held and task_id not in self.lent:
            self.lent.add(task_id)
            self.changed()

    def reclaim(self, task_id: str) -> None:
        """The attempt of ``task_id`` works again (or ended): its slot counts again."""
        if task_id in self.lent:
            self.lent.discard(task_id)
            self.changed()

    def info(self) -> AgentInfo:
        """The wire view."""
        return AgentInfo(
            profile=self.profile,
            state=self.state,
            load=self.load,
            reliability=round(self.reliability, 4),
            last_seen=self.last_seen,
            running=[TaskRef(task_id=t, attempt=a) for t, a in sorted(self.held.items())],
            completed=self.completed,
            failed=self.failed,
            mode=self.mode,
            usage=self.usage,
            stalled=self.stalled,
        )

    def write(self, group: str) -> Write:
        """What the store keeps of this participant."""
        return Write(
            AGENTS,
            {
                "group": group,
                "id": self.id,
                "profile": self.profile_json,
                "session": self.session,
                "state": self.state,
                "reliability": self.reliability,
                "completed": self.completed,
                "failed": self.failed,
                "last_seen": self.last_seen,
                "mode": self.mode,
                "usage": self.usage.model_dump_json(),
                "stalled": self.stalled,
                "credential": self.credential,
            },
        )
