"""The error tree shared by every Claw Hub package.

::

    ClawHubError                  root: catch this to catch everything below
    └── ProtocolError             a message did not parse or broke a rule (has ``code``)

The hub (``clawhub.errors``) and the SDK (``agents_sdk.errors``) hang their own
subclasses below ``ClawHubError``. Error replies on the wire carry an ``ErrorCode``.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Machine-readable reason carried by every ``claw.v1.error`` reply."""

    MALFORMED = "malformed"
    """The payload is not JSON, or not a JSON object."""
    UNKNOWN_TYPE = "unknown_type"
    """The ``type`` field names no message this subject accepts."""
    INVALID = "invalid"
    """The message parsed but a field broke its schema."""
    OVERSIZE = "oversize"
    """The payload is larger than the hub's ``max_message_bytes``."""
    UNKNOWN_AGENT = "unknown_agent"
    """The agent id is not registered (or its registration was lost)."""
    WRONG_SESSION = "wrong_session"
    """The agent id is registered, but by another live session (a second process)."""
    UNKNOWN_TASK = "unknown_task"
    """No task has this id."""
    NOT_HOLDER = "not_holder"
    """The sender does not hold the task it reports on."""
    STALE_ATTEMPT = "stale_attempt"
    """The attempt number is not the task's current attempt (fencing)."""
    CONFLICT = "conflict"
    """The request clashes with the current state (duplicate id, finished task...)."""
    UNAUTHORIZED = "unauthorized"
    """No token, or a token that is unknown, malformed or revoked (gateway)."""
    FORBIDDEN = "forbidden"
    """The token's role or group does not allow this (another group, another participant,
    a human-only action such as approve, reassign or cancel)."""
    RATE_LIMITED = "rate_limited"
    """Too many submissions from this participant; slow down and retry."""
    UNAVAILABLE = "unavailable"
    """The hub could not make the request durable (its store failed): nothing was applied;
    send it again later."""
    INTERNAL = "internal"
    """The hub failed while handling the request; the request was not applied."""


class ClawHubError(Exception):
    """Root of every error raised by Claw Hub code."""


class ProtocolError(ClawHubError):
    """A message was refused. ``code`` says why, ``message`` says it for humans."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
