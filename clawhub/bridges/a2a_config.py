"""The A2A agents ``clawhub up`` bridges: each ``--a2a-agent URL``, and the entries of the TOML
file ``--a2a-config`` (``CLAWHUB_A2A_CONFIG``) names, one ``[[agent]]`` table per agent with
the options of ``clawhub bridge a2a``::

    [[agent]]
    url = "http://127.0.0.1:9999"   # required: the agent's base URL or its card's URL
    id = "shouter"                  # default: the slug of the card's name
    name = "Shouter"                # default: the card's name
    skills = { text = 0.9 }         # levels 0..1; a card skill not named: default_level
    default_level = 0.5
    model = "openai/gpt-4o-mini"    # the model it runs, if you know it
    capacity = 1
    poll_interval = 5.0             # seconds between reads of the card
    token = "tk-....secret"         # default: the agent token the hub makes for the id

The file is read before the hub starts: anything wrong with it is one ``A2AConfigError``
that names the file, the entry and the field. No a2a-sdk here: this loads with the CLI.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocols import ID_PATTERN

from ..errors import HubError

#: What ``clawhub token list`` says of a token the hub made for a bridged agent.
TOKEN_NOTE = "A2A bridge of clawhub up"


class A2AConfigError(HubError):
    """The A2A agents to bridge are badly given (a file that is not TOML, a bad entry)."""


class A2AAgentEntry(BaseModel):
    """One A2A agent to bridge, as ``clawhub bridge a2a`` takes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1, description="The agent's base URL or its card's URL.")
    id: str | None = Field(
        default=None, pattern=ID_PATTERN, description="Participant id (default: the card's)."
    )
    name: str | None = Field(default=None, min_length=1, max_length=200)
    skills: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(default_factory=dict)
    default_level: float = Field(default=0.5, ge=0.0, le=1.0)
    model: str | None = Field(default=None, max_length=200)
    capacity: int = Field(default=1, ge=1, le=1000)
    poll_interval: float = Field(default=5.0, gt=0)
    token: str | None = Field(
        default=None, min_length=1, description="Agent token for the id (default: made)."
    )

    def options(self) -> dict[str, Any]:
        """The ``A2ABridge`` keyword arguments of the entry (all but the URL and token)."""
        return {
            "agent_id": self.id,
            "name": self.name,
            "skills": dict(self.skills),
            "default_level": self.default_level,
            "model": self.model,
            "capacity": self.capacity,
            "poll_interval": self.poll_interval,
        }


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: list[A2AAgentEntry] = Field(min_length=1)


def load_a2a_config(path: Path) -> list[A2AAgentEntry]:
    """The entries of the TOML file ``path``; ``A2AConfigError`` saying what is wrong."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise A2AConfigError(f"cannot read the A2A config {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise A2AConfigError(f"the A2A config {path} is not TOML: {exc}") from None
    try:
        return _File.model_validate(data).agent
    except ValidationError as exc:
        problems = "; ".join(_problem(e["loc"], e["msg"]) for e in exc.errors())
        raise A2AConfigError(
            f"the A2A config {path} is not right: {problems} "
            '(each agent is an [[agent]] table with url = "..."; docs/a2a-agents.md)'
        ) from None


def _problem(loc: tuple[int | str, ...], msg: str) -> str:
    """``agent 2: skills.text: Input should be ...`` (entries counted from 1)."""
    if len(loc) >= 2 and loc[0] == "agent" and isinstance(loc[1], int):
        where = ".".join(str(part) for part in loc[2:])
        return f"agent {loc[1] + 1}: {where + ': ' if where else ''}{msg}"
    return f"{'.'.join(str(part) for part in loc) or 'the file'}: {msg}"


def a2a_entries(urls: list[str], config: Path | None) -> list[A2AAgentEntry]:
    """What ``clawhub up`` bridges: each ``--a2a-agent`` URL, then the config file's entries."""
    try:
        entries = [A2AAgentEntry(url=url) for url in urls]
    except ValidationError:
        raise A2AConfigError("--a2a-agent needs the agent's URL") from None
    return entries + (load_a2a_config(config) if config is not None else [])
