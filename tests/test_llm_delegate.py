"""A supervisor model delegates: an ``LLMAgent(delegate=True)`` whose model (a real local
HTTP server speaking the OpenAI API, scripted) calls the built-in ``delegate`` tool; the
child task goes to another participant through a real hub, and its output goes back to the
model, which answers with it."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import MakeHub
from scripted_llm import ScriptedChatServer, calls, say, tool_results

from agents_sdk import Agent, HubClient, LLMAgent, RetryPolicy, TaskContext
from protocols import TaskSpec, TaskState


async def test_a_supervisor_model_hands_part_of_its_task_to_the_group(
    make_hub: MakeHub, tmp_path: Path
) -> None:
    hub = await make_hub()
    researcher = Agent("researcher", id="researcher", skills={"research": 0.9})

    @researcher.handler
    async def research(ctx: TaskContext) -> object:
        return {"facts": f"{ctx.input} have five toes", "by": "researcher"}

    script = [
        calls(("delegate", {"title": "Look it up", "skills": {"research": 0.5}, "input": "cats"})),
        lambda body: say("summary: " + tool_results(body)[-1]),
    ]
    async with ScriptedChatServer(script) as server:
        supervisor = LLMAgent(
            "supervisor",
            id="supervisor",
            model="openai/scripted",
            api_base=server.api_base,
            api_key="sk-test",
            skills={"planning": 0.9},
            delegate=True,
            memory_notes=0,
            retry=RetryPolicy(attempts=1),
            data_dir=tmp_path / "supervisor",
        )
        assert "delegate" in supervisor.profile.tools
        await researcher.start(hub.url)
        await supervisor.start(hub.url)
        try:
            async with HubClient(hub.url) as client:
                [tid] = await client.submit(
                    TaskSpec(title="Write about cats", skills={"planning": 0.5})
                )
                status = await client.wait(tid, timeout=60)
                [child] = [t for t in await client.tasks() if t.spec.parent == tid]
        finally:
            await supervisor.stop()
            await researcher.stop()
    assert status.state is TaskState.DONE, status.error
    assert status.children == [child.id]
    assert child.state is TaskState.DONE and child.history[-1].agent_id == "researcher"
    assert child.spec.skills == {"research": 0.5} and child.spec.input == "cats"
    facts = {"facts": "cats have five toes", "by": "researcher"}
    assert json.loads(tool_results(server.requests[1])[-1]) == facts
    assert status.output == "summary: " + json.dumps(facts)
    offered = {t["function"]["name"]: t["function"] for t in server.requests[0]["tools"]}
    # the tool's description names the skills the group has now, with their levels
    assert "research (up to 0.9)" in offered["delegate"]["description"]
    assert set(offered["delegate"]["parameters"]["properties"]) == {
        "title",
        "instructions",
        "skills",
        "input",
    }
