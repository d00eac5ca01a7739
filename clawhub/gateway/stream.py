"""The group's event stream: ``/v1/ws/events`` (``WsPush`` frames) and
``/v1/events/stream`` (Server-Sent Events): optionally the stored events after ``after``
first, then live ones, only kinds starting with one of ``kinds`` (``task.,agent.``). A
stream of a revoked token ends (its socket closed with 4401) as soon as the hub process
sees the revocation (``Gateway.drop_revoked``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from protocols import MAX_INT, Event, ListEvents, ProtocolError, WsPush, subjects

from ..errors import CallerRefused
from ..runtime.auth import Principal
from .caller import Caller, connection_token
from .replies import READ_ERRORS
from .sockets import CLOSE_UNAUTHORIZED, admit
from .state import Gateway

#: Most events queued for one slow event-stream client before it is dropped.
STREAM_QUEUE = 10_000


def _kinds(raw: str | None) -> tuple[str, ...]:
    return tuple(k for k in (raw or "").split(",") if k)


async def _events(
    gw: Gateway, who: Principal, token: str, after: int | None, kinds: tuple[str, ...]
) -> AsyncGenerator[Event, None]:
    """Stored events after ``after`` (if given), then live ones, filtered by kind prefix;
    the stream ends when it falls too far behind or its token is revoked."""
    hub = gw.local(who.group)
    queue: asyncio.Queue[Event | None] = asyncio.Queue(STREAM_QUEUE)

    def end() -> None:
        with contextlib.suppress(asyncio.QueueEmpty):
            while queue.full():
                queue.get_nowait()
        queue.put_nowait(None)

    def observe(event: Event) -> None:
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            end()  # too slow: end the stream

    hub.observers.append(observe)
    try:
        with gw.watch(token, end):
            last = 0
            if after is not None:
                request = ListEvents(after=after, limit=10_000)
                reply = await gw.call(who, subjects.API_EVENTS, request)
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


async def _stream_events(gw: Gateway, ws: WebSocket, who: Principal, token: str) -> None:
    """Push the group's events down ``ws`` until the client closes it (or the token is
    revoked: then it is closed with 4401)."""
    after = ws.query_params.get("after")
    stream = _events(
        gw,
        who,
        token,
        int(after) if after and after.isdigit() and int(after) <= MAX_INT else None,
        _kinds(ws.query_params.get("kinds")),
    )

    async def pump() -> None:
        async for event in stream:
            await ws.send_text(WsPush(message=event).model_dump_json())

    async def drain() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:  # the client sends nothing; this sees the close
                if (await ws.receive())["type"] == "websocket.disconnect":
                    return

    tasks = [asyncio.create_task(pump()), asyncio.create_task(drain())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if not gw.live(token):
            with contextlib.suppress(Exception):
                await ws.close(code=CLOSE_UNAUTHORIZED, reason="token revoked")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await stream.aclose()


def add_stream_routes(app: FastAPI, gw: Gateway) -> None:
    """Add the event socket and the SSE route."""

    @app.websocket("/v1/ws/events")
    async def event_socket(ws: WebSocket) -> None:
        admitted = await admit(gw, ws)
        if admitted is None:
            return
        who, token = admitted
        with gw.socket_open(who.group):
            await _stream_events(gw, ws, who, token)

    @app.get(
        "/v1/events/stream",
        tags=["read"],
        summary="The group's events as Server-Sent Events (stored ones after `after`, then "
        "live; `kinds` filters by prefix, comma-separated).",
        response_class=StreamingResponse,
        responses=READ_ERRORS,
    )
    async def event_stream(
        request: Request,
        who: Caller,
        after: Annotated[int | None, Query(ge=0, le=MAX_INT)] = None,
        kinds: Annotated[str | None, Query(max_length=1000)] = None,
    ) -> Any:
        try:  # refused before the response starts: a standby has no hub for the group here
            gw.local(who.group)
        except ProtocolError as exc:
            raise CallerRefused(exc) from None
        stream = _events(gw, who, connection_token(request) or "", after, _kinds(kinds))

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
