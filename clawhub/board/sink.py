"""What the board hands the hub: effects to carry out (``Sink``) and offers to send."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from typing import Protocol

from pydantic import JsonValue

from protocols import Cancel, ErrorCode, Event, ProtocolError, TaskSpec, ValidationStep, Verdict

from ..store.store import Row
from .records import TaskRecord

FAILED_OUTCOMES: frozenset[str] = frozenset({"rejected", "error", "lost", "stalled", "timed_out"})


class Sink(Protocol):
    """Where the board's effects go (the hub implements it)."""

    def write(self, row: Row) -> None:
        """Persist a row (in order)."""

    def publish(self, event: Event) -> None:
        """Publish an event on the bus."""

    def cancel(self, agent_id: str, message: Cancel) -> None:
        """Tell a participant to stop an attempt."""

    def wake(self) -> None:
        """Something changed that may allow new offers."""

    def judge(self, task_id: str, attempt: int, step: ValidationStep) -> None:
        """Ask the judge model for a verdict on the output of ``attempt`` (answer through
        ``Board.judge_verdict``)."""

    def plan(self, goal_id: str, feedback: str) -> None:
        """Ask the coordinator model for a plan of a goal (answer through
        ``Board.plan_ready`` / ``Board.plan_failed``); ``feedback``: what was wrong last time."""


@dataclass(frozen=True, slots=True)
class Offer:
    """An attempt the board decided to offer; the hub sends it and reports back."""

    task: TaskRecord
    agent_id: str
    attempt: int
    accept_timeout: float
    stall_timeout: float
    run_timeout: float | None
    dependency_outputs: dict[str, JsonValue]
    feedback: list[Verdict]


#: Task ids need to be unpredictable only as far as they must not collide: a generator
#: seeded from the OS once does that, without a getrandom system call per task.
_IDS = random.Random(secrets.randbits(128))


def new_task_id() -> str:
    """A fresh task id (48 random bits, as ``secrets.token_hex(6)`` gave)."""
    return f"t-{_IDS.getrandbits(48):012x}"


def topological(batch: dict[str, TaskSpec]) -> list[str]:
    """Ids of a batch with dependencies first; a cycle is refused."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        mark = state.get(node)
        if mark == 2:
            return
        if mark == 1:
            cycle = " -> ".join([*path[path.index(node) :], node])
            raise ProtocolError(ErrorCode.INVALID, f"dependency cycle: {cycle}")
        state[node] = 1
        for dep in batch[node].depends_on:
            if dep in batch:
                visit(dep, [*path, node])
        state[node] = 2
        order.append(node)

    for node in batch:
        visit(node, [])
    return order
