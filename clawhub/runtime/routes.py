"""What the hub serves and how: routes (subject, accepted messages, handler), and who sent a
refused message."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import BaseModel

from protocols import is_identifier, subjects

#: A route's handler: the request message in (and, for ``Route.with_sender``, the sender's
#: principal), the reply out (None: publish-only).
Handler = Callable[..., BaseModel | Awaitable[BaseModel] | None]

#: API verbs whose requests count against the per-requester submission rate limit.
RATE_LIMITED_VERBS = frozenset({subjects.API_SUBMIT, subjects.API_GOAL_SUBMIT})


@dataclass(frozen=True, slots=True)
class Route:
    """One subject the hub serves: the messages it accepts and the handler."""

    subject: str
    """The subscription: every sender (``claw.<g>.hub.*.<call>``, ``claw.<g>.api.*.<verb>``)."""
    models: tuple[type[BaseModel], ...]
    fn: Handler
    limited: bool = False
    verb: str | None = None
    """The API verb (None: an agent → hub call)."""
    with_sender: bool = False
    """The handler takes the sender's principal (or None) after the message."""


def sender_of(data: bytes | BaseModel) -> str | None:
    """Best-effort agent id of a refused message, for the event log."""
    if isinstance(data, BaseModel):
        data = data.model_dump_json().encode()
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):  # too deep: refused anyway
        return None
    if isinstance(obj, dict):
        profile = obj.get("profile")
        agent = obj.get("agent_id") or (profile.get("id") if isinstance(profile, dict) else None)
        if isinstance(agent, str) and len(agent) <= 64:
            return agent if is_identifier(agent) else None
    return None
