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
``HubClient`` submits tasks and watches them; ``agents_sdk.testing`` runs a handler
without a hub. Imports only ``protocols``, nats-py, pydantic and the standard library
(litellm only when an ``LLMAgent`` first calls a model).
"""

from . import _natsimport  # noqa: F401  # first: nats-py without aiohttp (import time)
from ._agent import Agent
from ._client import HubClient
from ._context import TaskContext
from ._handlers import Handler, HandlerFunc
from ._local import local_hub_url
from ._version import __version__
from .errors import (
    AgentIdConflict,
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
    WaitTimeout,
)
from .llm import Answer, LLMAgent, RetryPolicy
from .memory import Memory, Note

__all__ = [
    "Agent",
    "AgentIdConflict",
    "Answer",
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
    "TaskContext",
    "WaitTimeout",
    "__version__",
    "local_hub_url",
]
