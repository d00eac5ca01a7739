"""The event stream: every state change, published live and kept in the event log."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, JsonValue

from ._base import Identifier, Timestamp, WireModel


class Event(WireModel):
    """Hub → everyone (publish on ``events``): something happened.

    ``kind`` is dotted: ``task.submitted``, ``task.ready``, ``task.assigned``,
    ``task.running``, ``task.progress``, ``task.validating``, ``task.done``,
    ``task.retry``, ``task.failed``, ``task.cancelled``, ``task.revoked``,
    ``agent.registered``, ``agent.lost``, ``agent.left``, ``message.refused``...

    ``kind`` says what happened, ``state`` where the task stands after it; steps taken at
    once share one event: ``task.submitted`` with state ``ready`` (no dependency waits),
    ``task.assigned`` with state ``running`` (pushed on credit), ``task.done`` straight
    from ``running`` (nothing to validate). ``attempt_runs`` tells when an attempt started.
    """

    type: Literal["claw.v1.event"] = "claw.v1.event"
    seq: int = Field(ge=0, description="Position in the hub's event log (0 = not stored).")
    ts: Timestamp = Field(description="When it happened.")
    kind: str = Field(min_length=1, max_length=100, description="What happened (dotted).")
    task_id: Identifier | None = Field(default=None, description="The task concerned.")
    agent_id: Identifier | None = Field(default=None, description="The participant concerned.")
    attempt: int | None = Field(default=None, description="The attempt concerned.")
    state: str | None = Field(default=None, description="The task's state after the event.")
    message: str = Field(default="", description="Human-readable summary.")
    data: dict[str, JsonValue] = Field(default_factory=dict, description="Details.")


def attempt_runs(kind: str, state: str | None) -> bool:
    """Whether an event (its ``kind`` and ``state``) says an attempt started running:
    ``task.running``, or a pushed attempt's ``task.assigned`` in state ``running``."""
    return kind == "task.running" or (kind == "task.assigned" and state == "running")
