"""A small real MCP server (the mcp SDK's ``MCPServer``) run over stdio as a subprocess, for
the tests of MCP servers as agent toolkits: ``python tests/mcp_tool_server.py``, or over
Streamable HTTP with ``--http PORT`` (at ``http://127.0.0.1:PORT/mcp``).

Tools: ``word_count`` (counts words), ``shout`` (upper-cases; refuses an empty text with a
tool error), ``pid`` and ``wait`` (to cancel a task mid-call), and ``crash`` (the server
process exits at once, mid-call: a server that dies while a task uses it).
"""

from __future__ import annotations

import os
import sys
import time

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("test-tools", log_level="ERROR")


@server.tool()
def word_count(text: str) -> int:
    """Count the words in a text."""
    return len(text.split())


@server.tool()
def shout(text: str) -> str:
    """Upper-case a text."""
    if not text:
        raise ToolError("nothing to shout")
    return text.upper() + "!"


@server.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


@server.tool()
def wait(seconds: float) -> str:
    """Sleep, then answer."""
    time.sleep(seconds)
    return "woke"


@server.tool()
def crash(reason: str = "") -> str:
    """Stop the server at once (for tests)."""
    os._exit(3)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":  # Streamable HTTP on 127.0.0.1:PORT/mcp
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
