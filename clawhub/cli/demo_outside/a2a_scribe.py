"""An A2A agent, on the a2a-sdk server alone: it title-cases the ``text`` of its input a
word at a time, ``--pace`` seconds a word, with a WORKING status per word (a slow and
thorough agent: the one ``clawhub demo --bridges`` kills mid-task).

    python -P a2a_scribe.py --name Scribe --skill headline --skill text [--pace 0.3]

It serves its card and JSON-RPC on a free port of 127.0.0.1 and prints ``READY <base URL>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket

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
    TaskState,
)
from starlette.applications import Starlette


def given_text(context: RequestContext) -> str:
    """``input.text`` of the message's data part if there is one, else the message's text."""
    assert context.message is not None
    for data in get_data_parts(list(context.message.parts)):
        given = data.get("input") if isinstance(data, dict) else None
        if isinstance(given, dict) and isinstance(given.get("text"), str):
            return str(given["text"])
    return get_message_text(context.message)


class Scribe(AgentExecutor):
    """Submitted → WORKING ("word i/n", one per word) → an artifact ``{"text": ...}`` →
    completed."""

    def __init__(self, name: str, pace: float) -> None:
        self.name = name
        self.pace = pace

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None and context.task_id and context.context_id
        if context.current_task is None:
            await event_queue.enqueue_event(new_task_from_user_message(context.message))
        task = TaskUpdater(event_queue, context.task_id, context.context_id)
        words = given_text(context).split()
        done: list[str] = []
        for i, word in enumerate(words, 1):
            say = new_text_message(
                f"word {i}/{len(words)}", context_id=context.context_id, task_id=context.task_id
            )
            await task.update_status(TaskState.TASK_STATE_WORKING, say)
            await asyncio.sleep(self.pace)
            done.append(word[:1].upper() + word[1:].lower())
        result = {"text": " ".join(done), "by": self.name}
        await task.add_artifact([new_data_part(result)], name="headline")
        await task.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id and context.context_id
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def card(name: str, url: str, skills: list[str]) -> AgentCard:
    """The agent's public card: its name, its skills (ids), streaming."""
    return AgentCard(
        name=name,
        description="Title-cases the text it is given, a word at a time",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        provider=AgentProvider(organization="Demo Org", url="https://example.org"),
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain", "application/json"],
        default_output_modes=["application/json"],
        skills=[
            AgentSkill(id=s, name=s.title(), description=f"does {s}", tags=[s]) for s in skills
        ],
    )


async def serve(name: str, skills: list[str], pace: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    the_card = card(name, url + "/", skills)
    handler = DefaultRequestHandler(
        agent_executor=Scribe(name, pace), task_store=InMemoryTaskStore(), agent_card=the_card
    )
    app = Starlette(
        routes=[*create_agent_card_routes(the_card), *create_jsonrpc_routes(handler, "/")]
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn has no event
        await asyncio.sleep(0.05)
    if serving.done():
        await serving  # it failed to start: its error, not READY
        return
    print(f"READY {url}", flush=True)
    await serving


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="Scribe")
    parser.add_argument("--skill", action="append", default=[], help="a skill id, repeatable")
    parser.add_argument("--pace", type=float, default=0.3, help="seconds per word")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.name, args.skill or ["headline"], args.pace))


if __name__ == "__main__":
    main()
