"""MCP servers as toolkits: an ``LLMAgent`` takes the tools of any MCP server, started as a
command over stdio or reached by URL (Streamable HTTP), with the ``mcp`` client.

::

    agent = LLMAgent(
        "researcher",
        model="anthropic/claude-sonnet-4-5",
        mcp_servers=[
            {"command": ["npx", "-y", "@modelcontextprotocol/server-filesystem", "/data"]},
            {"url": "http://127.0.0.1:9000/mcp", "prefix": "wiki_"},
            "http://127.0.0.1:9001/mcp",            # a bare URL works too
        ],
    )

A server entry is a URL, or a mapping with ``command`` (a list, or one string split like a
shell would), optional ``env`` (added to a minimal environment: PATH, HOME...), ``cwd``,
``name`` (for messages; default: the command or the host) and ``prefix`` (put before each
of its tool names, to tell two servers' tools apart), or with ``url``.

Each attempt opens its own sessions (a stdio server is started for the task and stopped
after it), lists the tools and offers them to the model next to the Python ones. A tool
that answers with an error goes back to the model, as any tool error does. A server that
cannot start, stops answering within ``timeout`` or dies mid-task raises
``ToolServerError``: the attempt fails with a message naming the server, never hangs.

``mcp`` is imported (in a worker thread) when the first such task runs, never by
``import agents_sdk``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import re
import shlex
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ._context import TaskContext
from .errors import ToolError, ToolServerError
from .tools import Tool

__all__ = ["MCPServerSpec", "ServerConfig", "open_mcp_tools"]

log = logging.getLogger("agents_sdk")

#: An entry of ``LLMAgent(mcp_servers=[...])``: a URL or a mapping (see the module doc).
MCPServerSpec = str | Mapping[str, Any]

_KEYS = {"command", "url", "env", "cwd", "name", "prefix"}
_CONNECTION_CLOSED = -32000  # the JSON-RPC codes of the mcp SDK for a dead connection
_REQUEST_TIMEOUT = -32001


@dataclass(frozen=True)
class ServerConfig:
    """One MCP server, as parsed from an ``MCPServerSpec``."""

    name: str
    command: list[str] | None = None
    url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    prefix: str = ""

    @classmethod
    def parse(cls, spec: MCPServerSpec) -> ServerConfig:
        """Check an entry; raises ``ValueError`` naming what is wrong."""
        if isinstance(spec, str):
            spec = {"url": spec}
        if not isinstance(spec, Mapping):
            raise ValueError(f"an MCP server is a URL or a mapping, got {spec!r}")
        unknown = set(spec) - _KEYS
        if unknown:
            raise ValueError(f"MCP server {dict(spec)!r}: unknown keys {sorted(unknown)}")
        command, url = spec.get("command"), spec.get("url")
        if (command is None) == (url is None):
            raise ValueError(f"MCP server {dict(spec)!r}: give either 'command' or 'url'")
        argv: list[str] | None = None
        if command is not None:
            argv = shlex.split(command) if isinstance(command, str) else [str(c) for c in command]
            if not argv:
                raise ValueError("MCP server: 'command' is empty")
        if url is not None and urlsplit(str(url)).scheme not in ("http", "https"):
            raise ValueError(f"MCP server url {url!r}: must be http:// or https://")
        name = spec.get("name") or (
            argv[-1].rsplit("/", 1)[-1] if argv else urlsplit(str(url)).netloc
        )
        prefix = str(spec.get("prefix", ""))
        if prefix and not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", prefix):
            raise ValueError(f"MCP server {name}: prefix {prefix!r} must be letters, digits, _ -")
        return cls(
            name=str(name),
            command=argv,
            url=str(url) if url is not None else None,
            env={str(k): str(v) for k, v in dict(spec.get("env") or {}).items()},
            cwd=str(spec["cwd"]) if spec.get("cwd") else None,
            prefix=prefix,
        )


async def _load_mcp() -> Any:
    return await asyncio.to_thread(importlib.import_module, "mcp")


def _text_of(result: Any) -> str:
    """The text of a ``CallToolResult``: its text parts, else its structured content."""
    parts: list[str] = []
    for item in getattr(result, "content", None) or []:
        text = getattr(item, "text", None)
        parts.append(text if isinstance(text, str) else f"[{getattr(item, 'type', 'content')}]")
    if not parts and getattr(result, "structured_content", None) is not None:
        import json  # noqa: PLC0415 - rare path

        parts.append(json.dumps(result.structured_content, default=str))
    return "\n".join(parts)


def _server_error(server: ServerConfig, exc: BaseException, doing: str) -> ToolServerError:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:  # anyio's task groups
        exc = exc.exceptions[0]
    code = getattr(exc, "code", None)
    if code == _CONNECTION_CLOSED:
        why = "the server closed the connection (it died or exited)"
    elif code == _REQUEST_TIMEOUT or isinstance(exc, TimeoutError):
        why = "the server did not answer in time"
    else:
        why = f"{type(exc).__name__}: {exc}"
    return ToolServerError(server.name, f"MCP server {server.name}: {doing} failed: {why}")


class _Session:
    """One open MCP session and the tools it offers."""

    def __init__(self, server: ServerConfig, client: Any, timeout: float) -> None:
        self.server = server
        self.client = client
        self.timeout = timeout
        self.dead: ToolServerError | None = None

    async def tools(self) -> list[Tool]:
        listed: list[Any] = []
        cursor: str | None = None
        for _ in range(100):  # a paginator that never ends cannot hang the task
            page = await self.client.list_tools(cursor=cursor)
            listed.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        out = []
        for item in listed:
            local = self.server.prefix + re.sub(r"[^A-Za-z0-9_-]", "_", item.name)[:64]
            schema = dict(item.input_schema or {"type": "object", "properties": {}})
            schema.pop("title", None)
            out.append(
                Tool(
                    name=local[:64],
                    description=item.description or item.name,
                    parameters=schema,
                    run=self._runner(item.name),
                    source=f"mcp:{self.server.name}",
                )
            )
        return out

    def _runner(self, remote: str) -> Any:
        async def run(arguments: dict[str, Any], ctx: TaskContext) -> str:
            if self.dead is not None:
                raise self.dead
            try:
                async with asyncio.timeout(self.timeout + 5):
                    result = await self.client.call_tool(
                        remote, arguments, read_timeout_seconds=self.timeout
                    )
            except Exception as exc:
                if type(exc).__name__ == "MCPError" and getattr(exc, "code", None) not in (
                    _CONNECTION_CLOSED,
                    _REQUEST_TIMEOUT,
                ):
                    raise ToolError(f"{remote}: {getattr(exc, 'message', exc)}") from None
                self.dead = _server_error(self.server, exc, f"calling {remote}")
                raise self.dead from None
            text = _text_of(result)
            if getattr(result, "is_error", False):
                raise ToolError(text or f"{remote} failed")
            return text

        return run


@contextlib.asynccontextmanager
async def open_mcp_tools(
    servers: Sequence[ServerConfig], *, timeout: float = 60.0
) -> AsyncIterator[list[Tool]]:
    """Open a session with each server, for one task: ``async with ... as tools``.

    Raises ``ToolServerError`` when a server cannot be started or listed within
    ``timeout`` seconds; the sessions (and stdio servers) are closed on the way out.
    """
    if not servers:
        yield []
        return
    mcp = await _load_mcp()
    tools: list[Tool] = []
    stack = AsyncExitStack()
    try:
        for server in servers:
            if server.command is not None:
                target: Any = mcp.StdioServerParameters(
                    command=server.command[0],
                    args=server.command[1:],
                    env=server.env or None,
                    cwd=server.cwd,
                )
            else:
                target = server.url
            client = mcp.Client(target, read_timeout_seconds=timeout)
            try:
                async with asyncio.timeout(timeout):
                    await stack.enter_async_context(client)
                    found = await _Session(server, client, timeout).tools()
            except Exception as exc:
                raise _server_error(server, exc, "starting it and listing its tools") from None
            log.info("MCP server %s: %d tools", server.name, len(found))
            tools.extend(found)
        yield tools
    finally:
        await _close(stack)


async def _close(stack: AsyncExitStack) -> None:
    """Close the sessions; a server that already died may make closing fail: say so, go on."""
    try:
        async with asyncio.timeout(15):
            await stack.aclose()
    except Exception as exc:
        log.info("closing MCP sessions: %s", exc)
