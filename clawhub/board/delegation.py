"""Delegation: the holder of a running attempt hands part of its work to the group as
child tasks (``Delegate``), and the rules that tie the children to their parent. No I/O.

============================== ===========================================================
a ``Delegate``                  fenced like a result: the current attempt, its holder, its
                                session; else refused (``stale_attempt``...) and recorded
a child's spec                  ``parent`` and ``goal`` (its budget) are the parent's; its
                                deadline is never later than the parent's; its data is at
                                least as sensitive (``data``, ``local_only``)
the same key again              the same child (a retried request makes no second one)
the same spec, a later attempt  the earlier attempt's child, unless it failed or was
                                cancelled: its result is handed over, never computed again
while a child is open           the parent's attempt is not judged stalled, and its slot
                                is lent (``AgentRecord.lend``): the matcher may give the
                                child to the parent's own participant, so a parent waiting
                                on children never holds the only slot a child needs
a child ends                    ``task.child`` on the parent's log; the last open child
                                takes the slot back (``AgentRecord.reclaim``)
the parent ends (any way)       its open children are cancelled with the reason
the parent's attempt is revoked its children run on, for the next attempt
============================== ===========================================================
"""

from __future__ import annotations

import json
from collections.abc import Callable

from protocols import (
    CLEARANCE_RANK,
    Delegate,
    Delegated,
    ErrorCode,
    ProtocolError,
    TaskSpec,
    TaskState,
)

from .attempts import Attempts
from .records import TaskRecord
from .state import GroupState, Journal

S = TaskState

#: Most children one task may have over all its attempts.
MAX_CHILDREN = 100
#: Most levels of delegation below a submitted task (a child's child's ... child).
MAX_DEPTH = 5

#: Cancel a task (``Validation.cancel``: a result under validation is settled too).
CancelTask = Callable[[str, str], TaskRecord]

#: Spec fields the hub sets on a child: not part of what makes two children the same.
_HUB_SET = frozenset({"id", "parent", "goal", "deadline", "metadata"})


def fingerprint(spec: TaskSpec) -> str:
    """What a child is asked to do, as a canonical string (two equal ones are one child)."""
    return json.dumps(spec.model_dump(mode="json", exclude=set(_HUB_SET)), sort_keys=True)


