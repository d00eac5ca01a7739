"""The model-backed examples (Claude, GPT, Kimi, Ollama), each run as a real process against
a real hub, offline through litellm's ``mock_response``; and their handlers with no hub."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MakeHub
from test_examples import EXAMPLES, example_process, load_example, read_log, wait_listed

from agents_sdk import HubClient, LLMAgent, Memory
from agents_sdk.testing import run_task
from protocols import Constraints, TaskSpec, TaskState

#: example -> (agent id, model, a skill only it has, its mocked answer)
FAMILIES = {
    "claude_agent": ("claude-ex", "anthropic/claude-sonnet-4-5", "review", "Looks right to me."),
    "gpt_agent": ("gpt-ex", "openai/gpt-4o-mini", "python", "def add(a, b): return a + b"),
    "kimi_agent": ("kimi-ex", "moonshot/kimi-k2.6", "planning", "1. Back up. 2. Migrate."),
    "ollama_agent": ("ollama-ex", "ollama/llama3.2", "private-data", "Totals: 3 rows."),
}


#: Seconds a step of the process test may take on a busy machine: every wait ends as soon
#: as its condition holds, so the deadline costs nothing when the machine is idle.
BUSY = 120.0


async def test_every_family_serves_a_hub_as_a_process(make_hub: MakeHub, tmp_path: Path) -> None:
    # four processes that load pydantic, nats-py and (at their first task) litellm: started
    # one at a time, each waited for until the hub lists it, so they never compete to start;
    # a roomy liveness window, and SQLite only (the store is not the subject)
    hub = await make_hub(heartbeat_interval=0.5, missed_beats=20)
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(HubClient(hub.url))
        procs = {}
        for name, (agent_id, model, skill, answer) in FAMILIES.items():
            log = tmp_path / f"{name}.log"
            args = ["--url", hub.url, "--id", agent_id, "--mock-response", answer]
            args += ["--data-dir", str(tmp_path / agent_id), "--start-timeout", str(BUSY)]
            proc = await stack.enter_async_context(example_process(f"{name}.py", log, *args))
            procs[name] = (proc, log)
            info = await wait_listed(client, agent_id, proc, log, within=BUSY)
            assert info.profile.model == model
            assert skill in info.profile.skills
        tasks = [
            TaskSpec(title=f"a task for {name}", skills={skill: 0.5})
            for name, (_, _, skill, _) in FAMILIES.items()
        ]
        # private data, local models only: the Ollama agent qualifies, no cloud model would
        tasks[-1].constraints = Constraints(data="private", local_only=True)
        ids = dict(zip(FAMILIES, await client.submit(tasks), strict=True))
        for name, tid in ids.items():
            status = await client.wait(tid, timeout=BUSY)
            agent_id, _, _, answer = FAMILIES[name]
            assert status.state is TaskState.DONE, (status.error, read_log(procs[name][1]))
            assert status.output == answer
            assert status.history[-1].agent_id == agent_id
        for proc, _ in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc, log in procs.values():
            assert await asyncio.wait_for(proc.wait(), BUSY) == 0, read_log(log)
    # each agent remembered its task in its own memory file
    for name, tid in ids.items():
        agent_id, _, _, answer = FAMILIES[name]
        [note] = Memory(tmp_path / agent_id / "memory.db").notes()
        assert note.task_id == tid
        assert note.text.endswith(f"Answer: {answer}")


@pytest.mark.parametrize("name", sorted(FAMILIES))
async def test_each_family_locally(name: str, tmp_path: Path) -> None:
    agent_id, model, skill, answer = FAMILIES[name]
    agent = load_example(name).build(agent_id, mock_response=answer, data_dir=tmp_path)
    assert isinstance(agent, LLMAgent)
    assert agent.model == model
    run = await run_task(agent, title="t", skills={skill: 0.5})
    assert run.ok, run.error
    assert run.output == answer
    assert run.usage is not None and run.usage.models == [model]
    assert (run.usage.cost > 0) is (name != "ollama_agent")  # local models have no price


def test_ollama_example_talks_to_the_local_server() -> None:
    agent = load_example("ollama_agent").build()
    assert agent.completion_kwargs["api_base"] == "http://localhost:11434"
    assert agent.profile.clearance == "private"


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_llm_examples_have_help_and_no_import_side_effects(name: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for option in ("--url", "--group", "--id", "--mock-response", "--data-dir", "--model"):
        assert option in proc.stdout
    code = (
        "import importlib.util, sys, threading\n"
        f"spec = importlib.util.spec_from_file_location('ex', {str(EXAMPLES / name)!r} + '.py')\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "assert callable(module.main)\n"
        "print(threading.active_count(), 'litellm' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "1 False\n"
