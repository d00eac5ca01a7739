"""The smallest useful agent: plain code, no model, one skill.

Start a hub, then this agent, then give it work::

    clawhub up                                     # prints the hub's NATS URL
    CLAWHUB_TOKEN=$(clawhub token create --role agent --agent-id echo) \
        python examples/echo_agent.py --id echo
    clawhub submit "shout" --skill text=0.5 --input '{"text": "hello"}' --wait

With no ``--url`` it joins ``agents_sdk.local_hub_url()``: the hub named by
``CLAWHUB_NATS_URL``, else the one a local ``clawhub up`` wrote to ``hub.json`` (in
``CLAWHUB_DATA_DIR``, default ``~/.clawhub``). An agent token acts as one participant, so
``--id`` must be the token's ``--agent-id``; a hub started with ``--no-auth`` needs no token.

The agent says it knows the skill ``text`` at level 0.8, so the hub offers it every task
that needs ``text`` at 0.8 or less. For each task it returns the input text upper-cased and
reversed, reporting progress on the way (progress is how the hub knows a task is not stuck).
It runs until Ctrl-C or SIGTERM, then leaves the group cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence

from agents_sdk import Agent, SDKError, TaskContext, local_hub_url

#: What this agent can do, and how well (0..1). Tasks state the skills they need.
SKILLS = {"text": 0.8}


def read_text(ctx: TaskContext) -> str:
    """The text to work on: the task's input, either a string or ``{"text": "..."}``."""
    data = ctx.input
    if isinstance(data, str):
        return data
    if isinstance(data, dict) and isinstance(data.get("text"), str):
        return str(data["text"])
    # Raising fails this attempt; the hub records the error and may retry elsewhere.
    raise ValueError('input must be a string or {"text": "..."}')


def build(agent_id: str | None = None, group: str = "default") -> Agent:
    """The echo agent. Without ``agent_id`` the SDK picks a fresh one (``echo-1a2b3c``)."""
    agent = Agent(
        "echo",
        id=agent_id,
        skills=SKILLS,
        model=None,  # plain code: no LLM behind it
        device="laptop",
        capacity=2,  # it may run two tasks at once
        group=group,
    )

    # The default handler: it gets every task the hub offers this agent.
    @agent.handler
    async def echo(ctx: TaskContext) -> dict[str, object]:
        text = read_text(ctx)
        await ctx.progress(0.5, "upper-casing")  # fraction 0..1 and a status line
        shouted = text.upper()
        await asyncio.sleep(0)  # real work would happen here
        await ctx.progress(1.0, "reversing")
        # Return plain JSON data: it becomes the task's output (and the input of
        # the tasks that depend on this one).
        return {"text": shouted, "reversed": shouted[::-1], "length": len(text)}

    return agent


def main(argv: Sequence[str] | None = None) -> int:
    """Run the echo agent until interrupted; 0 on a clean exit."""
    parser = argparse.ArgumentParser(description="A plain-code agent that echoes text back.")
    parser.add_argument(
        "--url", default=None, help="NATS URL of the hub (default: CLAWHUB_NATS_URL or hub.json)"
    )
    parser.add_argument("--group", default="default", help="Claw Group to join")
    parser.add_argument("--id", default=None, help="agent id (default: echo-<random>)")
    parser.add_argument(
        "--start-timeout", type=float, default=10.0, help="seconds to wait for a hub at start"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    agent = build(args.id, args.group)
    agent.start_timeout = args.start_timeout
    try:
        # Connects, registers, heart-beats and serves until SIGINT/SIGTERM, then deregisters.
        agent.run(args.url or local_hub_url())
    except SDKError as exc:  # e.g. no hub at that URL, or the id is taken
        print(f"echo agent: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
