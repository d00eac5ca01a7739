"""Transports: how an ``Agent`` reaches the hub, chosen by the URL's scheme.

- ``nats://`` (``tls://``): the bus itself (nats-py), subjects from ``protocols.subjects``;
  with a token, the NATS user is the token id, the password its secret, and reply inboxes
  live under ``_INBOX.<token id>`` (the only inboxes such a user may read).
- ``ws://`` / ``wss://``: the hub's gateway (``/v1/ws/agent``), the same JSON messages in the
  envelope of ``protocols.gateway``; the group is the token's. ``websockets`` is imported
  only when a WebSocket transport is opened.

Both reconnect forever after the first connection and call ``reconnected_cb`` so the agent
registers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from pydantic import BaseModel

from protocols import (
    ErrorCode,
    ErrorReply,
    ProtocolError,
    WsAnswer,
    WsOffer,
    WsPush,
    WsRequest,
    WsResponse,
    decode,
    decode_any,
    encode,
    split_token,
    subjects,
    type_name,
)

from . import _trace
from ._bus import connect, connect_cause, expect, publish, request
from .errors import HubUnavailable, RequestRefused, RequestTimeout

log = logging.getLogger("agents_sdk")

#: The environment variable ``Agent`` and ``HubClient`` read a token from when given none.
TOKEN_ENV = "CLAWHUB_TOKEN"

M = TypeVar("M", bound=BaseModel)
Callback = Callable[[], Awaitable[None]]

#: Path of the gateway's agent socket, used when a ws:// URL has none.
WS_AGENT_PATH = "/v1/ws/agent"
#: WebSocket close codes that mean "do not come back with this token".
WS_FATAL = {4401: ErrorCode.UNAUTHORIZED, 4403: ErrorCode.FORBIDDEN}


class Incoming:
    """One message for the participant's inbox, and how to answer it (offers only)."""

    def __init__(
        self,
        data: bytes,
        respond: Callable[[BaseModel], Awaitable[bool]] | None,
        traceparent: str | None = None,
    ) -> None:
        self.data = data
        self._respond = respond
        self.traceparent = traceparent
        """The sender's W3C traceparent (a NATS header, the envelope's field), if any."""

    @property
    def wants_reply(self) -> bool:
        """True for an offer (it needs Accept or Decline)."""
        return self._respond is not None

    async def respond(self, message: BaseModel) -> bool:
        """Answer it; False when the answer could not be sent."""
        return False if self._respond is None else await self._respond(message)


InboxHandler = Callable[[Incoming], Coroutine[Any, Any, None]]


class Transport(Protocol):
    """What the agent needs from a connection to the hub."""

    @property
    def connected(self) -> bool:
        """True while connected."""

    @property
    def credit(self) -> bool:
        """True when assignments may be pushed to the agent (``Register.credit``)."""

    async def request(self, subject: str, message: BaseModel, reply: type[M], timeout: float) -> M:
        """A request; raises like ``_bus.request``."""

    async def publish(self, subject: str, message: BaseModel) -> bool:
        """Fire and forget; False when it could not be sent."""

    async def listen(self, subject: str, handler: InboxHandler) -> None:
        """Deliver the participant's inbox (offers and cancels) to ``handler``."""

    async def close(self) -> None:
        """Drain and close."""


