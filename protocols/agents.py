"""Participants: profiles, registration, heartbeats."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ._base import (
    Clearance,
    Device,
    Identifier,
    Kind,
    Level,
    SkillName,
    Timestamp,
    WireModel,
)
from .usage import Usage

AgentState = Literal["online", "away", "lost", "left"]

#: ``active`` takes new work; ``paused`` takes none (what it holds runs on); ``draining``
#: takes none and leaves the group once what it holds is finished.
AgentMode = Literal["active", "paused", "draining"]


class TaskRef(WireModel):
    """One attempt of one task, as an agent holds it."""

    task_id: Identifier = Field(description="The task's id.")
    attempt: int = Field(ge=1, description="The attempt number (fencing token) the agent holds.")


class AgentProfile(WireModel):
    """Who a participant is and what it can do. Humans have profiles too."""

    id: Identifier = Field(description="Unique id within the Claw Group; one NATS subject token.")
    name: str = Field(min_length=1, max_length=200, description="Display name.")
    kind: Kind = Field(default="agent", description="`agent` for software, `human` for people.")
    skills: dict[SkillName, Level] = Field(
        default_factory=dict,
        description="Skill name to level in 0..1 (1 = expert). Matching uses these.",
    )
    model: str | None = Field(
        default=None,
        max_length=200,
        description="litellm model string the agent runs on (`anthropic/claude-...`, "
        "`ollama/llama3`), or null for plain code.",
    )
    device: Device = Field(default="laptop", description="Where the participant runs.")
    tools: list[str] = Field(default_factory=list, description="Tools the agent can use.")
    capacity: int = Field(default=1, ge=1, le=1000, description="Tasks it runs at once.")
    labels: list[str] = Field(
        default_factory=list, description="Free labels that task constraints can require."
    )
    clearance: Clearance = Field(
        default="public", description="Most sensitive data class the participant may receive."
    )
    cost: float = Field(
        default=0.0, ge=0.0, description="Relative cost of one task (e.g. USD estimate)."
    )
    sdk: str | None = Field(default=None, max_length=100, description="SDK name and version.")

    @field_validator("skills", mode="before")
    @classmethod
    def _lower_skill_names(cls, value: object) -> object:
        if isinstance(value, dict):
            return {str(k).lower(): v for k, v in value.items()}
        return value


class Register(WireModel):
    """Agent → hub (request on ``hub_register``): join the group, or re-join after a reconnect."""

    type: Literal["claw.v1.agent.register"] = "claw.v1.agent.register"
    profile: AgentProfile = Field(description="The participant's profile.")
    session: Identifier = Field(
        description="Random id of this agent process. A re-registration with the same session "
        "is a reconnect; another session under the same live id is refused."
    )
    running: list[TaskRef] = Field(
        default_factory=list,
        description="Attempts this session still runs (so they re-attach after a hub restart).",
    )
    credit: bool = Field(
        default=False,
        description="True: push assignments to me while I have free capacity (`Assignment."
        "pushed`, no reply expected; I publish `Decline` on `hub_decline` for one I cannot "
        "take). False: offer each one and wait for `Accept` or `Decline`.",
    )
    batches: bool = Field(
        default=False,
        description="With `credit`, True: several assignments pushed at the same moment may "
        "come in one `Assignments` message (each taken as if it came alone). False: one "
        "`Assignment` per message.",
    )


class RegisterAck(WireModel):
    """Hub → agent: registration accepted, with the liveness settings the agent must keep."""

    type: Literal["claw.v1.agent.registered"] = "claw.v1.agent.registered"
    agent_id: Identifier = Field(description="The registered id.")
    hub_id: str = Field(description="Id of the hub process that accepted the registration.")
    heartbeat_interval: float = Field(gt=0, description="Seconds between heartbeats.")
    missed_beats: int = Field(ge=1, description="Missed heartbeats before the agent is lost.")
    max_message_bytes: int = Field(gt=0, description="Largest payload the hub accepts.")
    revoked: list[TaskRef] = Field(
        default_factory=list,
        description="Attempts listed in `running` that the hub no longer recognises: stop them.",
    )


class Heartbeat(WireModel):
    """Agent → hub (publish on ``hub_heartbeat``): I am alive, and this is what I run."""

    type: Literal["claw.v1.agent.heartbeat"] = "claw.v1.agent.heartbeat"
    agent_id: Identifier = Field(description="Sender.")
    session: Identifier = Field(description="Sender's session (see `Register.session`).")
    ts: Timestamp = Field(description="When it was sent.")
    running: list[TaskRef] = Field(default_factory=list, description="Attempts it runs now.")


class Deregister(WireModel):
    """Agent → hub (request on ``hub_deregister``): leaving on purpose; revoke what I hold."""

    type: Literal["claw.v1.agent.deregister"] = "claw.v1.agent.deregister"
    agent_id: Identifier = Field(description="Sender.")
    session: Identifier = Field(description="Sender's session.")
    reason: str = Field(default="", max_length=1000, description="Why it leaves.")


class AgentInfo(WireModel):
    """The hub's view of one participant (in ``AgentList``)."""

    type: Literal["claw.v1.agent.info"] = "claw.v1.agent.info"
    profile: AgentProfile = Field(description="Its profile.")
    state: AgentState = Field(
        description="online; away (a person who left without saying so: no penalty); lost "
        "(missed beats or a closed connection); or left."
    )
    load: int = Field(
        ge=0,
        description="Attempts it holds now, less those waiting on the tasks they delegated "
        "(a waiting attempt lends its slot).",
    )
    reliability: float = Field(ge=0, le=1, description="0..1; drops when it loses work.")
    last_seen: Timestamp = Field(description="Last heartbeat or message.")
    running: list[TaskRef] = Field(default_factory=list, description="Attempts it holds.")
    completed: int = Field(default=0, ge=0, description="Attempts it finished and had accepted.")
    failed: int = Field(default=0, ge=0, description="Attempts it lost, stalled or failed.")
    mode: AgentMode = Field(
        default="active", description="active, paused (no new work) or draining (then leaves)."
    )
    usage: Usage = Field(default_factory=Usage, description="Model usage of its results.")
    stalled: int = Field(default=0, ge=0, description="Attempts it held that stalled.")
