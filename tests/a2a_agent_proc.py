"""A real A2A agent for the bridge tests: the a2a-sdk server (its Starlette routes and
``DefaultRequestHandler``) served by uvicorn on a free port, in its own process.

    python tests/a2a_agent_proc.py --mode answer [--no-streaming] [--name N] [--skill ID]

It prints ``READY <base url>`` once it serves. Modes (what ``execute`` does):

- ``answer``: a WORKING status, then an artifact ``{"echo": <the text>, "data": <data>}``
  and COMPLETED;
- ``slow``: ``--steps`` WORKING statuses ``--step-seconds`` apart, one text artifact chunk
  each, then COMPLETED;
- ``hang``: a WORKING status, then silence for ``--hang-seconds``, then the answer. It
  finishes its step before it honours a cancel (``cancel`` waits for ``execute``), as an
  agent stuck in a long model call would: a ``CancelTask`` gets the COMPLETED task back;
- ``ask``: INPUT_REQUIRED with the question ``--question``; the next message in the same
  task is the answer, and the artifact is ``{"answer": <its text>}``;
- ``fail``: FAILED with a status message.

``--garbage`` serves something that is not a card at the card's path; ``--garbage-rpc`` a
good card, and HTML for every call.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
from typing import Any

import uvicorn
from a2a.helpers import (
    get_data_parts,
    get_message_text,
    new_data_part,
    new_task_from_user_message,
    new_text_message,
    new_text_part,
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
    Message,
    TaskState,
)
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


class Executor(AgentExecutor):
    """The agent's behaviour, chosen by ``--mode``."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.running: dict[str, asyncio.Event] = {}

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None and context.task_id and context.context_id
        first = context.current_task is None
        if first:
            await event_queue.enqueue_event(new_task_from_user_message(context.message))
        up = TaskUpdater(event_queue, context.task_id, context.context_id)
        done = self.running.setdefault(context.task_id, asyncio.Event())
        try:
            await self._run(context, up, first)
        finally:
            done.set()

    async def _run(self, context: RequestContext, up: TaskUpdater, first: bool) -> None:
        args, message = self.args, context.message
        assert message is not None
        text = get_message_text(message)
        data = get_data_parts(list(message.parts))

        def say(words: str) -> Message:
            return new_text_message(words, context_id=context.context_id, task_id=context.task_id)

        if args.mode == "ask":
            if first:
                await up.requires_input(say(args.question))
                return
            await up.add_artifact([new_data_part({"answer": text})], name="answer")
            await up.complete()
            return
        await up.start_work(say("working on it"))
        if args.mode == "fail":
            await up.failed(say("cannot do this"))
            return
        if args.mode == "hang":
            await asyncio.sleep(args.hang_seconds)
        if args.mode == "slow":
            for step in range(args.steps):
                await asyncio.sleep(args.step_seconds)
                await up.update_status(TaskState.TASK_STATE_WORKING, say(f"step {step + 1}"))
                await up.add_artifact(
                    [new_text_part(f"part {step + 1};")],
                    artifact_id="story",
                    name="story",
                    append=step > 0,
                    last_chunk=step == args.steps - 1,
                )
            await up.complete()
            return
        answer: dict[str, Any] = {"echo": text, "data": data[0] if data else None}
        await up.add_artifact([new_data_part(answer)], name="answer")
        await up.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        running = self.running.get(context.task_id or "")
        if self.args.mode == "hang" and running is not None:
            await running.wait()  # finish the step first: the answer comes late
            return
        assert context.task_id and context.context_id
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()
        print(f"CANCELED {context.task_id}", flush=True)  # what the tests read


def card(args: argparse.Namespace, url: str) -> AgentCard:
    skills = [
        AgentSkill(id=s, name=s.title(), description=f"does {s}", tags=[s]) for s in args.skill
    ]
    return AgentCard(
        name=args.name,
        description="A test agent for the Claw Hub A2A bridge",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        provider=AgentProvider(organization="Test Org", url="https://example.org"),
        capabilities=AgentCapabilities(streaming=args.streaming),
        default_input_modes=["text/plain", "application/json"],
        default_output_modes=["application/json", "text/plain"],
        skills=skills,
    )


async def serve(args: argparse.Namespace) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    the_card = card(args, url + "/")
    handler = DefaultRequestHandler(
        agent_executor=Executor(args), task_store=InMemoryTaskStore(), agent_card=the_card
    )
    routes = [*create_agent_card_routes(the_card), *create_jsonrpc_routes(handler, "/")]
    if args.garbage:  # a card URL that answers something that is not a card
        routes = [Route("/.well-known/agent-card.json", lambda _: JSONResponse({"hello": 1}))]
    if args.garbage_rpc:  # a good card, and garbage for every call
        nonsense = Route("/", lambda _: PlainTextResponse("<html>oops</html>"), methods=["POST"])
        routes = [*create_agent_card_routes(the_card), nonsense]
    app = Starlette(routes=routes)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn has no event for it
        await asyncio.sleep(0.05)
    print(f"READY {url}", flush=True)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--mode", default="answer", choices=["answer", "slow", "hang", "ask", "fail"]
    )
    parser.add_argument("--name", default="Echo Agent")
    parser.add_argument("--skill", action="append", default=[])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--no-streaming", dest="streaming", action="store_false")
    parser.add_argument("--hang-seconds", type=float, default=8.0)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--step-seconds", type=float, default=0.3)
    parser.add_argument("--question", default="Which language should the greeting be in?")
    parser.add_argument("--garbage", action="store_true")
    parser.add_argument("--garbage-rpc", action="store_true")
    args = parser.parse_args()
    if not args.skill:
        args.skill = ["text"]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    sys.exit(0)


if __name__ == "__main__":
    main()
