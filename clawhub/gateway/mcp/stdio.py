"""The MCP server over stdio (``clawhub mcp``), with the SDK's stdio transport, plus one hard
edge the SDK leaves open: a line on stdin that is not a JSON-RPC message is dropped by the
SDK without an answer; here it is answered with a JSON-RPC parse error (``-32700``, ``id``
null, as JSON-RPC 2.0 asks) and recorded (``refused``: the server's log, since it never
reached the hub)."""

from __future__ import annotations

from collections.abc import Callable

import anyio
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp_types import PARSE_ERROR, ErrorData, JSONRPCError

from protocols import ErrorCode, ProtocolError

from .tools import ClawMcp

#: Records a refused request (where, why).
Refused = Callable[[str, ProtocolError], None]


async def run_stdio(server: ClawMcp, refused: Refused) -> None:
    """Serve ``server`` on this process's stdin/stdout until stdin closes."""
    async with stdio_server() as (read, write):
        inner_send, inner_read = anyio.create_memory_object_stream[SessionMessage | Exception](0)

        async def forward() -> None:
            async with inner_send:
                async for item in read:
                    if isinstance(item, Exception):
                        text = str(item).splitlines()[0][:300] if str(item) else repr(item)
                        refused(
                            "stdin", ProtocolError(ErrorCode.MALFORMED, f"not JSON-RPC: {text}")
                        )
                        error = ErrorData(code=PARSE_ERROR, message=f"Parse error: {text}")
                        await write.send(
                            SessionMessage(JSONRPCError(jsonrpc="2.0", id=None, error=error))
                        )
                        continue
                    await inner_send.send(item)

        lowlevel = server._lowlevel_server  # the SDK's own stdio runner reads it the same way
        async with anyio.create_task_group() as tg:
            tg.start_soon(forward)
            await lowlevel.run(inner_read, write, lowlevel.create_initialization_options())
            tg.cancel_scope.cancel()
