"""The HTTP gateway (FastAPI, served by the hub process): one app composed of the REST routes
(``rest``: OpenAPI, health, Prometheus metrics) and the WebSocket and SSE routes (``ws``).

Every call carries a token (``Authorization: Bearer <token>``, or ``?token=``); the token's
group picks the hub, so a caller sees only its own group (``caller``, ``state``).
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from protocols import ErrorCode, ProtocolError

from ..errors import CallerRefused
from ..runtime.auth import Tokens
from ..runtime.hub import Hub
from ..settings import HubSettings
from .caller import connection_token
from .replies import error_response
from .rest import add_rest_routes
from .state import Gateway
from .ws import add_ws_routes


def create_app(gw: Gateway) -> FastAPI:
    """The FastAPI app of a gateway."""
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

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()[:5]
        )
        error = ProtocolError(ErrorCode.INVALID, f"invalid request: {errors}")
        try:  # recorded in the caller's group when the token is good
            who = gw.principal(connection_token(request))
            gw.hubs[who.group].board.refused(request.url.path, error, who.agent_id)
        except ProtocolError:
            pass
        return error_response(error.code, error.message)

    add_rest_routes(app, gw)
    add_ws_routes(app, gw)
    return app


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
