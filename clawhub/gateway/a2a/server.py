"""``A2AServer``: the A2A protocol on the gateway, for every group it serves.

- ``GET /.well-known/agent-card.json``: the card of the default group (the hub's
  ``group`` setting when served, else the first group); public, like any A2A card;
- ``GET /a2a/<group>/.well-known/agent-card.json``: the card of ``group``;
- ``POST /a2a/<group>``: JSON-RPC 2.0 (``SendMessage``, ``GetTask``...);
- ``/a2a/<group>/message:send``, ``/tasks/{id}``...: HTTP+JSON, as the a2a-sdk routes them.

Every call but the card carries a token of that group (``Authorization: Bearer``): none, an
unknown or a revoked one is refused with 401, a token of another group with 403, each with
an A2A-shaped body and recorded in the group of the path. A body larger than
``max_message_bytes``, or JSON no store can keep (``protocols.load_object``), is refused
before the SDK parses it; what the SDK refuses itself (a method it does not know, params
that are not the proto's) is recorded from its answer. The A2A paths are not under the
gateway's ``BodyGuard``: their errors are A2A's, not ``claw.v1.error``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes import (
    DefaultServerCallContextBuilder,
    create_jsonrpc_routes,
    create_rest_routes,
)
from starlette._utils import get_route_path
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router

from protocols import ErrorCode, GetGroup, ListAgents, ProtocolError, subjects

from ..bodies import read_checked, replay_body
from ..caller import connection_token
from ..state import Gateway
from . import mapping as m
from .card import A2A_PREFIX, CARD_PATH, group_card
from .handler import BLOCKING_WAIT, Call, GroupHandler

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: The scope key that carries the ``Call`` to the handler.
CALL_KEY = "clawhub.a2a"
#: Most bytes of an error answer read back for the record.
SNIFF_LIMIT = 65536

#: ``google.rpc`` status and reason of each HTTP status we answer before the SDK.
_STATUS = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}
_REASON = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}


class _Context(DefaultServerCallContextBuilder):
    """The SDK's call context, with our ``Call`` in its state."""

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        context.state["clawhub"] = request.scope[CALL_KEY]
        return context


def _base(conn: HTTPConnection) -> str:
    return f"{conn.url.scheme}://{conn.url.netloc}"


class A2AServer:
    """The ASGI app of ``/a2a`` (mounted by ``create_app``) and the root card endpoint.

    ``blocking_wait``: seconds a blocking ``SendMessage`` waits for its task to finish."""

    def __init__(self, gw: Gateway, blocking_wait: float = BLOCKING_WAIT) -> None:
        self.gw = gw
        self.blocking_wait = blocking_wait
        # a replica serves every group it may hold (``served``), active here or not
        groups = sorted(gw.served) if gw.served else list(gw.hubs)
        self.default = gw.settings.group if gw.settings.group in groups else groups[0]
        self.handlers: dict[str, GroupHandler] = {}
        self.routers = {group: Router(self._routes(group), default=_no_path) for group in groups}

    def _routes(self, group: str) -> list[BaseRoute]:
        handler = GroupHandler(self.gw, group, blocking_wait=self.blocking_wait)
        self.handlers[group] = handler
        context = _Context()

        async def card(request: Request) -> Response:
            return await self.card(request, group)

        routes: list[BaseRoute] = [Route(CARD_PATH, card, methods=["GET"])]
        routes += create_jsonrpc_routes(handler, rpc_url="/", context_builder=context)
        rest = create_rest_routes(handler, context_builder=context)
        routes += [r for r in rest if not isinstance(r, Mount)]  # no tenants: a group each
        return routes

    async def card(self, request: Request, group: str | None = None) -> Response:
        """The card of ``group`` (default: the default group), built from its live
        participants now."""
        group = group or self.default
        hub = self.gw.hubs.get(group)
        if hub is None:  # a replica standing by for the group
            return _refusal(503, f"unavailable: {self.gw.elsewhere(group)}", False)
        agents = await hub.handle(f"api.{subjects.API_AGENTS}", ListAgents())
        info = await hub.handle(f"api.{subjects.API_GROUP}", GetGroup())
        card = group_card(group, _base(request), agents or ListAgents(), info)
        return JSONResponse(agent_card_to_dict(card), headers={"Cache-Control": "no-cache"})

    async def root_card(self, request: Request) -> Response:
        """``/.well-known/agent-card.json``: the default group's card."""
        return await self.card(request)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1000})
            return
        group, _, tail = get_route_path(scope).lstrip("/").partition("/")
        tail = "/" + tail
        router = self.routers.get(group)
        rpc = tail == "/"
        if router is None:
            answer = _refusal(404, f"no group {group!r} is served here", rpc, ErrorCode.FORBIDDEN)
            await answer(scope, receive, send)
            return
        prefix = f"{scope.get('root_path', '')}/{group}"
        path = prefix + tail
        inner = dict(scope, root_path=prefix, path=path)
        if tail == CARD_PATH and scope["method"] in ("GET", "HEAD"):
            await router(inner, receive, send)
            return
        where = f"{A2A_PREFIX}/{group}{tail}"
        call = self._admit(scope, group, where, rpc)
        if isinstance(call, Response):
            await call(scope, receive, send)
            return
        body, refused = await self._body(receive)
        if refused is not None:
            self._record(group, call, refused)
            status = 413 if refused.code is ErrorCode.OVERSIZE else 400
            answer = _refusal(status, f"{refused.code.value}: {refused.message}", rpc, refused.code)
            await answer(scope, receive, send)
            return
        inner[CALL_KEY] = call
        await router(inner, replay_body(body, receive), self._sniffer(group, call, rpc, send))

    def _admit(self, scope: Scope, group: str, where: str, rpc: bool) -> Call | Response:
        """The caller of a request to ``group``, or the refusal to send (recorded)."""
        token = connection_token(HTTPConnection(scope)) or ""
        try:
            who = self.gw.principal(token)
        except ProtocolError as exc:
            self.gw.refused(group, where, exc, None)
            status = 401 if exc.code is ErrorCode.UNAUTHORIZED else 403
            return _refusal(status, f"{exc.code.value}: {exc.message}", rpc, code=exc.code)
        if who.group != group:
            other = ProtocolError(
                ErrorCode.FORBIDDEN,
                f"token {who.token_id} belongs to group {who.group}, not {group}",
            )
            self.gw.refused(group, where, other, None)
            return _refusal(403, f"forbidden: {other.message}", rpc, code=other.code)
        if group not in self.gw.hubs:  # a replica standing by: A2A needs the active hub
            away = ProtocolError(ErrorCode.UNAVAILABLE, self.gw.elsewhere(group))
            return _refusal(503, f"unavailable: {away.message}", rpc, code=away.code)
        return Call(who=who, token=token, where=where, base=_base(HTTPConnection(scope)))

    async def _body(self, receive: Receive) -> tuple[bytes, ProtocolError | None]:
        """The request body, read once and checked at the hub's hard edges as on every
        other path (``bodies.read_checked``), or what is wrong with it."""
        try:
            body = await read_checked(receive, self.gw.settings.max_message_bytes)
        except ProtocolError as exc:
            return b"", exc
        return body or b"", None

    def _record(self, group: str, call: Call, error: ProtocolError) -> None:
        self.gw.refused(group, call.where, error, call.who.agent_id)
        call.recorded = True

    def _sniffer(self, group: str, call: Call, rpc: bool, send: Send) -> Send:
        """``send``, recording an error answer the SDK gave on its own (a method it does
        not know, params it could not parse) that the handler did not record."""
        status = 200
        stream = False
        body = bytearray()

        async def sniff(message: Message) -> None:
            nonlocal status, stream
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = dict(message.get("headers") or [])
                stream = b"text/event-stream" in headers.get(b"content-type", b"")
            elif message["type"] == "http.response.body" and not stream:
                if len(body) < SNIFF_LIMIT:
                    body.extend(message.get("body", b""))
                if not message.get("more_body", False) and not call.recorded:
                    error = _answered_error(bytes(body), status, rpc)
                    if error is not None:
                        self._record(group, call, error)
            await send(message)

        return sniff


