"""``McpEndpoint``: the gateway's ``/mcp`` route, the MCP server over streamable HTTP (the MCP
SDK's session manager), behind our tokens.

Every request carries a token (``Authorization: Bearer <token>``, the same ``Principal`` the
REST routes get): a missing, unknown or revoked one is answered 401 (a group not served
here 403) with a ``claw.v1.error``; an MCP session is bound to the token that opened it (the
SDK answers another token's request for it as an unknown session), and each tool call is
made as the token's principal, checked again at the call (a token revoked meanwhile is
refused at once). A body that is not JSON-RPC is recorded as refused in the caller's group
and answered by the SDK with its JSON-RPC error (``-32700`` parse error...).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import Context
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.requests import HTTPConnection
from starlette.types import Message, Receive, Scope, Send

from protocols import ErrorCode, ProtocolError

from ..caller import connection_token
from ..replies import error_status_response
from ..state import Gateway
from .inprocess import InProcessPort
from .port import MCP_PATH, HubPort
from .server import build_server
from .tools import ClawMcp


class McpEndpoint:
    """ASGI app of ``/mcp``. Its session manager starts with the first request and stops
    with ``close`` (the gateway's ``on_close``)."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        s = gw.settings
        self.server: ClawMcp = build_server(self.port_for, window=s.mcp_window)
        self.server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            max_request_body_size=s.max_message_bytes,
            host=s.gateway_host,
        )
        self.manager: StreamableHTTPSessionManager = self.server.session_manager
        self._running: asyncio.Task[None] | None = None
        self._started = asyncio.Event()
        self._stop = asyncio.Event()

    def port_for(self, ctx: Context[Any, Any]) -> HubPort:
        """The port of the caller of one MCP request: its bearer token, checked now."""
        headers = ctx.headers or {}
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        return InProcessPort(self.gw, self.gw.principal(token))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        conn = HTTPConnection(scope)
        token = connection_token(conn)
        try:
            who = self.gw.principal(token)
        except ProtocolError as exc:
            status = 401 if exc.code is ErrorCode.UNAUTHORIZED else 403
            headers = {"WWW-Authenticate": 'Bearer realm="clawhub"'} if status == 401 else None
            await error_status_response(status, exc.code, exc.message, headers)(
                scope, receive, send
            )
            return
        if who.group not in self.gw.hubs:  # a replica standing by: MCP needs the active hub
            await error_status_response(503, ErrorCode.UNAVAILABLE, self.gw.elsewhere(who.group))(
                scope, receive, send
            )
            return
        scope["user"] = AuthenticatedUser(
            AccessToken(token=who.token_id, client_id=who.token_id, scopes=[who.role])
        )
        if scope["method"] == "POST":
            body, receive = await _read_body(receive, self.gw.settings.max_message_bytes)
            problem = _not_json_rpc(body)
            if problem is not None:
                self.gw.refused(
                    who.group, MCP_PATH, ProtocolError(ErrorCode.MALFORMED, problem), who.agent_id
                )
        await self._ensure_running()
        await self.manager.handle_request(scope, receive, send)

    async def _ensure_running(self) -> None:
        if self._running is None:
            self._running = asyncio.create_task(self._run(), name="mcp-sessions")
        await self._started.wait()

    async def _run(self) -> None:
        async with self.manager.run():
            self._started.set()
            await self._stop.wait()

    async def close(self) -> None:
        """Every worker leaves (its tasks go back to the hub), the sessions end."""
        await self.server.tooling.leave_all("the gateway stopped")
        self._stop.set()
        running, self._running = self._running, None
        if running is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(running, 5)


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, Receive]:
    """The request's body (up to ``limit`` and one chunk more; the SDK refuses a larger
    one), and a ``receive`` that hands the same bytes on."""
    body = b""
    more = True
    disconnect: Message | None = None
    while more and len(body) <= limit:
        message = await receive()
        if message["type"] == "http.disconnect":
            disconnect = message
            break
        body += message.get("body", b"")
        more = bool(message.get("more_body", False))
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if disconnect is not None:
                return disconnect
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return body, replay


def _not_json_rpc(body: bytes) -> str | None:
    """Why a POST body is not a JSON-RPC message, or None."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError) as exc:
        return f"MCP request that is not JSON: {str(exc)[:200]}"
    if not isinstance(obj, dict):
        return f"MCP request that is not a JSON-RPC object (a JSON {type(obj).__name__})"
    if obj.get("jsonrpc") != "2.0" or not ("method" in obj or "id" in obj):
        return "MCP request that is not JSON-RPC 2.0 (no jsonrpc: 2.0, method or id)"
    return None


__all__ = ["McpEndpoint"]
