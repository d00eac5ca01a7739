"""WebSocket routes of the gateway: the agent transport and the event stream.

``/v1/ws/agent``: a participant in any language speaks the bus's JSON messages in the
envelope of ``protocols.gateway`` (``WsRequest`` → ``WsResponse``; ``WsOffer`` →
``WsAnswer``; ``WsPush``). The gateway is a bridge: requests go to ``Hub.handle`` in
process (the code path NATS uses), and once the participant is registered the gateway
listens on its NATS inbox for it, forwarding offers and cancels down the socket and the
answers back as the NATS reply. When the socket closes the participant is lost at once.

``/v1/ws/events``: the group's events as ``WsPush`` frames (optionally the stored ones
after ``?after=SEQ`` first, and only kinds starting with one of ``?kinds=task.,agent.``).
``/v1/events/stream`` serves the same as Server-Sent Events.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import BaseModel

from protocols import (
    Accept,
    Assignment,
    Cancel,
    Decline,
    Deregister,
    ErrorCode,
    ErrorReply,
    Event,
    ListEvents,
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
from .caller import Caller, connection_token
from .state import Gateway

log = logging.getLogger("clawhub.gateway")

#: Close codes: the token was refused (4401), not allowed (4403), or the gateway is full.
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_FULL = 1013
#: Most events queued for one slow event-stream client before it is dropped.
STREAM_QUEUE = 10_000


async def _admit(gw: Gateway, ws: WebSocket) -> Principal | None:
    """Accept the socket; check the token and the connection limits (closing if refused)."""
    await ws.accept()
    try:
        who = gw.principal(connection_token(ws))
    except ProtocolError as exc:
        code = CLOSE_UNAUTHORIZED if exc.code is ErrorCode.UNAUTHORIZED else CLOSE_FORBIDDEN
        await _refuse(ws, exc, code)
        return None
    if gw.sockets_full(who.group):
        full = ProtocolError(ErrorCode.RATE_LIMITED, "too many WebSocket connections; retry later")
        await _refuse(ws, full, CLOSE_FULL)
        return None
    return who


async def _refuse(ws: WebSocket, exc: ProtocolError, code: int) -> None:
    with contextlib.suppress(Exception):
        await ws.send_text(WsResponse(id=None, message=_error(exc)).model_dump_json())
        await ws.close(code=code, reason=exc.message[:120])


class AgentSession:
    """One participant on one socket."""

    def __init__(self, gw: Gateway, ws: WebSocket, who: Principal) -> None:
        self.gw = gw
        self.ws = ws
        self.who = who
        self.hub: Hub = gw.hubs[who.group]
        self.agent_id: str | None = None
        self.session: str | None = None
        self._sub: Subscription | None = None
        self._send_lock = asyncio.Lock()
        self._offers: dict[str, asyncio.Future[Accept | Decline]] = {}
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
        """Serve frames until the socket closes."""
        limit = self.hub.settings.max_message_bytes + 4096  # the envelope's own bytes
        try:
            while True:
                data = await self.ws.receive_text()
                await self._frame(data, limit)
        except WebSocketDisconnect:
            pass
        finally:
            await self.close()

    async def _frame(self, data: str, limit: int) -> None:
        try:
            frame = parse_frame(data, limit)
        except ProtocolError as exc:
            self.hub.board.refused("ws", exc, self.agent_id)
            await self.send(WsResponse(id=None, message=_error(exc)))
            return
        if isinstance(frame, WsAnswer):
            self._answer(frame)
            return
        reply = await self._request(frame)
        if frame.id is None and not isinstance(reply, ErrorReply):
            return
        answer = await self.hub.settle(reply)  # None (publish-only) is answered Ok
        await self.send(WsResponse(id=frame.id, message=answer.model_dump(mode="json")))

    async def _request(self, frame: WsRequest) -> BaseModel | None:
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
            self.hub.board.refused(subject, exc, self.agent_id)
            return ErrorReply(code=exc.code, message=exc.message)
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
                self.gw.metrics[self.who.group].ws_agents += 1
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
            self.gw.metrics[self.who.group].ws_agents -= 1

    # -- the inbox ------------------------------------------------------------------------

    async def _on_inbox(self, msg: Msg) -> None:
        try:
            message = decode(msg.data, Assignment, Cancel)
        except ProtocolError as exc:
            log.warning("bad inbox message for %s: %s", self.agent_id, exc)
            return
        if isinstance(message, Cancel):
            with contextlib.suppress(Exception):
                await self.send(WsPush(message=message))
            return
        assert isinstance(message, Assignment)
        task = asyncio.create_task(self._offer(msg, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _offer(self, msg: Msg, offer: Assignment) -> None:
        offer_id = f"o{next(self._ids)}"
        future: asyncio.Future[Accept | Decline] = asyncio.get_running_loop().create_future()
        self._offers[offer_id] = future
        try:
            await self.send(WsOffer(id=offer_id, message=offer))
            answer = await asyncio.wait_for(future, self.hub.settings.accept_timeout)
            await msg.respond(encode(answer))
        except Exception as exc:  # closed socket or no answer: the hub sees no reply
            log.debug("offer %s to %s: %s", offer.task_id, self.agent_id, exc)
        finally:
            self._offers.pop(offer_id, None)

    def _answer(self, frame: WsAnswer) -> None:
        future = self._offers.get(frame.id)
        if future is None or future.done():
            return  # late or unknown: the hub has moved on
        if frame.message.agent_id != self.agent_id:
            exc = ProtocolError(ErrorCode.FORBIDDEN, "an answer must come from the offeree")
            self.hub.board.refused("ws", exc, self.agent_id)
            return
        future.set_result(frame.message)

    async def close(self) -> None:
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
                self.hub.board.agent_lost(agent_id, "connection closed (websocket)")


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


def _error(exc: ProtocolError) -> dict[str, Any]:
    return ErrorReply(code=exc.code, message=exc.message).model_dump(mode="json")


def _kinds(raw: str | None) -> tuple[str, ...]:
    return tuple(k for k in (raw or "").split(",") if k)


async def _events(
    gw: Gateway, who: Principal, after: int | None, kinds: tuple[str, ...]
) -> AsyncGenerator[Event, None]:
    """Stored events after ``after`` (if given), then live ones, filtered by kind prefix."""
    hub = gw.hubs[who.group]
    queue: asyncio.Queue[Event | None] = asyncio.Queue(STREAM_QUEUE)

    def observe(event: Event) -> None:
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            queue.get_nowait()
            queue.put_nowait(None)  # too slow: end the stream

    hub.observers.append(observe)
    try:
        last = 0
        if after is not None:
            reply = await gw.call(who, subjects.API_EVENTS, ListEvents(after=after, limit=10_000))
            for event in getattr(reply, "events", []):
                last = event.seq
                if not kinds or event.kind.startswith(kinds):
                    yield event
        while True:
            item = await queue.get()
            if item is None:
                return
            if item.seq and item.seq <= last:
                continue
            if not kinds or item.kind.startswith(kinds):
                yield item
    finally:
        hub.observers.remove(observe)


async def _stream_events(gw: Gateway, ws: WebSocket, who: Principal) -> None:
    """Push the group's events down ``ws`` until the client closes it."""
    after = ws.query_params.get("after")
    stream = _events(
        gw,
        who,
        int(after) if after and after.isdigit() else None,
        _kinds(ws.query_params.get("kinds")),
    )

    async def pump() -> None:
        async for event in stream:
            await ws.send_text(WsPush(message=event).model_dump_json())

    async def drain() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await ws.receive_text()  # the client sends nothing; this sees the close

    tasks = [asyncio.create_task(pump()), asyncio.create_task(drain())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await stream.aclose()


def add_ws_routes(app: FastAPI, gw: Gateway) -> None:
    """Add the WebSocket (and SSE) routes."""

    @app.websocket("/v1/ws/agent")
    async def agent_socket(ws: WebSocket) -> None:
        who = await _admit(gw, ws)
        if who is None:
            return
        with gw.socket_open(who.group):
            await AgentSession(gw, ws, who).run()

    @app.websocket("/v1/ws/events")
    async def event_socket(ws: WebSocket) -> None:
        who = await _admit(gw, ws)
        if who is None:
            return
        with gw.socket_open(who.group):
            await _stream_events(gw, ws, who)

    @app.get(
        "/v1/events/stream",
        tags=["read"],
        summary="The group's events as Server-Sent Events (stored ones after `after`, then "
        "live; `kinds` filters by prefix, comma-separated).",
        response_class=StreamingResponse,
    )
    async def event_stream(
        request: Request, who: Caller, after: int | None = None, kinds: str | None = None
    ) -> Any:
        stream = _events(gw, who, after, _kinds(kinds))

        async def lines() -> AsyncIterator[str]:
            try:
                async for event in stream:
                    if await request.is_disconnected():
                        return
                    data = json.dumps(event.model_dump(mode="json"))
                    yield f"id: {event.seq}\nevent: {event.kind}\ndata: {data}\n\n"
            finally:
                await stream.aclose()

        return StreamingResponse(lines(), media_type="text/event-stream")
