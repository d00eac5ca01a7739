"""Issue 5 end to end: a free-text goal planned by the coordinator model, run by a mix of
LLM agents (Claude, GPT, Kimi strings, through litellm ``mock_response``) and a plain-code
agent, consolidated into a deliverable, with cost totals that add up. Real hub, real
nats-server, real SQLite store; no network."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from conftest import MakeHub

from agents_sdk import Agent, HubClient, TaskContext
from agents_sdk.llm import LLMAgent

PLAN = {
    "tasks": [
        {"id": "facts", "title": "Collect facts on NATS leaf nodes", "skills": {"research": 0.5}},
        {
            "id": "snippet",
            "title": "Write a config snippet",
            "skills": {"python": 0.5},
            "depends_on": ["facts"],
        },
        {
            "id": "report",
            "title": "Write the report",
            "instructions": "merge the facts and the snippet",
            "skills": {"writing": 0.5},
            "depends_on": ["facts", "snippet"],
            "acceptance": ["mentions leaf nodes"],
        },
    ],
    "deliverable": "report",
}


async def test_free_text_goal_by_llm_and_code_agents_with_costs_that_add_up(
    make_hub: MakeHub, tmp_path: Path
) -> None:
    hub = await make_hub([json.dumps(PLAN)])
    researcher = LLMAgent(
        "researcher",
        id="researcher",
        model="anthropic/claude-sonnet-4-5",
        skills={"research": 0.9},
        mock_response="Leaf nodes extend a NATS cluster to the edge.",
        data_dir=tmp_path / "researcher",
    )
    writer = LLMAgent(
        "writer",
        id="writer",
        model="openai/gpt-4o-mini",
        skills={"writing": 0.9},
        mock_response="Report: leaf nodes bridge laptops into the hub's NATS cluster.",
        data_dir=tmp_path / "writer",
    )
    coder = Agent("coder", id="coder", skills={"python": 0.9})  # plain code, no model

    @coder.handler
    async def snippet(ctx: TaskContext) -> object:
        return {"config": "leafnodes { remotes: [{url: nats://hub:7422}] }"}

    agents: list[Agent] = [researcher, writer, coder]
    await asyncio.gather(*(a.start(hub.url) for a in agents))
    try:
        async with HubClient(hub.url) as client:
            status = await client.submit_goal("A short report on NATS leaf nodes", budget=1.0)
            done = await client.wait_goal(status.id, timeout=60)
            assert done.state == "done", done.error
            assert done.deliverable == (
                "Report: leaf nodes bridge laptops into the hub's NATS cluster."
            )
            tasks = {t.spec.metadata["goal_task"]: t for t in await client.tasks()}
            assert {k: t.history[-1].agent_id for k, t in tasks.items()} == {
                "facts": "researcher",
                "snippet": "coder",
                "report": "writer",
            }
            # the writer saw what the others made
            assert tasks["report"].state.value == "done"
            # costs: LLM tasks cost something, plain code nothing, and everything adds up
            assert tasks["facts"].usage.cost > 0 and tasks["report"].usage.cost > 0
            assert tasks["snippet"].usage.cost == 0 and tasks["snippet"].usage.calls == 0
            spent_on_tasks = sum(t.usage.cost for t in tasks.values())
            planning = done.usage.cost - spent_on_tasks
            assert planning > 0  # the coordinator's own call is counted on the goal
            assert done.usage.calls == 1 + tasks["facts"].usage.calls + tasks["report"].usage.calls
            by_agent = {a.profile.id: a.usage for a in await client.agents()}
            assert by_agent["researcher"].cost == pytest.approx(tasks["facts"].usage.cost)
            assert by_agent["writer"].cost == pytest.approx(tasks["report"].usage.cost)
            assert by_agent["coder"].cost == 0
            info = await client.group_info()
            assert info.usage.cost == pytest.approx(done.usage.cost)
            assert set(done.usage.models) >= {
                "moonshot/kimi-k2.6",
                "anthropic/claude-sonnet-4-5",
                "openai/gpt-4o-mini",
            }
    finally:
        await asyncio.gather(*(a.stop() for a in agents), return_exceptions=True)
