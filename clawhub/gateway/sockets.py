"""What every WebSocket route of the gateway shares: admission (the token, the connection
limits) and the close codes.

A refused socket first gets a ``claw.v1.ws.response`` carrying the ``claw.v1.error``, then
is closed: 4401 the token is missing, unknown or revoked; 4403 its group is not served here;
1013 the gateway (or the group) holds as many sockets as it may; 1011 the gateway failed.
"""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import WebSocket

from protocols import ErrorCode, ErrorReply, ProtocolError, WsResponse

from ..runtime.auth import Principal
from .caller import connection_token
from .state import Gateway

#: Close codes: the token was refused (4401), not allowed (4403), or the gateway is full.
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_FULL = 1013
#: Try again later (elsewhere): the group is active on another replica.
CLOSE_TRY_AGAIN = 1013
#: The gateway failed while serving the socket (a bug: logged).
CLOSE_ERROR = 1011


async def admit(gw: Gateway, ws: WebSocket) -> tuple[Principal, str] | None:
    """Accept the socket; check the token and the connection limits (closing if refused).
    The caller and its token."""
    await ws.accept()
    token = connection_token(ws) or ""
    try:
        who = gw.principal(token)
    except ProtocolError as exc:
        code = CLOSE_UNAUTHORIZED if exc.code is ErrorCode.UNAUTHORIZED else CLOSE_FORBIDDEN
        await _refuse(ws, exc, code)
        return None
    if who.group not in gw.hubs:  # a replica standing by for the group
        elsewhere = ProtocolError(ErrorCode.UNAVAILABLE, gw.elsewhere(who.group))
        await _refuse(ws, elsewhere, CLOSE_TRY_AGAIN)
        return None
    if gw.sockets_full(who.group):
        full = ProtocolError(ErrorCode.RATE_LIMITED, "too many WebSocket connections; retry later")
        await _refuse(ws, full, CLOSE_FULL)
        return None
    return who, token


async def _refuse(ws: WebSocket, exc: ProtocolError, code: int) -> None:
    with contextlib.suppress(Exception):
        await ws.send_text(WsResponse(id=None, message=error_frame(exc)).model_dump_json())
        await ws.close(code=code, reason=exc.message[:120])


def error_frame(exc: ProtocolError) -> dict[str, Any]:
    """A refusal as the ``message`` of a ``WsResponse``."""
    return ErrorReply(code=exc.code, message=exc.message).model_dump(mode="json")
