"""The task state machine (the lifecycle in the design, shared/DESIGN.md), as pure functions."""

from __future__ import annotations

from protocols import TaskSpec, TaskState

from ..errors import IllegalTransition

S = TaskState

#: Allowed transitions. Terminal states have none.
TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    S.PENDING: frozenset({S.READY, S.FAILED, S.CANCELLED}),
    S.READY: frozenset({S.ASSIGNED, S.FAILED, S.CANCELLED}),
    S.ASSIGNED: frozenset({S.RUNNING, S.READY, S.FAILED, S.CANCELLED}),
    S.RUNNING: frozenset({S.VALIDATING, S.READY, S.FAILED, S.CANCELLED}),
    S.VALIDATING: frozenset({S.DONE, S.READY, S.FAILED, S.CANCELLED, S.NEEDS_HUMAN}),
    S.NEEDS_HUMAN: frozenset({S.VALIDATING, S.DONE, S.READY, S.FAILED, S.CANCELLED}),
    S.DONE: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}

#: States in which a participant holds the task.
HELD = frozenset({S.ASSIGNED, S.RUNNING})

#: Attempt outcomes that count against the participant (its record and reliability).
FAILED_OUTCOMES: frozenset[str] = frozenset({"rejected", "error", "lost", "stalled", "timed_out"})


def can_transition(src: TaskState, dst: TaskState) -> bool:
    """True when ``src -> dst`` is allowed."""
    return dst in TRANSITIONS[src]


def transition(task_id: str, src: TaskState, dst: TaskState) -> TaskState:
    """Return ``dst`` if ``src -> dst`` is allowed, else raise ``IllegalTransition``."""
    if not can_transition(src, dst):
        raise IllegalTransition(task_id, src, dst)
    return dst


def initial_state(dep_states: list[TaskState]) -> TaskState:
    """State of a new task given the states of the tasks it depends on."""
    if any(s in (S.FAILED, S.CANCELLED) for s in dep_states):
        return S.FAILED
    if all(s is S.DONE for s in dep_states):
        return S.READY
    return S.PENDING


def after_failed_attempt(failures: int, max_attempts: int) -> TaskState:
    """Where a task goes after an attempt that counts as failed (``failures`` includes it)."""
    return S.FAILED if failures >= max_attempts else S.READY


def needs_validation(spec: TaskSpec) -> bool:
    """Whether a result of ``spec`` has checks to pass (steps or an output schema); without
    any, a good result is done at once and ``validating`` is never announced."""
    return bool(spec.validation) or spec.output_schema is not None
