"""The hub's errors.

::

    protocols.ClawHubError
    ├── protocols.ProtocolError      a message was refused (has ``code``)
    └── HubError                     the hub itself could not do something
        ├── BusError                 the embedded nats-server would not start, or NATS is gone
        ├── StoreError               the store could not be opened or written
        └── IllegalTransition        a lifecycle transition that the state machine forbids
"""

from __future__ import annotations

from protocols import ClawHubError, TaskState


class HubError(ClawHubError):
    """Root of the hub's own errors."""


class BusError(HubError):
    """The embedded nats-server would not start, or the bus is unreachable."""


class StoreError(HubError):
    """The store could not be opened or written."""


class IllegalTransition(HubError):
    """A task state change that the lifecycle forbids."""

    def __init__(self, task_id: str, src: TaskState, dst: TaskState) -> None:
        super().__init__(f"task {task_id}: {src.value} -> {dst.value} is not allowed")
        self.task_id = task_id
        self.src = src
        self.dst = dst
