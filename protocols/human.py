"""What humans (and admins) do in the group: decide on results, reassign, take work, pause
agents, talk in the shared channel; and the group's summary."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ._base import Identifier, WireModel
from .agents import AgentMode
from .usage import Usage


class DecideTask(WireModel):
    """Client → hub (request on ``api.decide``): approve or reject a result that waits in
    ``needs_human``. A rejection sends the task back for rework with the reason attached.
    Replied with the task's ``TaskStatus``."""

    type: Literal["claw.v1.api.decide"] = "claw.v1.api.decide"
    task_id: Identifier = Field(description="Task id.")
    accept: bool = Field(description="True approves the output; false rejects it.")
    reason: str = Field(default="", max_length=10_000, description="Why (sent to the reworker).")
    by: Identifier = Field(description="Who decides (a human participant id).")


class ReassignTask(WireModel):
    """Client → hub (request on ``api.reassign``): take a task back from its holder (not
    counted as a failure) and offer it again, to ``to`` if given. Replied with
    ``TaskStatus``."""

    type: Literal["claw.v1.api.reassign"] = "claw.v1.api.reassign"
    task_id: Identifier = Field(description="Task id.")
    to: Identifier | None = Field(
        default=None, description="Participant to offer it to next (null: the matcher picks)."
    )
    reason: str = Field(default="", max_length=1000, description="Why.")
    by: Identifier | None = Field(default=None, description="Who reassigns.")


class ClaimTask(WireModel):
    """Client → hub (request on ``api.claim``): participant ``agent_id`` takes a task that is
    ready (or held by nobody): the hub offers it to that participant at once, skipping the
    matcher's choice but not its hard filters. Replied with ``TaskStatus``."""

    type: Literal["claw.v1.api.claim"] = "claw.v1.api.claim"
    task_id: Identifier = Field(description="Task id.")
    agent_id: Identifier = Field(description="Who takes it (a registered participant).")


class SetAgentMode(WireModel):
    """Client → hub (request on ``api.agent_mode``): pause, resume or drain a participant.
    Replied with its ``AgentInfo``."""

    type: Literal["claw.v1.api.agent_mode"] = "claw.v1.api.agent_mode"
    agent_id: Identifier = Field(description="The participant.")
    mode: AgentMode = Field(description="active, paused or draining.")
    reason: str = Field(default="", max_length=1000, description="Why.")
    by: Identifier | None = Field(default=None, description="Who asks.")


class PostChat(WireModel):
    """Participant → hub (request on ``api.chat``): a line in the group's shared channel.
    The hub publishes and records it as a ``chat.message`` event. Replied with ``Ok``."""

    type: Literal["claw.v1.api.chat"] = "claw.v1.api.chat"
    sender: Identifier = Field(description="Who speaks (participant id or a human's name).")
    text: str = Field(min_length=1, max_length=10_000, description="The message.")
    task_id: Identifier | None = Field(default=None, description="The task it is about, if any.")


class GetGroup(WireModel):
    """Client → hub (request on ``api.group``): the group's summary."""

    type: Literal["claw.v1.api.get_group"] = "claw.v1.api.get_group"


class GroupInfo(WireModel):
    """Hub → client: the group at a glance."""

    type: Literal["claw.v1.group.info"] = "claw.v1.group.info"
    group: Identifier = Field(description="The Claw Group.")
    hub_id: str = Field(description="The hub process serving it.")
    tasks: dict[str, int] = Field(default_factory=dict, description="Task count by state.")
    goals: dict[str, int] = Field(default_factory=dict, description="Goal count by state.")
    agents_online: int = Field(ge=0, description="Participants online.")
    agents_total: int = Field(ge=0, description="Participants known (online, lost or left).")
    usage: Usage = Field(default_factory=Usage, description="Model usage of the whole group.")
    coordinator_model: str = Field(description="litellm model the coordinator plans with.")
    coordinator_ready: bool = Field(
        description="False when the coordinator model has no API key (planning is off)."
    )
    coordinator_note: str = Field(default="", description="What is off and why, in words.")
