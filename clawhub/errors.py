"""The hub's errors.

::

    protocols.ClawHubError
    ├── protocols.ProtocolError      a message was refused (has ``code``)
    │   └── TokenError               a token was missing, malformed, unknown or revoked
    └── HubError                     the hub itself could not do something
        ├── BusError                 the embedded nats-server would not start, or NATS is gone
        ├── StoreError               the store could not be opened or written
        ├── IllegalTransition        a lifecycle transition that the state machine forbids
        ├── ModelUnavailable         the coordinator model cannot be called (no API key)
        ├── RequestRefused           the hub answered a CLI request with an ErrorReply (``code``)
        └── CallerRefused            the gateway refused a REST caller's token (``error``)
"""

from __future__ import annotations

from protocols import ClawHubError, ErrorCode, ProtocolError, TaskState


class HubError(ClawHubError):
    """Root of the hub's own errors."""


class BusError(HubError):
    """The embedded nats-server would not start, or the bus is unreachable."""


class StoreError(HubError):
    """The store could not be opened or written."""


class Fenced(StoreError):
    """A write by a replica that no longer holds its group's lease (another took over with a
    newer epoch): refused by the store, so a deposed replica cannot change anything."""


class IllegalTransition(HubError):
    """A task state change that the lifecycle forbids."""

    def __init__(self, task_id: str, src: TaskState, dst: TaskState) -> None:
        super().__init__(f"task {task_id}: {src.value} -> {dst.value} is not allowed")
        self.task_id = task_id
        self.src = src
        self.dst = dst


class ModelUnavailable(HubError):
    """The coordinator model cannot be called (no API key for its provider)."""


class TokenError(ProtocolError):
    """A token was missing, malformed, unknown or revoked (code ``unauthorized``)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.UNAUTHORIZED, message)


class RequestRefused(HubError):
    """The hub answered a request of the CLI with an ``ErrorReply``."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"refused ({code.value}): {message}")
        self.code = code
        self.reason = message


class CallerRefused(HubError):
    """The gateway refused the token of a REST caller (none, unknown, revoked, or its group
    is not served here); the app answers with ``error`` as an ``ErrorReply``."""

    def __init__(self, error: ProtocolError) -> None:
        super().__init__(error.message)
        self.error = error
