"""The real MCP client (the ``mcp`` SDK's ``ClientSession``) over both transports, standing in
for Claude Code: streamable HTTP with a bearer token against the gateway's ``/mcp``, and
stdio against a ``clawhub mcp`` subprocess."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

#: The ``clawhub`` script of this environment (what ``.venv/bin/clawhub`` is in a checkout).
CLAWHUB = str(Path(sys.prefix) / "bin" / "clawhub")


class ToolFailed(Exception):
    """A tool call answered with ``isError``; the text is the server's message."""


@asynccontextmanager
async def http_session(url: str, token: str | None) -> AsyncIterator[ClientSession]:
    """An initialized MCP session over streamable HTTP, as ``token``."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = httpx2.Timeout(30.0, read=120.0)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


@asynccontextmanager
async def stdio_session(
    env: dict[str, str], command: str = CLAWHUB, args: list[str] | None = None
) -> AsyncIterator[ClientSession]:
    """An initialized MCP session with a ``clawhub mcp`` subprocess (``env``: its
    environment, merged over the SDK's default one)."""
    params = StdioServerParameters(command=command, args=args or ["mcp"], env=env)
    async with (
        stdio_client(params) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def call(session: ClientSession, tool: str, /, **arguments: Any) -> dict[str, Any]:
    """Call a tool; its structured result, or ``ToolFailed`` with the server's message."""
    result = await session.call_tool(tool, arguments)
    text = " ".join(getattr(c, "text", "") for c in result.content)
    if result.is_error:
        raise ToolFailed(text)
    if result.structured_content is not None:
        return dict(result.structured_content)
    return dict(json.loads(text))


async def read_json(session: ClientSession, uri: str) -> Any:
    """Read a resource holding JSON."""
    result = await session.read_resource(uri)
    return json.loads(getattr(result.contents[0], "text", ""))
