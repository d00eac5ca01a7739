"""A test agent in its own process for the delegation tests (so they can kill -9 it).

``--skill s``: it takes tasks that need skill ``s``. A task whose input has ``children``
(a list of ``{"title": ..., "skill": ...}``) is a parent: the handler delegates them all at
once (``ctx.delegate_all``) and returns their outputs; with ``"linger": true`` its first
attempt then keeps working (progress, no result) until the process is killed. Any other
task is a child: it works ``--seconds`` (with progress) and returns who did it; with
``--hold PATH`` it keeps working (with progress) until that file exists.

Every handler start appends ``<task_id> <attempt> <agent_id>`` to ``--runs``; a parent
that has its children's outputs appends ``gathered <task_id> <attempt>``.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from agents_sdk import Agent, TaskContext
from protocols import TaskSpec


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--skill", required=True)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--capacity", type=int, default=1)
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--hold", type=Path, default=None)
    args = parser.parse_args()
    agent = Agent(args.id, id=args.id, skills={args.skill: 1.0}, capacity=args.capacity)

    def note(line: str) -> None:
        with args.runs.open("a") as fh:
            fh.write(line + "\n")

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        note(f"{ctx.task_id} {ctx.attempt} {agent.id}")
        spec = ctx.input if isinstance(ctx.input, dict) else {}
        children = spec.get("children")
        if isinstance(children, list):
            specs = [
                TaskSpec(
                    title=str(c["title"]),
                    skills={str(c["skill"]): 0.5},
                    input={"part": str(c["title"])},
                )
                for c in children
                if isinstance(c, dict)
            ]
            outputs = await ctx.delegate_all(specs)
            note(f"gathered {ctx.task_id} {ctx.attempt}")
            if spec.get("linger") and ctx.attempt == 1:
                while True:  # until killed
                    await asyncio.sleep(0.2)
                    await ctx.progress(message="lingering")
            return {"by": agent.id, "parts": outputs}
        steps = max(1, int(args.seconds / 0.1))
        for i in range(steps):
            await asyncio.sleep(0.1)
            await ctx.progress((i + 1) / steps)
        while args.hold is not None and not args.hold.exists():
            await asyncio.sleep(0.1)
            await ctx.progress(message="holding")
        return {"by": agent.id, "part": spec.get("part")}

    agent.run(args.url)


if __name__ == "__main__":
    main()
