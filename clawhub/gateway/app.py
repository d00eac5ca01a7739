"""The HTTP gateway (FastAPI, served by the hub process): one app composed of the REST routes
(``rest``: OpenAPI, health, Prometheus metrics), the agent socket (``ws``) and the event
stream over WebSocket and SSE (``stream``), behind the body guard (``guard``).

Every call carries a token (``Authorization: Bearer <token>``, or ``?token=``); the token's
group picks the hub, so a caller sees only its own group (``caller``, ``state``). Every error
is a ``claw.v1.error``: the hub's own refusals, the body guard's (``guard``), and FastAPI's
and Starlette's (a body that breaks the schema, an unknown path, a failure in a route).
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from protocols import ErrorCode, ProtocolError, build_models

from ..errors import CallerRefused
from ..runtime.auth import Tokens
from ..runtime.hub import Hub
from ..settings import HubSettings
from .a2a import A2A_PREFIX, mount_a2a
from .caller import connection_token
from .guard import BodyGuard
from .mcp import MCP_PATH, add_mcp_route
from .replies import error_response, error_status_response
from .rest import add_rest_routes
from .state import Gateway
from .stream import add_stream_routes
from .ws import add_ws_routes


def create_app(gw: Gateway) -> FastAPI:
    """The FastAPI app of a gateway."""
    build_models()  # the hub uses every message; FastAPI's request bodies want them built
    app = FastAPI(
        title="Claw Hub",
        version="1.0.0",
        description="REST gateway of a Claw Hub: the same requests and replies as the NATS "
        "API (`protocols.API`), scoped to the group of the caller's token. WebSocket: "
        "`/v1/ws/agent` (participants) and `/v1/ws/events` (event stream); see docs/gateway.md.",
    )
    app.state.gateway = gw

    @app.exception_handler(CallerRefused)
    async def refused(_request: Request, exc: CallerRefused) -> JSONResponse:
        return error_response(exc.error.code, exc.error.message)

    def record(request: Request, error: ProtocolError) -> None:
        try:  # recorded in the caller's group when the token is good
            who = gw.principal(connection_token(request))
            gw.refused(who.group, request.url.path, error, who.agent_id)
        except ProtocolError:
            pass

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()[:5]
        )
        code = ErrorCode.INVALID
        for e in exc.errors():
            if e.get("type") == "json_invalid":
                code = ErrorCode.MALFORMED
            elif tuple(e.get("loc", ())) == ("body", "type") and e.get("type") == "literal_error":
                code = ErrorCode.UNKNOWN_TYPE  # as on NATS: another message's type
            else:
                continue
            break
        error = ProtocolError(code, f"invalid request: {errors}")
        record(request, error)
        return error_response(error.code, error.message)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        """Starlette's own answers (no such path, method not allowed, a body FastAPI could
        not read) as ``claw.v1.error``, with their status."""
        code = _HTTP_CODES.get(exc.status_code, ErrorCode.INVALID)
        if exc.status_code >= 500:
            code = ErrorCode.INTERNAL
        error = ProtocolError(code, f"{request.method} {request.url.path}: {exc.detail}")
        if exc.status_code not in (404, 405):  # a wrong path is not a refused message
            record(request, error)
        return error_status_response(exc.status_code, error.code, error.message, exc.headers)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        """A bug in a route: a ``claw.v1.error`` (``internal``); the server logs it."""
        error = ProtocolError(ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        record(request, error)
        return error_response(error.code, error.message)

    app.add_middleware(
        BodyGuard, gw=gw, skip=(A2A_PREFIX + "/",), own_bodies=(MCP_PATH,)
    )  # A2A and /mcp answer bad bodies in their own protocol

    add_rest_routes(app, gw)
    add_ws_routes(app, gw)
    add_stream_routes(app, gw)
    app.state.a2a = mount_a2a(app, gw)
    add_mcp_route(app, gw)
    return app


#: The ``ErrorCode`` of each status Starlette answers on its own.
_HTTP_CODES: dict[int, ErrorCode] = {
    400: ErrorCode.MALFORMED,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.UNKNOWN_TYPE,
    405: ErrorCode.UNKNOWN_TYPE,
    413: ErrorCode.OVERSIZE,
    422: ErrorCode.INVALID,
    429: ErrorCode.RATE_LIMITED,
}


def openapi_document() -> str:
    """The canonical text of the OpenAPI document (committed as ``clawhub/openapi.json``):
    the app of a hub that is built but not started, on an in-memory store."""
    from ..store.store import Store  # noqa: PLC0415 - only the schema export needs a store

    store = Store("sqlite://")
    try:
        hub = Hub(HubSettings(group="default"), store=store)
        app = create_app(Gateway({hub.group: hub}, Tokens(store), hub.settings))
        spec = app.openapi()
    finally:
        store.close()
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
