"""An agent in its own process, run by ``Agent.run`` (which picks the event loop from
``CLAWHUB_LOOP``): each task's output is the module of the loop class it ran on."""

from __future__ import annotations

import asyncio
import sys

from agents_sdk import Agent, TaskContext


def main() -> None:
    agent = Agent("looped", id=sys.argv[2], skills={"loop": 1.0})

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        return type(asyncio.get_running_loop()).__module__

    agent.run(sys.argv[1])


if __name__ == "__main__":
    main()
