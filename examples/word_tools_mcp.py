"""A tiny MCP server with two text tools, to give an ``LLMAgent`` a toolkit over stdio
(docs/tools.md): ``python examples/word_tools_mcp.py`` speaks MCP on stdin/stdout.

Any MCP server works the same way; this one needs nothing but the ``mcp`` package.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("word-tools", log_level="ERROR")


@server.tool()
def word_count(text: str) -> int:
    """Count the words in a text."""
    return len(text.split())


@server.tool()
def longest_word(text: str) -> str:
    """The longest word of a text (the first one on a tie)."""
    words = text.split()
    if not words:
        raise ToolError("the text has no words")
    return max(words, key=len)


def main() -> None:
    server.run("stdio")


if __name__ == "__main__":
    main()