class NatsTransport:
    """The agent on NATS."""

    def __init__(self, nc: NATS) -> None:
        self.nc = nc

    @property
    def connected(self) -> bool:
        """True while connected."""
        return bool(self.nc.is_connected)

    @property
    def credit(self) -> bool:
        """Pushed assignments arrive on the inbox, declines go to ``hub_decline``."""
        return True

    async def request(self, subject: str, message: BaseModel, reply: type[M], timeout: float) -> M:
        """A request on a subject."""
        return await request(self.nc, subject, message, reply, timeout)

    async def publish(self, subject: str, message: BaseModel) -> bool:
        """Publish on a subject."""
        return await publish(self.nc, subject, message)

    async def listen(self, subject: str, handler: InboxHandler) -> None:
        """Subscribe to the inbox."""

        async def on_msg(msg: Msg) -> None:
            answer = None
            if msg.reply:
                reply_to = msg.reply

                async def answer_fn(message: BaseModel) -> bool:
                    return await publish(self.nc, reply_to, message)

                answer = answer_fn
            parent = msg.headers.get("traceparent") if msg.headers else None
            await handler(Incoming(msg.data, answer, parent))

        await self.nc.subscribe(subject, cb=on_msg)
        await self.nc.flush()

    async def close(self) -> None:
        """Drain, else close."""
        try:
            await asyncio.wait_for(self.nc.drain(), 5.0)
        except Exception:
            log.debug("drain failed; closing", exc_info=True)
            with contextlib.suppress(Exception):
                await self.nc.close()


class WsTransport:
    """The agent on the gateway's WebSocket."""

    def __init__(
        self,
        url: str,
        token: str | None,
        reconnected_cb: Callback | None = None,
        disconnected_cb: Callback | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.path in ("", "/"):
            parts = parts._replace(path=WS_AGENT_PATH)
        self.url = urlunsplit(parts)
        self.token = token
        self._reconnected_cb = reconnected_cb
        self._disconnected_cb = disconnected_cb
        self._ws: Any = None
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[BaseModel]] = {}
        self._handler: InboxHandler | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._fatal: RequestRefused | None = None

    @property
    def connected(self) -> bool:
        """True while the socket is open."""
        return self._ws is not None

    @property
    def credit(self) -> bool:
        """The gateway forwards pushed assignments as ``WsPush``; declines go as requests."""
        return True

    async def _open(self, timeout: float) -> Any:
        import websockets  # noqa: PLC0415 - only agents on WebSocket load it

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        return await websockets.connect(
            self.url, additional_headers=headers, open_timeout=timeout, max_size=None
        )

    async def connect(self, timeout: float) -> None:
        """Open the socket (``HubUnavailable`` after ``timeout``), then keep it open."""
        try:
            self._ws = await asyncio.wait_for(self._open(timeout), timeout)
        except (TimeoutError, OSError, Exception) as exc:
            raise HubUnavailable(f"cannot connect to {self.url}: {connect_cause(exc)}") from None
        self._reader = asyncio.create_task(self._read_forever())

    async def _read_forever(self) -> None:
        delay = 0.2
        while not self._closing:
            ws = self._ws
            if ws is not None:
                code = await self._read(ws)
                self._ws = None
                self._fail_pending(HubUnavailable(f"connection to {self.url} closed"))
                if code in WS_FATAL:
                    self._fatal = RequestRefused(WS_FATAL[code], f"the gateway closed ({code})")
                    self._fail_pending(self._fatal)
                    return
                if self._closing:
                    return
                if self._disconnected_cb is not None:
                    await self._disconnected_cb()
            await asyncio.sleep(delay)
            try:
                self._ws = await self._open(5.0)
            except Exception as exc:
                log.debug("reconnect to %s: %s", self.url, exc)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.2
            if self._reconnected_cb is not None:
                await self._reconnected_cb()

    async def _read(self, ws: Any) -> int | None:
        """Read frames until the socket closes; its close code."""
        try:
            async for data in ws:
                try:
                    frame = decode(
                        data.encode() if isinstance(data, str) else data,
                        WsResponse,
                        WsOffer,
                        WsPush,
                    )
                except ProtocolError as exc:
                    log.warning("bad frame from the gateway: %s", exc)
                    continue
                self._dispatch(frame)
        except Exception as exc:
            log.debug("socket to %s: %s", self.url, exc)
        return getattr(ws, "close_code", None)

    def _dispatch(self, frame: BaseModel) -> None:
        if isinstance(frame, WsResponse):
            future = self._pending.pop(frame.id, None) if frame.id is not None else None
            try:
                message = decode_any(json.dumps(frame.message).encode())
            except ProtocolError as exc:
                message = ErrorReply(code=exc.code, message=exc.message)
            if future is not None and not future.done():
                future.set_result(message)
            elif isinstance(message, ErrorReply):
                log.warning("the gateway refused a message: %s", message.message)
            return
        if self._handler is None:
            return
        if isinstance(frame, WsOffer):
            offer_id = frame.id

            async def answer(message: BaseModel) -> bool:
                body = WsAnswer.model_validate({"id": offer_id, "message": message.model_dump()})
                return await self._send(body)

            incoming = Incoming(encode(frame.message), answer, frame.traceparent)
        elif isinstance(frame, WsPush):
            incoming = Incoming(encode(frame.message), None, frame.traceparent)
        else:
            return
        task = asyncio.create_task(self._handler(incoming))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _fail_pending(self, exc: Exception) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(exc)

    async def _send(self, frame: BaseModel) -> bool:
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(encode(frame).decode())
        except Exception as exc:
            log.debug("send to %s failed: %s", self.url, exc)
            return False
        return True

    async def request(self, subject: str, message: BaseModel, reply: type[M], timeout: float) -> M:
        """Send a request in a ``WsRequest`` and wait for its ``WsResponse``."""
        if self._fatal is not None:
            raise self._fatal
        call_id = f"r{next(self._ids)}"
        future: asyncio.Future[BaseModel] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        frame = WsRequest(
            id=call_id, message=message.model_dump(mode="json"), traceparent=_trace.traceparent()
        )
        if not await self._send(frame):
            self._pending.pop(call_id, None)
            raise HubUnavailable(f"not connected to {self.url}")
        try:
            answer = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise RequestTimeout(f"{self.url} ({type_name(type(message))})", timeout) from None
        finally:
            self._pending.pop(call_id, None)
        return expect(answer, reply)

    async def publish(self, subject: str, message: BaseModel) -> bool:
        """Send without waiting for an answer."""
        body = message.model_dump(mode="json")
        return await self._send(WsRequest(id=None, message=body, traceparent=_trace.traceparent()))

    async def listen(self, subject: str, handler: InboxHandler) -> None:
        """The gateway forwards the inbox of the registered participant to this socket."""
        self._handler = handler

    async def close(self) -> None:
        """Close the socket; stop reconnecting."""
        self._closing = True
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        self._fail_pending(HubUnavailable("transport closed"))


