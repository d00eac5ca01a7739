"""The task state machine: transitions and the pure decisions around it."""

from __future__ import annotations

import itertools

import pytest

from clawhub.errors import HubError, IllegalTransition
from clawhub.lifecycle import (
    HELD,
    after_failed_attempt,
    after_validation,
    can_transition,
    initial_state,
    transition,
)
from protocols import TaskState

S = TaskState

#: The lifecycle of the design (shared/DESIGN.md) written out by hand: every allowed ``src -> dst``.
EXPECTED: set[tuple[TaskState, TaskState]] = {
    (S.PENDING, S.READY),
    (S.PENDING, S.FAILED),
    (S.PENDING, S.CANCELLED),
    (S.READY, S.ASSIGNED),
    (S.READY, S.FAILED),
    (S.READY, S.CANCELLED),
    (S.ASSIGNED, S.RUNNING),
    (S.ASSIGNED, S.READY),
    (S.ASSIGNED, S.FAILED),
    (S.ASSIGNED, S.CANCELLED),
    (S.RUNNING, S.VALIDATING),
    (S.RUNNING, S.READY),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.CANCELLED),
    (S.VALIDATING, S.DONE),
    (S.VALIDATING, S.READY),
    (S.VALIDATING, S.FAILED),
    (S.VALIDATING, S.CANCELLED),
    (S.VALIDATING, S.NEEDS_HUMAN),
    (S.NEEDS_HUMAN, S.VALIDATING),
    (S.NEEDS_HUMAN, S.DONE),
    (S.NEEDS_HUMAN, S.READY),
    (S.NEEDS_HUMAN, S.FAILED),
    (S.NEEDS_HUMAN, S.CANCELLED),
}

ALL_PAIRS = list(itertools.product(TaskState, TaskState))


@pytest.mark.parametrize(("src", "dst"), ALL_PAIRS, ids=[f"{a}-{b}" for a, b in ALL_PAIRS])
def test_can_transition_matches_the_table(src: TaskState, dst: TaskState) -> None:
    assert can_transition(src, dst) is ((src, dst) in EXPECTED)


@pytest.mark.parametrize(("src", "dst"), sorted(EXPECTED))
def test_every_allowed_transition_returns_dst(src: TaskState, dst: TaskState) -> None:
    assert transition("t1", src, dst) is dst


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        (S.PENDING, S.ASSIGNED),
        (S.PENDING, S.DONE),
        (S.READY, S.RUNNING),
        (S.READY, S.DONE),
        (S.ASSIGNED, S.DONE),
        (S.ASSIGNED, S.VALIDATING),
        (S.RUNNING, S.DONE),
        (S.RUNNING, S.ASSIGNED),
        (S.VALIDATING, S.RUNNING),
        (S.DONE, S.READY),
        (S.FAILED, S.READY),
        (S.CANCELLED, S.READY),
        (S.READY, S.READY),
        (S.DONE, S.DONE),
    ],
)
def test_forbidden_transitions_raise(src: TaskState, dst: TaskState) -> None:
    with pytest.raises(IllegalTransition) as info:
        transition("t-42", src, dst)
    err = info.value
    assert isinstance(err, HubError)
    assert err.task_id == "t-42"
    assert err.src is src
    assert err.dst is dst
    assert f"{src.value} -> {dst.value}" in str(err)


@pytest.mark.parametrize("terminal", [S.DONE, S.FAILED, S.CANCELLED])
def test_terminal_states_have_no_way_out(terminal: TaskState) -> None:
    assert terminal.terminal
    assert not any(can_transition(terminal, dst) for dst in TaskState)


def test_only_done_failed_cancelled_are_terminal() -> None:
    assert {s for s in TaskState if s.terminal} == {S.DONE, S.FAILED, S.CANCELLED}


def test_every_open_state_can_be_cancelled_and_failed() -> None:
    for src in TaskState:
        if not src.terminal:
            assert can_transition(src, S.CANCELLED)
            assert can_transition(src, S.FAILED)


def test_held_states() -> None:
    assert frozenset({S.ASSIGNED, S.RUNNING}) == HELD


@pytest.mark.parametrize(
    ("deps", "expected"),
    [
        ([], S.READY),
        ([S.DONE], S.READY),
        ([S.DONE, S.DONE], S.READY),
        ([S.DONE, S.RUNNING], S.PENDING),
        ([S.PENDING], S.PENDING),
        ([S.READY, S.ASSIGNED, S.VALIDATING], S.PENDING),
        ([S.FAILED], S.FAILED),
        ([S.CANCELLED], S.FAILED),
        ([S.DONE, S.PENDING, S.CANCELLED], S.FAILED),
        ([S.RUNNING, S.FAILED], S.FAILED),
    ],
)
def test_initial_state(deps: list[TaskState], expected: TaskState) -> None:
    assert initial_state(deps) is expected


@pytest.mark.parametrize(
    ("failures", "max_attempts", "expected"),
    [
        (1, 3, S.READY),
        (2, 3, S.READY),
        (3, 3, S.FAILED),
        (4, 3, S.FAILED),
        (1, 1, S.FAILED),
        (0, 1, S.READY),
    ],
)
def test_after_failed_attempt(failures: int, max_attempts: int, expected: TaskState) -> None:
    assert after_failed_attempt(failures, max_attempts) is expected


@pytest.mark.parametrize(
    ("valid", "failures", "max_attempts", "expected"),
    [
        (True, 0, 3, S.DONE),
        (True, 5, 3, S.DONE),
        (False, 1, 3, S.READY),
        (False, 3, 3, S.FAILED),
        (False, 1, 1, S.FAILED),
    ],
)
def test_after_validation(
    valid: bool, failures: int, max_attempts: int, expected: TaskState
) -> None:
    assert after_validation(valid, failures, max_attempts) is expected
