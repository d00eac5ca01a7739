"""The port of the gateway's ``/mcp`` route: in the hub process, through the same handlers
as REST and the agent WebSocket (``Gateway.call`` for the API, ``Hub.handle`` for a
participant's messages, the hub's NATS connection for its inbox), always as the caller's
``Principal``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import BaseModel

from protocols import ErrorCode, ProtocolError, encode, subjects

from ...runtime.auth import Principal
from ...runtime.hub import Hub
from ..state import Gateway
from .port import HubUnreachable, InboxHandler, ParticipantLink

#: The agent → hub messages whose reply promises something (sent once it is durable).
_REQUESTS = frozenset({"register", "deregister", "result"})


class InProcessLink:
    """A participant's link inside the hub process."""

    def __init__(
        self, hub: Hub, who: Principal, agent_id: str, session: str, live: Callable[[], bool]
    ) -> None:
        """``live``: whether the caller's token is still good (a revoked one: the link
        refuses to send, ``unauthorized``, and the worker is lost)."""
        self.hub = hub
        self.who = who
        self.live = live
        self.agent_id = agent_id
        self.session = session
        self._sub: Subscription | None = None

    async def send(self, name: str, message: BaseModel) -> BaseModel | None:
        """The hub's own path for the message, as the caller (``act_as``)."""
        if not self.live():
            raise ProtocolError(ErrorCode.UNAUTHORIZED, f"token {self.who.token_id} was revoked")
        where = subjects.hub_call(self.hub.group, self.who.token_id, name)
        reply = await self.hub.handle(
            name, message, self.who.requester, who=self.who, subject=where
        )
        if name in _REQUESTS:
            return await self.hub.settle(reply)
        return reply

    async def listen(self, handler: InboxHandler) -> None:
        """Subscribe to the participant's inbox on the hub's connection."""
        nc = self.hub.nc
        if nc is None or not nc.is_connected:
            raise HubUnreachable("the hub is not connected to NATS")

        async def on_msg(msg: Msg) -> None:
            respond = None
            if msg.reply:

                async def answer(message: BaseModel) -> bool:
                    try:
                        await msg.respond(encode(message))
                    except Exception:  # the bus is down: the hub sees no answer
                        return False
                    return True

                respond = answer
            await handler(msg.data, respond)

        inbox = subjects.agent_inbox(self.hub.group, self.agent_id)
        self._sub = await nc.subscribe(inbox, cb=on_msg)
        await nc.flush()

    async def close(self, lost: str | None = None) -> None:
        """Unsubscribe; when ``lost``, the participant is lost at once (as a closed socket
        is), if this link's session still holds it."""
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if lost:
            agent = self.hub.board.agents.get(self.agent_id)
            if agent is not None and agent.session == self.session and agent.state == "online":
                self.hub.board.agent_lost(self.agent_id, lost)


class InProcessPort:
    """The hub, in process, for one caller of the gateway."""

    def __init__(self, gw: Gateway, who: Principal) -> None:
        self.gw = gw
        self.who = who
        self.hub = gw.hubs[who.group]

    @property
    def principal(self) -> Principal:
        """The caller."""
        return self.who

    @property
    def accept_timeout(self) -> float:
        """The hub's accept timeout."""
        return self.hub.settings.accept_timeout

    async def api(self, verb: str, message: BaseModel) -> BaseModel:
        """``Gateway.call``: the REST routes' path."""
        return await self.gw.call(self.who, verb, message)

    async def link(self, agent_id: str, session: str) -> ParticipantLink:
        """A participant's link in process."""
        tokens, token_id = self.gw.tokens, self.who.token_id
        live = lambda: tokens.principal(token_id) is not None  # noqa: E731
        return InProcessLink(self.hub, self.who, agent_id, session, live)

    def refused(self, where: str, error: ProtocolError) -> None:
        """``message.refused`` in the caller's group."""
        self.hub.board.refused(where, error, self.who.agent_id)
