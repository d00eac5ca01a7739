"""An MCP client that works in a Claw Group, the way Claude Code does when you ask it to: it
joins with a skill, takes the tasks the hub offers, reports progress and submits results, all
through the hub's MCP tools over streamable HTTP. Plain code stands in for the model: each
result is the task's input upper-cased.

    TOKEN=$(.venv/bin/clawhub token create --role agent --agent-id mcp-worker)
    .venv/bin/python examples/mcp_worker.py --url "$(.venv/bin/clawhub mcp --print-http-url)" \\
        --token "$TOKEN" --skill text=0.8

``--hold S`` works S seconds on each task (reporting progress each second) before it submits:
kill the process meanwhile, and the hub reassigns the task once the worker's window passes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def tool(session: ClientSession, name: str, /, **arguments: Any) -> dict[str, Any]:
    """Call one tool; its structured result (a tool error raises ``RuntimeError``)."""
    result = await session.call_tool(name, arguments)
    text = " ".join(getattr(c, "text", "") for c in result.content)
    if result.is_error:
        raise RuntimeError(f"{name}: {text}")
    data = result.structured_content
    return dict(data) if data is not None else dict(json.loads(text))


def answer(task: dict[str, Any]) -> object:
    """What the model would write: here the input, upper-cased."""
    value = task["input"]
    return value.upper() if isinstance(value, str) else {"echo": value}


async def work(
    url: str, token: str, skills: dict[str, float], tasks: int | None, hold: float
) -> None:
    """Join, then take and do tasks (``tasks`` of them, or until interrupted)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=120.0)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        joined = await tool(session, "join_group", skills=skills, name="MCP worker")
        print(f"joined as {joined['agent_id']}", flush=True)
        done = 0
        while tasks is None or done < tasks:
            offered = await tool(session, "take_next_task", wait_seconds=25)
            task = offered["task"]
            if task is None:
                continue
            print(f"took {task['task_id']} (attempt {task['attempt']})", flush=True)
            for second in range(int(hold)):
                await tool(
                    session,
                    "report_progress",
                    task_id=task["task_id"],
                    message=f"working ({second + 1}s)",
                )
                await asyncio.sleep(1)
            ack = await tool(session, "submit_result", task_id=task["task_id"], output=answer(task))
            print(f"did {task['task_id']}: {ack['state']}", flush=True)
            done += 1
        await tool(session, "leave_group", reason="done")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the hub's MCP URL (<gateway>/mcp)")
    parser.add_argument("--token", default=os.environ.get("CLAWHUB_TOKEN"), help="a token")
    parser.add_argument("--skill", action="append", default=[], help="name=level, repeatable")
    parser.add_argument("--tasks", type=int, default=None, help="stop after this many")
    parser.add_argument("--hold", type=float, default=0.0, help="seconds of work per task")
    args = parser.parse_args()
    if not args.token:
        parser.error("give --token or set CLAWHUB_TOKEN (clawhub token create --role agent ...)")
    skills = {k: float(v) for k, _, v in (s.partition("=") for s in args.skill)} or {"text": 0.8}
    asyncio.run(work(args.url, args.token, skills, args.tasks, args.hold))


if __name__ == "__main__":
    main()
