"""The hard edges of a REST body, before FastAPI sees it: a body larger than
``max_message_bytes`` is refused with 413 (``oversize``), one that is not a JSON object, or
nested deeper than ``protocols.MAX_DEPTH``, with 400 (``malformed``), one with an integer out
of the 64-bit range or text no store can keep with 422 (``invalid``): the same checks as on
NATS and WebSocket (``protocols.load_object``), each answered with a ``claw.v1.error`` and
recorded in the caller's group when its token is good.

A pure ASGI middleware: it reads the body once (at most the limit and one chunk more), and
hands the app the same bytes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import HTTPConnection

from protocols import ProtocolError

from .bodies import read_checked, replay_body
from .caller import connection_token
from .replies import error_response
from .state import Gateway

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Methods whose body is never read (their requests are answered from the path and query).
_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


class BodyGuard:
    """ASGI middleware: size, then JSON shape, of every REST request body."""

    def __init__(
        self,
        app: ASGIApp,
        gw: Gateway,
        skip: tuple[str, ...] = (),
        own_bodies: tuple[str, ...] = (),
    ) -> None:
        """``skip``: path prefixes whose app checks its own bodies (A2A); ``own_bodies``:
        paths whose routes check their bodies themselves (``/mcp`` answers in JSON-RPC)."""
        self.app = app
        self.gw = gw
        self.skip = skip
        self.own_bodies = frozenset(own_bodies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in _NO_BODY
            or scope["path"].startswith(self.skip)
            or scope["path"] in self.own_bodies
        ):
            await self.app(scope, receive, send)
            return
        limit = self.gw.settings.max_message_bytes
        declared = dict(scope["headers"]).get(b"content-length", b"")
        try:
            body = await read_checked(receive, limit, declared)
        except ProtocolError as exc:
            self._record(scope, exc)
            await error_response(exc.code, exc.message)(scope, receive, send)
            return
        if body is None:  # the client went away
            return
        await self.app(scope, replay_body(body, receive), send)

    def _record(self, scope: Scope, exc: ProtocolError) -> None:
        """``message.refused`` in the caller's group (a bad token: nowhere to record it)."""
        try:
            who = self.gw.principal(connection_token(HTTPConnection(scope)))
        except ProtocolError:
            return
        self.gw.refused(who.group, scope["path"], exc, who.agent_id)
