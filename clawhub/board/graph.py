"""Task ids and the order of a task graph (dependencies first). Pure."""

from __future__ import annotations

import random
import secrets

from protocols import ErrorCode, ProtocolError, TaskSpec

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
