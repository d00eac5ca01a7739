"""MCP on the hub: any MCP client drives the group (submit, follow, decide, chat) or works in
it (join, take, progress, submit, hand back), through the same identity model and API
handlers as every other path.

- ``server.build_server(port_for, window=...)``: the MCP server (``tools``, ``work``),
  written once against a ``port.HubPort``;
- ``http.McpEndpoint``: the server over streamable HTTP at the gateway's ``/mcp``, each call
  as its bearer token's principal, in process (``inprocess``); ``route`` adds it to the app
  without loading the MCP SDK in the event loop;
- ``stdio.run_stdio``: the server over stdio, for ``clawhub mcp`` (``clawhub.cli.mcp``),
  which reaches the hub over NATS with the caller's token.

This package's own import stays light (the route); the SDK loads with its submodules.
"""

from __future__ import annotations

from .port import MCP_PATH
from .route import LazyMcp, add_mcp_route

__all__ = ["MCP_PATH", "LazyMcp", "add_mcp_route"]
