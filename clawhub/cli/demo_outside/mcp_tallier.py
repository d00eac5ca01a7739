"""An MCP client that works in a Claw Group through the hub's MCP tools (the mcp SDK over
streamable HTTP, the way Claude Code would): it joins with its skills, takes each task the
hub offers, reports progress and submits the count of the words of the task's ``text``.

    python -P mcp_tallier.py --url http://127.0.0.1:PORT/mcp --token TOKEN \\
        --skill tally=0.9 --skill text=0.7

It prints ``READY <participant id>`` once it has joined, and works until it is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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


def tally(task: dict[str, Any]) -> dict[str, Any]:
    """What the model would write: the words of the input's ``text``, counted."""
    given = task.get("input")
    text = given.get("text") if isinstance(given, dict) else given
    words = str(text or "").split()
    return {"words": len(words), "longest": max(words, key=len, default="")}


async def work(url: str, token: str, skills: dict[str, float]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=120.0)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        joined = await tool(session, "join_group", skills=skills, name="MCP tallier")
        print(f"READY {joined['agent_id']}", flush=True)
        while True:
            offered = await tool(session, "take_next_task", wait_seconds=20)
            task = offered["task"]
            if task is None:
                continue
            await tool(session, "report_progress", task_id=task["task_id"], message="counting")
            ack = await tool(session, "submit_result", task_id=task["task_id"], output=tally(task))
            print(f"did {task['task_id']}: {ack['state']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the hub's MCP URL (<gateway>/mcp)")
    parser.add_argument("--token", default=os.environ.get("CLAWHUB_TOKEN"), help="a token")
    parser.add_argument("--skill", action="append", default=[], help="name=level, repeatable")
    args = parser.parse_args()
    if not args.token:
        parser.error("give --token or set CLAWHUB_TOKEN")
    skills = {k: float(v) for k, _, v in (s.partition("=") for s in args.skill)} or {"tally": 0.9}
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(work(args.url, args.token, skills))


if __name__ == "__main__":
    main()