class Delegation:
    """Child tasks of running attempts, and what their parents' fates do to them."""

    def __init__(
        self,
        state: GroupState,
        journal: Journal,
        attempts: Attempts,
        cancel_task: CancelTask,
    ) -> None:
        self.state = state
        self.journal = journal
        self.attempts = attempts
        self.cancel_task = cancel_task

    # ------------------------------------------------------------------ views

    def open_children(self, rec: TaskRecord) -> list[TaskRecord]:
        """The unfinished children the current attempt of ``rec`` delegated (waits on)."""
        tasks, prefix = self.state.tasks, f"{rec.attempt}:"
        ids = {c for k, c in rec.delegated.items() if k.startswith(prefix)}
        return [tasks[c] for c in ids if c in tasks and not tasks[c].state.terminal]

    def depth(self, rec: TaskRecord) -> int:
        """How many parents are above ``rec`` (0: a submitted task)."""
        depth, parent = 0, rec.spec.parent
        while parent is not None and parent in self.state.tasks and depth <= MAX_DEPTH:
            depth += 1
            parent = self.state.tasks[parent].spec.parent
        return depth

    # ------------------------------------------------------------------ the request

    def delegate(self, msg: Delegate) -> Delegated:
        """Add the children of a running attempt (or hand back those it already has)."""
        rec = self.state.task(msg.task_id)
        if self.state.current(msg.task_id, msg.attempt, msg.agent_id) is None:
            raise self.attempts.not_current(rec, msg.attempt, msg.agent_id)
        holder = self.state.agents.get(msg.agent_id)
        if holder is not None and holder.session != msg.session:
            raise ProtocolError(
                ErrorCode.WRONG_SESSION,
                f"delegate for {rec.id} from a session of {msg.agent_id} that does not hold it",
            )
        if self.depth(rec) >= MAX_DEPTH:
            raise ProtocolError(
                ErrorCode.INVALID,
                f"task {rec.id} is {MAX_DEPTH} delegations deep: it may not delegate further",
            )
        for child in msg.children:
            bad = sorted(f for f in ("id", "parent", "goal") if getattr(child.spec, f) is not None)
            if bad:
                raise ProtocolError(
                    ErrorCode.INVALID,
                    f"child {child.key}: {', '.join(bad)} of a delegated task are set by the hub",
                )
        if rec.state is S.ASSIGNED:  # the delegate overtook the accept reply
            self.attempts.start(rec)
        specs = [self._child_spec(rec, c.spec) for c in msg.children]
        claimed = {c for k, c in rec.delegated.items() if k.startswith(f"{msg.attempt}:")}
        plan: list[tuple[str, str, bool]] = []  # (slot, child id, reused)
        new: list[TaskSpec] = []
        for child, spec in zip(msg.children, specs, strict=True):
            slot = f"{msg.attempt}:{child.key}"
            known = rec.delegated.get(slot) or next((c for s, c, _ in plan if s == slot), None)
            if known is not None:  # the same request (or the same key) again
                plan.append((slot, known, self._earlier(rec, known, msg.attempt)))
                continue
            kept = self._reusable(rec, spec, claimed)
            if kept is not None:
                claimed.add(kept)
                plan.append((slot, kept, True))
                continue
            child_id = self._new_id(rec, {n.id or "" for n in new})
            new.append(spec.model_copy(update={"id": child_id}))
            claimed.add(child_id)
            plan.append((slot, child_id, False))
        if len(rec.children) + len(new) > MAX_CHILDREN:
            raise ProtocolError(
                ErrorCode.INVALID, f"task {rec.id} may delegate at most {MAX_CHILDREN} tasks"
            )
        if new:  # all or nothing: a refused child (a bad schema...) adds none
            rec.children += self.attempts.submit(new, children=True)
        for slot, child_id, _ in plan:
            rec.delegated[slot] = child_id
        ids = [c for _, c, _ in plan]
        reused = [r for _, _, r in plan]
        handed = [i for i, r in zip(ids, reused, strict=True) if r]
        self.journal.emit(
            "task.delegated",
            task=rec,
            agent_id=msg.agent_id,
            message=f"{len(ids)} delegated: {', '.join(ids)}"
            + (f" ({len(handed)} kept from earlier attempts)" if handed else ""),
            data={"children": list(ids), "reused": list(handed)},
        )
        self._settle_wait(rec)
        self.journal.save(rec)
        return Delegated(task_id=rec.id, attempt=msg.attempt, ids=ids, reused=reused)

    def _earlier(self, rec: TaskRecord, child_id: str, attempt: int) -> bool:
        """True when ``child_id`` was first delegated by an attempt before ``attempt``."""
        first = min(
            (int(k.split(":", 1)[0]) for k, c in rec.delegated.items() if c == child_id),
            default=attempt,
        )
        return first < attempt

    def _child_spec(self, parent: TaskRecord, spec: TaskSpec) -> TaskSpec:
        """The child as the hub keeps it: linked to the parent, within its deadline, at
        least as private, on the parent's goal (its budget)."""
        ps = parent.spec
        deadline = spec.deadline
        if ps.deadline is not None and (deadline is None or deadline > ps.deadline):
            deadline = ps.deadline
        constraints = spec.constraints
        data = constraints.data
        if CLEARANCE_RANK[ps.constraints.data] > CLEARANCE_RANK[data]:
            data = ps.constraints.data
        constraints = constraints.model_copy(
            update={"data": data, "local_only": constraints.local_only or ps.constraints.local_only}
        )
        return spec.model_copy(
            update={
                "parent": parent.id,
                "goal": ps.goal,
                "deadline": deadline,
                "constraints": constraints,
                "priority": spec.priority or ps.priority,
            }
        )

    def _reusable(self, rec: TaskRecord, spec: TaskSpec, claimed: set[str]) -> str | None:
        """An earlier attempt's child asked the same, not failed, not yet claimed again."""
        want = fingerprint(spec)
        for child_id in rec.children:
            child = self.state.tasks.get(child_id)
            if (
                child is None
                or child_id in claimed
                or child.state in (S.FAILED, S.CANCELLED)
                or fingerprint(child.spec) != want
            ):
                continue
            return child_id
        return None

    def _new_id(self, rec: TaskRecord, taken: set[str]) -> str:
        n = len(rec.children) + len(taken) + 1
        while True:
            child_id = f"{rec.id[:54]}-c{n}"
            if child_id not in self.state.tasks and child_id not in taken:
                return child_id
            n += 1

    def _settle_wait(self, rec: TaskRecord) -> None:
        """Lend the holder's slot while the current attempt has open children; take it back
        when it has none."""
        holder = self.state.agents.get(rec.assigned_to or "")
        if holder is None:
            return
        if rec.state is S.RUNNING and self.open_children(rec):
            holder.lend(rec.id)
        else:
            holder.reclaim(rec.id)
        self.state.sink.wake()

    # ------------------------------------------------------------------ fates

    def task_finished(self, rec: TaskRecord) -> None:
        """``Attempts.finished`` listener: a child's end goes on its parent's log (and may
        end its wait); a parent's end cancels its open children."""
        parent = self.state.tasks.get(rec.spec.parent) if rec.spec.parent else None
        if parent is not None and not parent.state.terminal:
            self.journal.emit(
                "task.child",
                task=parent,
                message=f"child {rec.id} {rec.state.value}"
                + (f": {rec.error}" if rec.error else ""),
                data={"child": rec.id, "state": rec.state.value},
            )
            self._settle_wait(parent)
        for child_id in rec.children:
            child = self.state.tasks.get(child_id)
            if child is not None and not child.state.terminal:
                why = f"parent {rec.id} {rec.state.value}" + (f": {rec.error}" if rec.error else "")
                self.cancel_task(child_id, why[:2000])

    def waiting(self, rec: TaskRecord) -> bool:
        """True while the current attempt of ``rec`` waits on a child (not a stall)."""
        holder = self.state.agents.get(rec.assigned_to or "")
        return holder is not None and rec.id in holder.lent

    def recover(self) -> None:
        """After a restart: link children to their parents and lend the slots of running
        parents that still wait."""
        for rec in sorted(self.state.tasks.values(), key=lambda r: r.seq):
            parent = self.state.tasks.get(rec.spec.parent) if rec.spec.parent else None
            if parent is not None and rec.id not in parent.children:
                parent.children.append(rec.id)
        for rec in self.state.tasks.values():
            if rec.children and rec.state is S.RUNNING:
                self._settle_wait(rec)
