"""The agent socket of the gateway (the event stream is in ``stream``).

``/v1/ws/agent``: a participant in any language speaks the bus's JSON messages in the
envelope of ``protocols.gateway`` (``WsRequest`` → ``WsResponse``; ``WsOffer`` →
``WsAnswer``; ``WsPush``). The gateway is a bridge: requests go to ``Hub.handle`` in
process (the code path NATS uses), and once the participant is registered the gateway
listens on its NATS inbox for it, forwarding offers and cancels down the socket and the
answers back as the NATS reply. When the socket closes the participant is lost at once.

Every frame the gateway refuses is answered (a binary frame too) with a ``claw.v1.error``
carrying the frame's ``id`` when it has one, and recorded; an answer to an offer that is not
open, or that names another task, attempt or participant, is refused the same way. A socket
whose token is revoked is closed (close code 4401) as soon as the process sees the
revocation (``Gateway.drop_revoked``); a frame on it after the revocation is refused
``unauthorized``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import BaseModel

from protocols import (
    Accept,
    Assignment,
    Assignments,
    Cancel,
    Decline,
    Deregister,
    ErrorCode,
    ErrorReply,
    ProtocolError,
    Register,
    RegisterAck,
    WsAnswer,
    WsOffer,
    WsPush,
    WsRequest,
    WsResponse,
    decode,
    decode_object,
    encode,
    subjects,
    type_name,
)

from ..runtime.auth import Principal, act_as
from ..runtime.hub import Hub
from ..runtime.offers import answer_mismatch
from ..runtime.trace import INCOMING
from .sockets import CLOSE_ERROR, CLOSE_UNAUTHORIZED, admit, error_frame
from .state import Gateway

log = logging.getLogger("clawhub.gateway")


class AgentSession:
    """One participant on one socket."""

    def __init__(self, gw: Gateway, ws: WebSocket, who: Principal, token: str) -> None:
        self.gw = gw
        self.ws = ws
        self.who = who
        self.token = token
        self.revoked = asyncio.Event()
        """Set when the token is revoked: the socket is closed (4401)."""
        self.hub: Hub = gw.hubs[who.group]
        self.agent_id: str | None = None
        self.session: str | None = None
        self._sub: Subscription | None = None
        self._send_lock = asyncio.Lock()
        self._offers: dict[str, tuple[Assignment, asyncio.Future[Accept | Decline]]] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._routes = {
            type_name(model): name
            for name, route in self.hub.routes.items()
            for model in route.models
        }

    async def send(self, frame: BaseModel) -> None:
        """Send one frame (frames never interleave); a closed socket drops it."""
        async with self._send_lock:
            try:
                await self.ws.send_text(encode(frame).decode())
            except Exception as exc:  # closed under us: the receive loop ends the session
                log.debug("frame to %s dropped: %s", self.agent_id, exc)

    async def run(self) -> None:
        """Serve frames until the socket closes, or its token is revoked (then it is closed
        with 4401)."""
        serve = asyncio.create_task(self._serve())
        revoked = asyncio.create_task(self.revoked.wait())
        try:
            with self.gw.watch(self.token, self.revoked.set):
                await asyncio.wait({serve, revoked}, return_when=asyncio.FIRST_COMPLETED)
            if self.revoked.is_set():
                serve.cancel()
                await asyncio.gather(serve, return_exceptions=True)
                async with self._send_lock:
                    with contextlib.suppress(Exception):
                        await self.ws.close(code=CLOSE_UNAUTHORIZED, reason="token revoked")
            elif serve.done() and not serve.cancelled() and serve.exception() is not None:
                log.error("agent socket of %s failed", self.agent_id, exc_info=serve.exception())
                with contextlib.suppress(Exception):
                    await self.ws.close(code=CLOSE_ERROR)
        finally:
            for task in (serve, revoked):
                task.cancel()
            await asyncio.gather(serve, revoked, return_exceptions=True)
            await self.close("token revoked" if self.revoked.is_set() else "")

    async def _serve(self) -> None:
        limit = self.hub.settings.max_message_bytes + 4096  # the envelope's own bytes
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                received = await self.ws.receive()
                if received["type"] == "websocket.disconnect":
                    return
                text = received.get("text")
                if text is None:  # a binary frame: answered, the socket stays open
                    await self._refuse_frame(
                        None,
                        ProtocolError(
                            ErrorCode.MALFORMED,
                            "binary frames are not accepted: send each JSON frame as text",
                        ),
                    )
                    continue
                await self._frame(text, limit)

    async def _refuse_frame(self, frame_id: str | None, exc: ProtocolError) -> None:
        self.hub.board.refused("ws", exc, self.agent_id)
        await self.send(WsResponse(id=frame_id, message=error_frame(exc)))

    async def _frame(self, data: str, limit: int) -> None:
        try:
            frame = parse_frame(data, limit)
        except ProtocolError as exc:
            await self._refuse_frame(frame_id(data), exc)
            return
        if not self.gw.live(self.token):  # revoked: the watcher closes the socket
            revoked = ProtocolError(ErrorCode.UNAUTHORIZED, "the token was revoked")
            await self._refuse_frame(frame.id, revoked)
            self.revoked.set()
            return
        if isinstance(frame, WsAnswer):
            await self._answer(frame)
            return
        reply = await self._request(frame)
        if frame.id is None and not isinstance(reply, ErrorReply):
            return
        answer = await self.hub.settle(reply)  # None (publish-only) is answered Ok
        await self.send(WsResponse(id=frame.id, message=answer.model_dump(mode="json")))

    async def _request(self, frame: WsRequest) -> BaseModel | None:
        INCOMING.set(frame.traceparent)  # the sender's span, for the handler's (runtime.trace)
        name = self._routes.get(str(frame.message.get("type")))
        try:
            if name is None:
                raise ProtocolError(
                    ErrorCode.UNKNOWN_TYPE,
                    f"message type {frame.message.get('type')!r} is not served here",
                )
            route = self.hub.routes[name]
            message = decode_object(frame.message, *route.models)
            message = act_as(self.who, name[4:] if name.startswith("api.") else None, message)
            if isinstance(message, Register):
                return await self._register(message)
        except ProtocolError as exc:
            subject = self.hub.routes[name].subject if name else "ws"
            return self.hub.board.refused(subject, exc, self.agent_id)
        reply = await self.hub.handle(name, message, self.who.requester)
        if isinstance(message, Deregister) and not isinstance(reply, ErrorReply):
            await self._unlisten()
            self.agent_id = self.session = None
        return reply

    async def _register(self, message: Register) -> BaseModel | None:
        """Listen on the participant's inbox first (no offer is lost), then register."""
        if self.agent_id is not None and self.agent_id != message.profile.id:
            raise ProtocolError(
                ErrorCode.CONFLICT, f"this socket is already participant {self.agent_id}"
            )
        if self._sub is None:
            assert self.hub.nc is not None
            inbox = subjects.agent_inbox(self.hub.group, message.profile.id)
            self._sub = await self.hub.nc.subscribe(inbox, cb=self._on_inbox)
            await self.hub.nc.flush()
        reply = await self.hub.handle("register", message, self.who.requester)
        if isinstance(reply, RegisterAck):
            if self.agent_id is None:
                self.gw.metrics_of(self.who.group).ws_agents += 1
            self.agent_id, self.session = message.profile.id, message.session
        elif self.agent_id is None:
            await self._unlisten()
        return reply

    async def _unlisten(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if self.agent_id is not None:
            self.gw.metrics_of(self.who.group).ws_agents -= 1

    # -- the inbox ------------------------------------------------------------------------

    async def _on_inbox(self, msg: Msg) -> None:
        try:
            message = decode(msg.data, Assignment, Assignments, Cancel)
        except ProtocolError as exc:
            log.warning("bad inbox message for %s: %s", self.agent_id, exc)
            return
        if isinstance(message, Assignments):  # pushed together: a WsPush frame each
            with contextlib.suppress(Exception):
                for one in message.assignments:
                    await self.send(WsPush(message=one))
            return
        assert isinstance(message, Assignment | Cancel)
        if isinstance(message, Cancel) or message.pushed:  # pushed: credit, no answer
            parent = msg.headers.get("traceparent") if msg.headers else None
            with contextlib.suppress(Exception):
                await self.send(WsPush(message=message, traceparent=parent))
            return
        task = asyncio.create_task(self._offer(msg, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _offer(self, msg: Msg, offer: Assignment) -> None:
        offer_id = f"o{next(self._ids)}"
        future: asyncio.Future[Accept | Decline] = asyncio.get_running_loop().create_future()
        self._offers[offer_id] = (offer, future)
        try:
            parent = msg.headers.get("traceparent") if msg.headers else None
            await self.send(WsOffer(id=offer_id, message=offer, traceparent=parent))
            answer = await asyncio.wait_for(future, self.hub.settings.accept_timeout)
            await msg.respond(encode(answer))
        except Exception as exc:  # closed socket or no answer: the hub sees no reply
            log.debug("offer %s to %s: %s", offer.task_id, self.agent_id, exc)
        finally:
            self._offers.pop(offer_id, None)

    async def _answer(self, frame: WsAnswer) -> None:
        """Hand a good answer to its offer; refuse (with a reply) one to an offer that is
        not open, or one that names another task, attempt or participant."""
        entry = self._offers.get(frame.id)
        if entry is None or entry[1].done():  # late or unknown: the hub has moved on
            exc = ProtocolError(
                ErrorCode.CONFLICT,
                f"offer {frame.id} is not open (unknown, answered already, or withdrawn)",
            )
            await self._refuse_frame(frame.id, exc)
            return
        offer, future = entry
        if self.agent_id is None:
            wrong: ProtocolError | None = ProtocolError(
                ErrorCode.FORBIDDEN, "an answer must come from the offeree"
            )
        else:
            wrong = answer_mismatch(offer.task_id, offer.attempt, self.agent_id, frame.message)
        if wrong is not None:  # the offer stays open until its timeout
            await self._refuse_frame(frame.id, wrong)
            return
        future.set_result(frame.message)

    async def close(self, why: str = "") -> None:
        """The socket is gone: the participant is lost at once (as a closed NATS
        connection is), its offers unanswered."""
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        agent_id, session = self.agent_id, self.session
        await self._unlisten()
        if agent_id is not None:
            agent = self.hub.board.agents.get(agent_id)
            if agent is not None and agent.session == session and agent.state == "online":
                reason = "connection closed (websocket)" + (f": {why}" if why else "")
                self.hub.board.agent_lost(agent_id, reason)


def parse_frame(data: str | bytes, limit: int) -> WsRequest | WsAnswer:
    """One client frame of the agent socket; ``ProtocolError`` (never anything else) when
    it is too large, not JSON, or not a ``WsRequest``/``WsAnswer``."""
    raw = data.encode(errors="surrogatepass") if isinstance(data, str) else data
    if len(raw) > limit:
        raise ProtocolError(
            ErrorCode.OVERSIZE, f"frame of {len(raw)} bytes exceeds the limit ({limit})"
        )
    frame = decode(raw, WsRequest, WsAnswer)
    assert isinstance(frame, WsRequest | WsAnswer)
    return frame


#: The ``id`` near the start of a frame that is not JSON or too deep to parse (as encoders write
#: it: first, or after ``type``).
_HEAD_ID = re.compile(r'^\s*\{\s*(?:"type"\s*:\s*"[^"\\]*"\s*,\s*)?"id"\s*:\s*"([^"\\]{1,64})"')


def frame_id(data: str) -> str | None:
    """The ``id`` of a frame refused as a whole, when it has one that can be echoed (a JSON
    object whose ``id`` is a short string); None otherwise."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):  # not JSON, or too deep to parse: read its head
        head = _HEAD_ID.match(data[:1024])
        return head.group(1) if head else None
    value = obj.get("id") if isinstance(obj, dict) else None
    return value if isinstance(value, str) and 0 < len(value) <= 64 else None


def add_ws_routes(app: FastAPI, gw: Gateway) -> None:
    """Add the agent socket."""

    @app.websocket("/v1/ws/agent")
    async def agent_socket(ws: WebSocket) -> None:
        admitted = await admit(gw, ws)
        if admitted is None:
            return
        who, token = admitted
        with gw.socket_open(who.group):
            await AgentSession(gw, ws, who, token).run()
