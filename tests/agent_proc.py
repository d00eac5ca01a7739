"""A test agent that runs in its own process (so tests can kill -9 or SIGSTOP it).

Every handler start appends ``<task_id> <attempt> <agent_id>`` to ``--runs``. With
``--block`` the handler reports progress once, then blocks its event loop for ``--seconds``
(``time.sleep``): frozen meanwhile, it wakes to finish at once, before it reads its inbox
(a cancel sent while it was frozen comes too late to stop the result).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from agents_sdk import Agent, TaskContext


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--skill", default="x")
    parser.add_argument("--level", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--block", action="store_true")
    args = parser.parse_args()
    agent = Agent(args.id, id=args.id, skills={args.skill: args.level})

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        with args.runs.open("a") as fh:
            fh.write(f"{ctx.task_id} {ctx.attempt} {agent.id}\n")
        if args.block:
            await ctx.progress(0.5)  # the hub sees it handling the task
            await asyncio.sleep(0.05)  # ... once nats-py's flusher wrote it out
            time.sleep(args.seconds)  # noqa: ASYNC251 - on purpose: the loop stops with it
            return {"by": agent.id}
        steps = max(1, int(args.seconds / 0.1))
        for i in range(steps):
            await asyncio.sleep(0.1)
            await ctx.progress((i + 1) / steps)
        return {"by": agent.id}

    agent.run(args.url)


if __name__ == "__main__":
    main()
