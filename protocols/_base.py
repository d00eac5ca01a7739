"""The base of every wire model: strict, versioned, JSON-friendly."""

from __future__ import annotations

import re
from typing import Annotated, Literal

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


def is_identifier(value: str) -> bool:
    """True when ``value`` may be used as an agent, task or group id."""
    return ID_RE.match(value) is not None
