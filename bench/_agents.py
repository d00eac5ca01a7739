"""SDK agents in a worker process, each with its own NATS connection:
``python -m bench._agents --url URL --prefix P --first I --count N [--capacity C]
[--group G]``.

Every handler returns ``{"start": <wall clock at handler start>, "by": <agent id>}``. The
task input may ask for work: ``{"sleep": seconds}`` (with progress every ``progress``
seconds, default: none) or ``{"hang": true}`` (never returns, never reports progress).
Prints ``READY`` once every agent is registered; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time

from agents_sdk import Agent, TaskContext
from agents_sdk._loop import run


def make_agent(
    agent_id: str, skills: dict[str, float], capacity: int, group: str = "default"
) -> Agent:
    agent = Agent(
        agent_id, id=agent_id, skills=skills, capacity=capacity, group=group, start_timeout=60
    )

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        start = time.time()
        spec = ctx.input if isinstance(ctx.input, dict) else {}
        if spec.get("hang") or spec.get("hang_on") == agent.id:
            await asyncio.Event().wait()
        sleep = float(spec.get("sleep") or 0)  # type: ignore[arg-type]
        every = float(spec.get("progress") or 0)  # type: ignore[arg-type]
        if sleep > 0 and every > 0:
            end = time.monotonic() + sleep
            while (left := end - time.monotonic()) > 0:
                await asyncio.sleep(min(every, left))
                await ctx.progress(None, "working")
        elif sleep > 0:
            await asyncio.sleep(sleep)
        return {"start": start, "by": agent.id}

    return agent


async def serve(args: argparse.Namespace) -> None:
    skills = {s: args.level for s in args.skills.split(",")}
    agents = [
        make_agent(f"{args.prefix}-{i}", skills, args.capacity, args.group)
        for i in range(args.first, args.first + args.count)
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    for start in range(0, len(agents), 50):
        await asyncio.gather(*(a.start(args.url) for a in agents[start : start + 50]))
    print("READY", flush=True)
    await stop.wait()
    await asyncio.gather(*(a.stop(timeout=2) for a in agents), return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", default="bench")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--capacity", type=int, default=1)
    parser.add_argument("--skills", default="work")
    parser.add_argument("--level", type=float, default=0.8)
    parser.add_argument("--group", default="default")
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    run(serve(parser.parse_args()))  # uvloop when installed (CLAWHUB_LOOP), as Agent.run


if __name__ == "__main__":
    main()