def _answered_error(body: bytes, status: int, rpc: bool) -> ProtocolError | None:
    """The refusal in an A2A answer, if it is one."""
    if status < 400 and not rpc:
        return None
    try:
        obj = json.loads(body)
    except ValueError:  # Starlette's own 405 (a wrong method) is not a refused message
        failed = ProtocolError(ErrorCode.INTERNAL, f"A2A answer {status}: not JSON")
        return failed if status >= 400 and status != 405 else None
    error = obj.get("error") if isinstance(obj, dict) else None
    if not isinstance(error, dict):
        return None
    text = str(error.get("message", ""))[:500]
    if rpc:
        code = m.RPC_CODES.get(error.get("code", 0), ErrorCode.INVALID)
    else:
        details = error.get("details") or [{}]
        reason = details[0].get("reason", "") if isinstance(details[0], dict) else ""
        code = m.REASON_CODES.get(str(reason), ErrorCode.INVALID)
    return ProtocolError(code, f"A2A request refused: {text}")


#: The JSON-RPC error code of each refusal made before the SDK sees a request.
_RPC_ERRORS = {ErrorCode.MALFORMED: -32700, ErrorCode.INVALID: -32602}


def _refusal(status: int, message: str, rpc: bool, code: ErrorCode | None = None) -> JSONResponse:
    """An A2A-shaped refusal the SDK never sees: JSON-RPC's error object on the JSON-RPC
    endpoint (HTTP 200 as JSON-RPC answers, but 401 and 403 for a refused token), a
    ``google.rpc.Status`` with the HTTP status on HTTP+JSON."""
    code = code or ErrorCode.INVALID
    data = {"clawhub_code": code.value}
    headers = {"WWW-Authenticate": 'Bearer realm="clawhub"'} if status == 401 else None
    if rpc:
        error = {"code": _RPC_ERRORS.get(code, -32600), "message": message, "data": data}
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": None, "error": error}
        http = status if status in (401, 403) else 200
        return JSONResponse(body, status_code=http, headers=headers)
    info = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": _REASON.get(status, "INVALID_REQUEST"),
        "domain": "a2a-protocol.org",
        "metadata": data,
    }
    body = {
        "error": {
            "code": status,
            "status": _STATUS.get(status, "INVALID_ARGUMENT"),
            "message": message,
            "details": [info],
        }
    }
    return JSONResponse(body, status_code=status, headers=headers)


async def _no_path(scope: Scope, receive: Receive, send: Send) -> None:
    """A path no A2A binding has: an HTTP+JSON 404 (a wrong path is not recorded)."""
    call = scope.get(CALL_KEY)
    if isinstance(call, Call):
        call.recorded = True
    await _refusal(404, f"no A2A method at {scope['path']}", False)(scope, receive, send)
