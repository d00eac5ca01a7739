"""An A2A agent that knows nothing of Claw Hub: the a2a-sdk server, on its own.

    python examples/a2a_agent.py [--port 9999]

It serves its card at ``http://127.0.0.1:9999/.well-known/agent-card.json`` (name
"Shouter", skill ``text``, streaming) and answers each message with its text shouted: the
``text`` of the data part's ``input`` if there is one (what the Claw Hub bridge sends),
else the message's text. ``clawhub bridge a2a http://127.0.0.1:9999`` brings it into a
group (docs/a2a-agents.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

import uvicorn
from a2a.helpers import (
    get_data_parts,
    get_message_text,
    new_data_part,
    new_task_from_user_message,
    new_text_message,
)
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentProvider,
    AgentSkill,
)
from starlette.applications import Starlette


def shout(context: RequestContext) -> str:
    """What to shout: ``input.text`` from the data part, else the message's text."""
    assert context.message is not None
    for data in get_data_parts(list(context.message.parts)):
        given = data.get("input") if isinstance(data, dict) else None
        if isinstance(given, dict) and isinstance(given.get("text"), str):
            return str(given["text"]).upper()
    return get_message_text(context.message).upper()


class Shouter(AgentExecutor):
    """Submitted → working ("shouting") → an artifact ``{"shout": ...}`` → completed."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None and context.task_id and context.context_id
        if context.current_task is None:
            await event_queue.enqueue_event(new_task_from_user_message(context.message))
        task = TaskUpdater(event_queue, context.task_id, context.context_id)
        await task.start_work(
            new_text_message("shouting", context_id=context.context_id, task_id=context.task_id)
        )
        await task.add_artifact([new_data_part({"shout": shout(context)})], name="shout")
        await task.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id and context.context_id
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def card(url: str) -> AgentCard:
    """Shouter's public card."""
    return AgentCard(
        name="Shouter",
        description="Shouts the text it is given",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        provider=AgentProvider(organization="Example Org", url="https://example.org"),
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain", "application/json"],
        default_output_modes=["application/json"],
        skills=[AgentSkill(id="text", name="Text", description="shouts text", tags=["text"])],
    )


def app(url: str) -> Starlette:
    """The A2A server: the card route and the JSON-RPC endpoint."""
    the_card = card(url)
    handler = DefaultRequestHandler(
        agent_executor=Shouter(), task_store=InMemoryTaskStore(), agent_card=the_card
    )
    return Starlette(
        routes=[*create_agent_card_routes(the_card), *create_jsonrpc_routes(handler, "/")]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    url = f"http://{args.host}:{args.port}/"
    print(f"A2A agent Shouter serving at {url} (card: {url}.well-known/agent-card.json)")
    server = uvicorn.Server(uvicorn.Config(app(url), host=args.host, port=args.port))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(server.serve())


if __name__ == "__main__":
    main()
