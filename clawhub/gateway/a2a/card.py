"""The Agent Card of a group: the group is one A2A agent whose skills are the skills of its
live participants, aggregated per skill name, rebuilt on every request.

=====================  =====================================================================
card field             from
=====================  =====================================================================
``name``               ``Claw Group <group>``
``skills[].id/name``   a skill name some online participant has (what ``metadata.skill``
                       names)
``skills[].desc…``     how many participants offer it, at which levels (the extended card:
                       who they are)
``skills[].tags``      the skill, and the kinds, devices and model families offering it
``supportedInterf…``   JSON-RPC and HTTP+JSON at ``<gateway>/a2a/<group>`` (A2A 1.0)
``securitySchemes``    ``bearer``: a token from ``clawhub token create`` for the group
``capabilities``       streaming yes, push notifications no, extended card yes
``skills[0]``          ``clawhub.goal``: the coordinator model, for a goal in words
=====================  =====================================================================
"""

from __future__ import annotations

import importlib.metadata

from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)
from a2a.utils.constants import PROTOCOL_VERSION_CURRENT, TransportProtocol
from pydantic import BaseModel

from protocols import AgentInfo, AgentList, GroupInfo

#: Where every group's endpoints are: ``<gateway>/a2a/<group>``.
A2A_PREFIX = "/a2a"
#: The well-known path of a card (under the gateway's root and under each group's path).
CARD_PATH = "/.well-known/agent-card.json"
#: The one security scheme of every card.
SCHEME = "bearer"
#: The skill of every card that is the group's own: a free-text goal for the coordinator.
GOAL_SKILL = "clawhub.goal"


def _version() -> str:
    try:
        return importlib.metadata.version("clawhub")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a checkout
        return "0"


def _family(info: AgentInfo) -> str:
    model = info.profile.model
    if model is None:
        return "plain-code"
    return model.split("/", 1)[0] if "/" in model else model


def _skills(agents: list[AgentInfo], extended: bool) -> list[AgentSkill]:
    offers: dict[str, list[tuple[AgentInfo, float]]] = {}
    for info in agents:
        if info.state != "online":
            continue
        for name, level in info.profile.skills.items():
            offers.setdefault(name, []).append((info, level))
    skills = []
    for name in sorted(offers):
        found = offers[name]
        levels = sorted(level for _, level in found)
        span = f"{levels[0]:g}" if levels[0] == levels[-1] else f"{levels[0]:g} to {levels[-1]:g}"
        who = len(found)
        text = f"{who} participant{'s' if who != 1 else ''} online offer {name} (level {span})."
        if extended:
            text += " Offered by: " + ", ".join(
                f"{i.profile.id} ({level:g}, {i.load}/{i.profile.capacity} busy)"
                for i, level in found
            )
        text += f' Ask for it with metadata {{"skill": "{name}"}}.'
        tags = {name}
        for info, _ in found:
            tags.update({info.profile.kind, info.profile.device, _family(info)})
        skills.append(
            AgentSkill(
                id=name,
                name=name,
                description=text,
                tags=sorted(tags),
                input_modes=["text/plain", "application/json"],
                output_modes=["application/json", "text/plain"],
            )
        )
    return skills


def group_url(base: str, group: str) -> str:
    """The A2A endpoint of ``group`` on the gateway at ``base`` (``http://host:port``)."""
    return f"{base.rstrip('/')}{A2A_PREFIX}/{group}"


def goal_skill(info: BaseModel | None) -> AgentSkill:
    """The group's own skill: a goal in words, planned by the coordinator model (``info``:
    the hub's ``GroupInfo``, which says whether the model is ready)."""
    ready = isinstance(info, GroupInfo) and info.coordinator_ready
    model = info.coordinator_model if isinstance(info, GroupInfo) else "?"
    state = (
        "ready"
        if ready
        else "not ready: " + (info.coordinator_note if isinstance(info, GroupInfo) else "unknown")
    )
    return AgentSkill(
        id=GOAL_SKILL,
        name="goal",
        description=f"A goal in words (a message with no skill, or metadata "
        f'{{"skill": "{GOAL_SKILL}"}}): the coordinator model ({model}, {state}) plans it '
        "into tasks for the participants; the deliverable is the artifact.",
        tags=["goal", "planning", "coordinator"],
        examples=["Write release notes for version 2 from the changelog"],
        input_modes=["text/plain"],
        output_modes=["application/json", "text/plain"],
    )


def group_card(
    group: str,
    base: str,
    agents: BaseModel,
    info: BaseModel | None = None,
    extended: bool = False,
) -> AgentCard:
    """The card of ``group`` served at ``base``; ``agents`` is the hub's ``AgentList``,
    ``info`` its ``GroupInfo``."""
    online = agents.agents if isinstance(agents, AgentList) else []
    url = group_url(base, group)
    count = sum(1 for a in online if a.state == "online")
    return AgentCard(
        name=f"Claw Group {group}",
        description=(
            f"The Claw Hub group {group} ({count} participant{'s' if count != 1 else ''} "
            "online) as one agent: a message whose metadata names a skill "
            '({"skill": "<id>"} or {"skills": {"<id>": <minimum level>}}) becomes a task for '
            "the best participant with it, matched, watched, reassigned and validated by the "
            "hub; a message with no skill is a goal the coordinator model plans into tasks."
        ),
        version=_version(),
        supported_interfaces=[
            AgentInterface(
                url=url,
                protocol_binding=TransportProtocol.JSONRPC.value,
                protocol_version=PROTOCOL_VERSION_CURRENT,
            ),
            AgentInterface(
                url=url,
                protocol_binding=TransportProtocol.HTTP_JSON.value,
                protocol_version=PROTOCOL_VERSION_CURRENT,
            ),
        ],
        capabilities=AgentCapabilities(
            streaming=True, push_notifications=False, extended_agent_card=True
        ),
        security_schemes={
            SCHEME: SecurityScheme(
                http_auth_security_scheme=HTTPAuthSecurityScheme(
                    scheme="bearer",
                    bearer_format="clawhub token",
                    description=f"A token of group {group} from `clawhub token create` "
                    "(its role sets what the caller may do: cancel needs human or admin).",
                )
            )
        },
        security_requirements=[SecurityRequirement(schemes={SCHEME: StringList()})],
        default_input_modes=["text/plain", "application/json"],
        default_output_modes=["application/json", "text/plain"],
        skills=[goal_skill(info), *_skills(online, extended)],
    )
