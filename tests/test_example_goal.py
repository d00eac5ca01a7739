"""``examples/run_goal.py`` with ``examples/goal_plan.yaml``, against the example agents on a
real hub (as the README shows it)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from test_examples import EXAMPLES, ROOT, load_example

from agents_sdk import Agent, HubClient
from clawhub.runtime import Hub


async def test_run_goal_example_with_the_plan_file(hub: Hub) -> None:
    echo = load_example("echo_agent").build("echo-goal")
    summarizer = load_example("summarizer_agent").build("sum-goal")
    assert isinstance(echo, Agent) and isinstance(summarizer, Agent)
    await asyncio.gather(echo.start(hub.url), summarizer.start(hub.url))
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLES / "run_goal.py"),
            "--url",
            hub.url,
            "--plan",
            str(EXAMPLES / "goal_plan.yaml"),
            "--timeout",
            "30",
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        raw, _ = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await asyncio.gather(echo.stop(), summarizer.stop())
    out = raw.decode()
    assert proc.returncode == 0, out
    assert "done: 3/3 tasks, $0.0000" in out
    assert '"summary": "CLAW HUB MATCHES WORK TO AGENTS."' in out
    async with HubClient(hub.url) as client:
        [goal] = await client.goals()
        assert goal.state == "done"
        assert goal.deliverable == (await client.task(f"{goal.id}-digest")).output


def test_run_goal_example_refuses_a_bad_plan_file() -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "run_goal.py"), "--plan", str(EXAMPLES / "missing.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "run_goal:" in proc.stdout and "missing.yaml" in proc.stdout
