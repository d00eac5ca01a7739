"""What the hub serves and how: routes (subject, accepted messages, handler), who sent a
refused message, and the garbage-collector set-up of a hub process."""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass

from pydantic import BaseModel

from protocols import is_identifier, subjects

from .api import Handler

#: API verbs whose requests count against the per-requester submission rate limit.
RATE_LIMITED_VERBS = frozenset({subjects.API_SUBMIT, subjects.API_GOAL_SUBMIT})


@dataclass(frozen=True, slots=True)
class Route:
    """One subject the hub serves: the messages it accepts and the handler."""

    subject: str
    models: tuple[type[BaseModel], ...]
    fn: Handler
    limited: bool = False


#: Allocations between two collections of the youngest generation (CPython: 700), and how
#: many of those before the older generations are collected (10, 10).
GC_THRESHOLDS = (20_000, 10, 10)


def tune_gc() -> None:
    """Set up the garbage collector for a process that serves a hub (``clawhub up`` calls
    it once the hub is started): what is loaded by then is frozen (never scanned again), and
    young collections run every 20,000 allocations instead of 700. The hub allocates a few
    hundred small objects per task; with CPython's defaults, collections took ~15% of its
    CPU under load (bench throughput: 523 -> 430 us of hub CPU per task)."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def sender_of(data: bytes | BaseModel) -> str | None:
    """Best-effort agent id of a refused message, for the event log."""
    if isinstance(data, BaseModel):
        data = data.model_dump_json().encode()
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(obj, dict):
        profile = obj.get("profile")
        agent = obj.get("agent_id") or (profile.get("id") if isinstance(profile, dict) else None)
        if isinstance(agent, str) and len(agent) <= 64:
            return agent if is_identifier(agent) else None
    return None
