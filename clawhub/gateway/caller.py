"""Who calls: the token of a request or a socket, and the ``Caller`` dependency that turns
it into the ``Principal`` a route serves (or refuses with ``CallerRefused``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from protocols import ProtocolError

from ..errors import CallerRefused
from ..runtime.auth import Principal
from ..runtime.trace import INCOMING

if TYPE_CHECKING:
    from .state import Gateway

bearer = HTTPBearer(auto_error=False, description="A token from `clawhub token create`.")


def connection_token(conn: HTTPConnection) -> str | None:
    """The token of a request or a socket: ``Authorization: Bearer <token>``, else the
    ``token`` query parameter (for browsers)."""
    auth = conn.headers.get("authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    return token or conn.query_params.get("token")


def request_token(
    request: Request,
    creds: HTTPAuthorizationCredentials | None,
    token: str | None,
) -> str | None:
    """The token of a REST call: the bearer header, else the ``token`` query parameter."""
    if creds is not None:
        return creds.credentials
    return token or request.query_params.get("token")


async def caller(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    token: Annotated[str | None, Query(description="Token (for browsers).")] = None,
) -> Principal:
    """The ``Principal`` of a REST call; ``CallerRefused`` when its token is refused. Notes
    the call's ``traceparent`` header for the hub's span of it (``runtime.trace``)."""
    INCOMING.set(request.headers.get("traceparent"))
    gw: Gateway = request.app.state.gateway
    try:
        return gw.principal(request_token(request, creds, token))
    except ProtocolError as exc:
        raise CallerRefused(exc) from None


#: A route parameter that is the caller of the request.
Caller = Annotated[Principal, Depends(caller)]