def nats_token(token: str | None) -> dict[str, Any]:
    """nats-py connect options for a token: user, password, and the reply-inbox prefix the
    token's NATS user may read."""
    if not token:
        return {}
    try:
        token_id, secret = split_token(token)
    except ValueError as exc:
        raise RequestRefused(ErrorCode.UNAUTHORIZED, str(exc)) from None
    return {"user": token_id, "password": secret, "inbox_prefix": subjects.inbox_prefix(token_id)}


def is_websocket(url: str) -> bool:
    """True for ``ws://`` and ``wss://`` URLs."""
    return url.startswith(("ws://", "wss://"))


async def open_transport(
    url: str,
    *,
    token: str | None,
    timeout: float,
    name: str | None = None,
    reconnected_cb: Callback | None = None,
    disconnected_cb: Callback | None = None,
) -> Transport:
    """Connect by the URL's scheme; ``HubUnavailable`` when it fails within ``timeout``."""
    if is_websocket(url):
        ws = WsTransport(url, token, reconnected_cb, disconnected_cb)
        await ws.connect(timeout)
        return ws
    options = nats_token(token)
    nc = await connect(
        url,
        timeout=timeout,
        name=name,
        reconnected_cb=reconnected_cb,
        disconnected_cb=disconnected_cb,
        **options,
    )
    return NatsTransport(nc)
