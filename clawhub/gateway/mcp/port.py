"""The port the MCP tools are written against: "call this API verb as this principal" and
"hold a participant's link to the hub". Two implementations: in the hub process, through
``Gateway.call`` and ``Hub.handle`` (``inprocess``: the ``/mcp`` route of the gateway), and
over NATS with the caller's own token (``clawhub.cli.mcp``: ``clawhub mcp`` on stdio).

Nothing here decides anything: a port carries requests to the hub's own handlers and brings
back their replies (an ``ErrorReply`` when the hub refused, which the hub has recorded)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from pydantic import BaseModel

from protocols import ErrorCode, ProtocolError

from ...runtime.auth import Principal

#: The path of the gateway's MCP endpoint.
MCP_PATH = "/mcp"

#: Answers an offer (``Accept``/``Decline``); False when the answer could not be sent.
Respond = Callable[[BaseModel], Awaitable[bool]]
#: Takes one message of a participant's inbox (an offer with its ``Respond``, or a cancel
#: with None).
InboxHandler = Callable[[bytes, Respond | None], Awaitable[None]]


class HubUnreachable(ProtocolError):
    """The hub did not answer (no responders, a timeout, the bus down): nothing was applied
    that the caller knows of; it may retry."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.UNAVAILABLE, message)


class ParticipantLink(Protocol):
    """One participant's line to the hub: its agent → hub messages and its inbox."""

    async def send(self, name: str, message: BaseModel) -> BaseModel | None:
        """An agent → hub message (``register``, ``heartbeat``, ``progress``, ``result``,
        ``deregister``): the reply (an ``ErrorReply`` when refused), None for the
        publish-only ones. Raises ``HubUnreachable``."""

    async def listen(self, handler: InboxHandler) -> None:
        """Deliver the participant's inbox (offers and cancels) to ``handler``, from now on."""

    async def close(self, lost: str | None = None) -> None:
        """Stop listening and let go of the link. ``lost``: the participant stopped calling;
        the hub is to treat it as lost (``lost`` says why), as it would a closed connection."""


class HubPort(Protocol):
    """What the MCP tools need of the hub, for one caller."""

    @property
    def principal(self) -> Principal:
        """Who calls: the token's id, group, role and participant id."""

    @property
    def accept_timeout(self) -> float:
        """Seconds the hub waits for an answer to an offer (an offer is held for a taker a
        little less than this)."""

    async def api(self, verb: str, message: BaseModel) -> BaseModel:
        """One API request (``protocols.API``) as the principal: the reply, or the
        ``ErrorReply`` of a refusal. Raises ``HubUnreachable``."""

    async def link(self, agent_id: str, session: str) -> ParticipantLink:
        """Open a participant's link (before it registers, so no offer is missed)."""

    def refused(self, where: str, error: ProtocolError) -> None:
        """Record a request refused before it reached the hub (bad MCP input), where this
        port can: in the group's event log in process, the server's log over NATS."""
