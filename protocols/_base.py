"""The base of every wire model: strict, versioned, JSON-friendly."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

#: Every message type starts with this prefix; the version is part of the name.
TYPE_PREFIX = "claw.v1."

#: An identifier that is safe as one NATS subject token.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
ID_RE = re.compile(ID_PATTERN)

#: A skill name: lower case, dots allowed for namespacing (``code.python``).
SKILL_PATTERN = r"^[a-z0-9][a-z0-9_.+-]{0,63}$"

#: The integer range every store and most languages keep (signed 64 bits): the codec
#: refuses an integer outside it on every path.
MAX_INT = 2**63 - 1
MIN_INT = -(2**63)

Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
SkillName = Annotated[str, StringConstraints(pattern=SKILL_PATTERN)]
Level = Annotated[float, Field(ge=0.0, le=1.0)]
Timestamp = Annotated[float, Field(ge=0.0, description="Seconds since the Unix epoch (UTC).")]

Device = Literal["laptop", "mobile", "cloud", "server", "other"]
Kind = Literal["agent", "human"]
Clearance = Literal["public", "internal", "private"]

#: Order of data clearances: an agent may see data at or below its clearance.
CLEARANCE_RANK: dict[str, int] = {"public": 0, "internal": 1, "private": 2}


class WireModel(BaseModel):
    """Base of every message: unknown fields are refused, never silently dropped. Its
    validator is built on first use (``defer_build``; see ``protocols.build``)."""

    model_config = ConfigDict(extra="forbid", frozen=False, populate_by_name=True, defer_build=True)


W = TypeVar("W", bound=BaseModel)
_set = object.__setattr__


def trusted(model: type[W], values: dict[str, Any]) -> W:
    """A message the hub builds itself from values it already holds, without validation:
    about a third of the cost of ``model(**values)``, the same object (``==``, the same
    ``encode`` bytes). ``values`` names every field of ``model`` in declaration order, each
    already what validation would make of it (a fresh ``dict`` for a dict field); the
    ``type`` discriminator counts as a default, as when validated. For the hub's hottest
    messages only (its events, candidate scores), where every value comes from validated
    records; ``tests/test_codec.py`` checks them against validated ones."""
    message = model.__new__(model)
    fields = set(values)
    fields.discard("type")
    _set(message, "__dict__", values)
    _set(message, "__pydantic_fields_set__", fields)
    _set(message, "__pydantic_extra__", None)
    _set(message, "__pydantic_private__", None)
    return message


def is_identifier(value: str) -> bool:
    """True when ``value`` may be used as an agent, task or group id."""
    return ID_RE.match(value) is not None
