"""A fleet of plain-code demo agents (no API keys needed), one role per process.

``python -m agents_sdk.demo --url nats://127.0.0.1:PORT --role coder`` joins a running hub.
``clawhub demo`` starts one process per role. Two roles misbehave on purpose, to show the
hub's recovery: ``hung-model`` hangs on its first task without progress (it gets *stalled*)
and ``flaky-laptop`` dies in the middle of its first task (it gets *lost*).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
from dataclasses import dataclass, field

from ._agent import Agent
from ._context import TaskContext


@dataclass(frozen=True)
class Role:
    """One demo participant."""

    skills: dict[str, float]
    model: str | None
    device: str
    capacity: int = 1
    clearance: str = "public"
    behaviour: str = "good"
    labels: list[str] = field(default_factory=list)


ROLES: dict[str, Role] = {
    "researcher": Role({"research": 0.9, "writing": 0.5}, "moonshot/kimi-k2.6", "cloud", 2),
    "hung-model": Role({"research": 0.95}, "openai/gpt-4o", "cloud", behaviour="hang-once"),
    "coder": Role({"python": 0.9, "testing": 0.7}, "anthropic/claude-sonnet-4-5", "laptop", 2),
    "flaky-laptop": Role({"python": 0.95}, "ollama/qwen2.5-coder", "laptop", behaviour="die"),
    "writer": Role({"writing": 0.9, "summarize": 0.6}, "openai/gpt-4o-mini", "cloud", 2),
    "reviewer": Role(
        {"review": 0.9, "python": 0.6}, "ollama/llama3.1", "server", clearance="private"
    ),
    "phone": Role({"summarize": 0.8, "translate": 0.7}, None, "mobile"),
}


def build(role_name: str, group: str = "default") -> Agent:
    """The demo agent for ``role_name``."""
    role = ROLES[role_name]
    agent = Agent(
        role_name,
        id=role_name,
        skills=role.skills,
        model=role.model,
        device=role.device,  # type: ignore[arg-type]
        capacity=role.capacity,
        clearance=role.clearance,  # type: ignore[arg-type]
        labels=role.labels,
        group=group,
    )
    state = {"tasks": 0, "reviews": 0}

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        if "review_of" in ctx.spec.metadata:
            return await review(ctx)
        state["tasks"] += 1
        if role.behaviour == "hang-once" and state["tasks"] == 1:
            await ctx.progress(0.1, "waiting for the model API...")
            await asyncio.sleep(3600)  # a hung model call: no progress until revoked
        if role.behaviour == "die" and state["tasks"] == 1:
            await ctx.progress(0.3, "working...")
            await asyncio.sleep(0.5)
            os._exit(17)  # the laptop lid closes: the process and its connection vanish
        steps = 4
        for step in range(steps):
            await asyncio.sleep(random.uniform(0.08, 0.25))
            await ctx.progress((step + 1) / steps, f"step {step + 1}/{steps}")
        out: dict[str, object] = {
            "by": agent.id,
            "model": role.model or "plain code",
            "summary": f"{ctx.spec.title}: done by {agent.id}",
            "used": sorted(ctx.dependency_outputs),
        }
        if "review" in ctx.spec.skills:
            out["approved"] = True
        return out

    async def review(ctx: TaskContext) -> object:
        """A review task from the hub's validation step: the first version is sent back."""
        state["reviews"] += 1
        await ctx.progress(0.5, "reading the code")
        await asyncio.sleep(random.uniform(0.1, 0.2))
        if state["reviews"] == 1:
            return {"accept": False, "reasons": "the error paths are not handled"}
        return {"accept": True, "reasons": "errors handled; looks good"}

    return agent


def main(argv: list[str] | None = None) -> None:
    """Run one demo agent until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, help="NATS URL of the hub")
    parser.add_argument("--role", required=True, choices=sorted(ROLES))
    parser.add_argument("--group", default="default")
    args = parser.parse_args(argv)
    build(args.role, args.group).run(args.url)


if __name__ == "__main__":
    main()
