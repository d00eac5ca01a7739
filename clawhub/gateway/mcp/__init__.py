"""MCP on the hub: any MCP client drives the group (submit, follow, decide, chat) or works in
it (join, take, progress, submit, hand back), through the same identity model and API
handlers as every other path.

- ``build_server(port_for, window=...)``: the MCP server (``server``, ``tools``, ``work``),
  written once against a ``HubPort`` (``port``);
- ``McpEndpoint``: the server over streamable HTTP at the gateway's ``/mcp``, each call as
  its bearer token's principal, in process (``http``, ``inprocess``);
- ``clawhub mcp`` (``clawhub.cli.mcp``) serves the same server over stdio, over NATS with
  the caller's token.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.routing import Route

from ..state import Gateway
from .http import MCP_PATH, McpEndpoint
from .inprocess import InProcessPort
from .port import HubPort, HubUnreachable, InboxHandler, ParticipantLink, Respond
from .server import DEFAULT_WINDOW, build_server
from .stdio import run_stdio
from .tools import ClawMcp, PortFor
from .worker import MAX_TAKE_WAIT, Worker


def add_mcp_route(app: FastAPI, gw: Gateway) -> McpEndpoint:
    """Serve MCP (streamable HTTP) at ``/mcp``; its sessions end with ``gw.close()``."""
    endpoint = McpEndpoint(gw)
    app.router.routes.append(
        Route(
            MCP_PATH, endpoint=endpoint, methods=["GET", "POST", "DELETE"], include_in_schema=False
        )
    )
    gw.on_close.append(endpoint.close)
    app.state.mcp = endpoint
    return endpoint


__all__ = [
    "DEFAULT_WINDOW",
    "MAX_TAKE_WAIT",
    "MCP_PATH",
    "ClawMcp",
    "HubPort",
    "HubUnreachable",
    "InProcessPort",
    "InboxHandler",
    "McpEndpoint",
    "ParticipantLink",
    "PortFor",
    "Respond",
    "Worker",
    "add_mcp_route",
    "build_server",
    "run_stdio",
]
