"""``build_server``: the MCP server of a Claw Group, every tool and resource, for the callers
a ``PortFor`` resolves (the gateway's ``/mcp``: each request's bearer token; ``clawhub mcp``:
the process's token)."""

from __future__ import annotations

from .tools import INSTRUCTIONS, ClawMcp, PortFor, Tooling, add_assistant_tools, add_resources
from .work import add_work_tools

#: Seconds a worker stays in the group after its client's last tool call, by default.
DEFAULT_WINDOW = 60.0


def build_server(port_for: PortFor, *, window: float = DEFAULT_WINDOW) -> ClawMcp:
    """The MCP server. ``window``: seconds a worker (``join_group``) stays alive after its
    client's last tool call; then it is lost and what it holds is reassigned."""
    server = ClawMcp("clawhub", title="Claw Hub", instructions=INSTRUCTIONS, log_level="WARNING")
    server.tooling = tooling = Tooling(port_for, window)
    add_assistant_tools(server, tooling)
    add_work_tools(server, tooling)
    add_resources(server, tooling)
    return server
