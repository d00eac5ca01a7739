"""The ``/mcp`` route, light: the MCP SDK (seconds of imports on a loaded machine) is imported
in a thread as soon as the gateway's app is made, never in the event loop and never by a hub
that fails before serving; the first request waits for it there (``asyncio.to_thread``)."""

from __future__ import annotations

import asyncio
import importlib
import threading
from typing import Any

from fastapi import FastAPI
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..state import Gateway
from .port import MCP_PATH

_ENDPOINT_MODULE = "clawhub.gateway.mcp.http"


class LazyMcp:
    """ASGI app of ``/mcp`` that makes the ``McpEndpoint`` on its first request."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.endpoint: Any = None
        self._made = asyncio.Lock()
        threading.Thread(
            target=importlib.import_module, args=(_ENDPOINT_MODULE,), daemon=True
        ).start()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.endpoint is None:
            async with self._made:
                if self.endpoint is None:
                    module = await asyncio.to_thread(importlib.import_module, _ENDPOINT_MODULE)
                    self.endpoint = module.McpEndpoint(self.gw)
        await self.endpoint(scope, receive, send)

    async def close(self) -> None:
        """End the endpoint's sessions and workers, if it was made."""
        if self.endpoint is not None:
            await self.endpoint.close()


def add_mcp_route(app: FastAPI, gw: Gateway) -> LazyMcp:
    """Serve MCP (streamable HTTP) at ``/mcp``; its sessions end with ``gw.close()``."""
    route = LazyMcp(gw)
    methods = ["GET", "POST", "DELETE"]
    app.router.routes.append(Route(MCP_PATH, endpoint=route, methods=methods))
    gw.on_close.append(route.close)
    app.state.mcp = route
    return route
