"""Claw Hub agent SDK: what an agent author imports.

::

    from agents_sdk import Agent, TaskContext

    agent = Agent("coder", skills={"python": 0.9})

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        await ctx.progress(0.5, "halfway")
        return {"answer": 42}

    agent.run()  # the hub of `clawhub up` (hub.json), or agent.run("nats://host:port")

``LLMAgent`` answers tasks with any litellm model (``anthropic/...``, ``openai/...``,
``moonshot/...``, ``ollama/...``); ``ctx.memory`` is an agent's persistent ``Memory``.
``LLMAgent(tools=[...], mcp_servers=[...], skills_dir=...)`` gives a model Python tools,
the tools of MCP servers and skill instruction files. ``CommandAgent`` runs any command-line
agent (Claude Code, Codex, Aider, Gemini CLI, a script) once per task.
``HubClient`` submits tasks and watches them; ``agents_sdk.testing`` runs a handler
without a hub. Imports only ``protocols``, nats-py, pydantic and the standard library
(litellm only when an ``LLMAgent`` first calls a model, mcp only when a task uses an MCP
server).

``import agents_sdk`` loads what an ``Agent`` and a ``HubClient`` need; the fronts an agent
may not use (``LLMAgent`` and its tools and skills, ``CommandAgent``) load the first time
one of their names is read (``from agents_sdk import LLMAgent`` does it), so a plain agent
never pays for them.
"""

import importlib
from typing import TYPE_CHECKING

from . import _natsimport  # noqa: F401  # first: nats-py without aiohttp (import time)
from ._agent import Agent
from ._client import HubClient
from ._context import TaskContext
from ._handlers import Handler, HandlerFunc
from ._local import local_hub_url
from ._version import __version__
from .errors import (
    AgentIdConflict,
    CommandError,
    CommandFailed,
    CommandNotFound,
    CommandOutputError,
    DelegationFailed,
    HubUnavailable,
    ModelAuthError,
    ModelError,
    ModelOutputError,
    ModelRequestError,
    ModelUnavailable,
    RequestRefused,
    RequestTimeout,
    SDKError,
    ToolError,
    ToolLoopStopped,
    ToolServerError,
    WaitTimeout,
)
from .memory import Memory, Note

if TYPE_CHECKING:  # loaded on first use, by __getattr__ below
    from .command import CommandAgent, CommandConfig, load_config
    from .llm import Answer, LLMAgent, RetryPolicy
    from .skills import Skill, load_skills
    from .tools import Tool, as_tool

#: The public names whose modules load the first time the name is read: name -> module.
_LAZY: dict[str, str] = {
    "Answer": "llm",
    "CommandAgent": "command",
    "CommandConfig": "command",
    "LLMAgent": "llm",
    "RetryPolicy": "llm",
    "Skill": "skills",
    "Tool": "tools",
    "as_tool": "tools",
    "load_config": "command",
    "load_skills": "skills",
}

__all__ = [
    "Agent",
    "AgentIdConflict",
    "Answer",
    "CommandAgent",
    "CommandConfig",
    "CommandError",
    "CommandFailed",
    "CommandNotFound",
    "CommandOutputError",
    "DelegationFailed",
    "Handler",
    "HandlerFunc",
    "HubClient",
    "HubUnavailable",
    "LLMAgent",
    "Memory",
    "ModelAuthError",
    "ModelError",
    "ModelOutputError",
    "ModelRequestError",
    "ModelUnavailable",
    "Note",
    "RequestRefused",
    "RequestTimeout",
    "RetryPolicy",
    "SDKError",
    "Skill",
    "TaskContext",
    "Tool",
    "ToolError",
    "ToolLoopStopped",
    "ToolServerError",
    "WaitTimeout",
    "__version__",
    "as_tool",
    "load_config",
    "load_skills",
    "local_hub_url",
]


def __getattr__(name: str) -> object:
    """A public name of a module not loaded yet (``_LAZY``): load it, keep the name here."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
