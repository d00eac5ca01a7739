"""MCP: the real ``mcp`` SDK client drives a real hub, over streamable HTTP (the gateway's
``/mcp`` with a bearer token) and over stdio (``clawhub mcp`` as a subprocess, over NATS with
``CLAWHUB_TOKEN``): it lists the tools, submits a task an SDK agent completes and reads its
status, joins as a worker and completes a task, stops calling and sees its task reassigned,
is refused a human-only tool with an agent token, and its malformed requests are answered
with MCP errors and recorded."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import MakeHub, serving, until
from mcp_client import CLAWHUB, ToolFailed, call, http_session, read_json, stdio_session

from agents_sdk import Agent, TaskContext
from clawhub.gateway import Gateway, HubProcess, create_app
from clawhub.runtime import Hub
from clawhub.runtime.auth import Tokens
from clawhub.settings import HubSettings
from clawhub.store.store import Store
from protocols import TaskState

#: Generous: the machine is loaded; nothing here asserts on timing.
WAIT = 60.0

WORKER_TOOLS = {
    "join_group",
    "take_next_task",
    "report_progress",
    "submit_result",
    "hand_back_task",
    "leave_group",
}
ASSISTANT_TOOLS = {
    "submit_task",
    "submit_goal",
    "task_status",
    "list_tasks",
    "list_agents",
    "group_summary",
    "approve_result",
    "reject_result",
    "chat",
}


@pytest.fixture
async def mcp_hub(tmp_path: Path, sqlite_store: Store) -> AsyncIterator[HubProcess]:
    """One group (alpha) behind an embedded nats-server with tokens required and a gateway,
    with a short MCP liveness window (3 s) so a silent worker is lost within the test."""
    settings = HubSettings(
        data_dir=tmp_path / "server",
        heartbeat_interval=0.3,
        missed_beats=3,
        accept_timeout=3.0,
        stall_timeout=30.0,
        sweep_interval=0.05,
        decline_backoff=0.1,
        token_refresh=0.2,
        gateway_port=0,
        mcp_window=3.0,
    )
    server = HubProcess(settings, ["alpha"], store=sqlite_store)
    await server.start()
    yield server
    await server.stop()


def mcp_url(server: HubProcess) -> str:
    return f"{server.gateway_url}/mcp"


@asynccontextmanager
async def sdk_agent(server: HubProcess | Hub, agent_id: str, skill: str) -> AsyncIterator[Agent]:
    """A plain SDK agent on NATS that answers ``{"done_by": id, "input": ...}``, with
    ``"feedback"``: the reasons of earlier rejections, when there were some (``server``: a
    ``HubProcess``'s group alpha with a token, or a ``make_hub`` hub, no token)."""
    if isinstance(server, HubProcess):
        token: str | None = (await server.create_token("alpha", "agent", agent_id))[0]
        group = "alpha"
    else:
        token, group = None, server.group
    agent = Agent(agent_id, id=agent_id, group=group, skills={skill: 0.9})

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        answer: dict[str, object] = {"done_by": agent_id, "input": ctx.input}
        if ctx.feedback:
            answer["feedback"] = [v.reasons for v in ctx.feedback]
        return answer

    await agent.start(server.url, token=token)
    try:
        yield agent
    finally:
        await agent.stop()


async def test_http_tools_listed_and_a_task_submitted_done_by_an_sdk_agent(
    mcp_hub: HubProcess,
) -> None:
    human, _ = await mcp_hub.create_token("alpha", "human", "ann")
    async with (
        sdk_agent(mcp_hub, "writer", "writing"),
        http_session(mcp_url(mcp_hub), human) as mcp,
    ):
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
        assert set(tools) >= WORKER_TOOLS | ASSISTANT_TOOLS
        schema = tools["submit_task"].input_schema
        assert set(schema["required"]) == {"title", "skills"}
        assert "description" in schema["properties"]["skills"]
        submitted = await call(
            mcp, "submit_task", title="Write a line", skills={"writing": 0.5}, input="hi"
        )
        task_id = submitted["task_id"]
        hub = mcp_hub.hubs["alpha"]
        await until(lambda: hub.board.tasks[task_id].state is TaskState.DONE)
        status = await call(mcp, "task_status", task_id=task_id)
        assert status["state"] == "done"
        assert status["output"] == {"done_by": "writer", "input": "hi"}
        listed = await call(mcp, "list_tasks")
        assert [t["task_id"] for t in listed["tasks"]] == [task_id]
        agents = await call(mcp, "list_agents")
        assert "writer" in {a["agent_id"] for a in agents["agents"]}
        summary = await call(mcp, "group_summary")
        assert summary["tasks"] == {"done": 1}
        await call(mcp, "chat", text="thanks, writer")
        templates = {
            t.uri_template for t in (await mcp.list_resource_templates()).resource_templates
        }
        assert templates == {
            "clawhub://tasks{?state}",
            "clawhub://tasks/{task_id}",
            "clawhub://events{?after,task_id}",
        }
        resource = await read_json(mcp, f"clawhub://tasks/{task_id}")
        assert resource["state"] == "done"
        assert [t["task_id"] for t in await read_json(mcp, "clawhub://tasks?state=done")] == [
            task_id
        ]
        assert await read_json(mcp, "clawhub://tasks?state=ready") == []
        story = await read_json(mcp, f"clawhub://events?task_id={task_id}")
        kinds = [e["kind"] for e in story["events"]]
        assert kinds[0] == "task.submitted" and kinds[-1] == "task.done", kinds
    chat = await boss_events(mcp_hub, "chat.message")
    assert [(e["agent_id"], e["message"]) for e in chat] == [("ann", "thanks, writer")], chat


async def test_http_worker_joins_takes_a_task_and_submits_it(mcp_hub: HubProcess) -> None:
    token, _ = await mcp_hub.create_token("alpha", "agent", "claude-1")
    admin = mcp_hub.admin_tokens["alpha"]
    hub = mcp_hub.hubs["alpha"]
    async with (
        http_session(mcp_url(mcp_hub), token) as worker,
        http_session(mcp_url(mcp_hub), admin) as boss,
    ):
        joined = await call(worker, "join_group", skills={"review": 0.8}, name="Claude")
        assert joined["agent_id"] == "claude-1"
        assert hub.board.agents["claude-1"].state == "online"
        first = await call(worker, "take_next_task", wait_seconds=0.5)
        assert first["task"] is None  # nothing submitted yet
        submitted = await call(
            boss, "submit_task", title="Review it", skills={"review": 0.5}, input={"pr": 7}
        )
        task_id = submitted["task_id"]
        taken = await call(worker, "take_next_task", wait_seconds=20)
        task = taken["task"]
        assert task["task_id"] == task_id and task["attempt"] == 1
        assert task["input"] == {"pr": 7}
        await call(worker, "report_progress", task_id=task_id, message="reading", fraction=0.5)
        done = await call(worker, "submit_result", task_id=task_id, output={"ok": "LGTM"})
        assert done["accepted"] is True and done["state"] == "done"
        status = await call(boss, "task_status", task_id=task_id)
        assert status["output"] == {"ok": "LGTM"}
        assert status["assigned_to"] in (None, "claude-1")
        assert status["history"][-1]["agent_id"] == "claude-1"
        with pytest.raises(ToolFailed, match="not_holder"):
            await call(worker, "submit_result", task_id=task_id, output="again")
        await call(worker, "leave_group", reason="done for today")
    assert hub.board.agents["claude-1"].state == "left"


async def test_http_silent_worker_is_lost_and_its_task_reassigned(mcp_hub: HubProcess) -> None:
    token, _ = await mcp_hub.create_token("alpha", "agent", "quiet")
    admin = mcp_hub.admin_tokens["alpha"]
    hub = mcp_hub.hubs["alpha"]
    async with (
        http_session(mcp_url(mcp_hub), token) as worker,
        http_session(mcp_url(mcp_hub), admin) as boss,
    ):
        await call(worker, "join_group", skills={"ops": 0.9})
        task_id = (await call(boss, "submit_task", title="Deploy", skills={"ops": 0.5}))["task_id"]
        taken = await call(worker, "take_next_task", wait_seconds=20)
        assert taken["task"]["task_id"] == task_id
        # the worker's client stops calling: after the window (3 s) it is lost
        await until(lambda: hub.board.agents["quiet"].state == "lost")
        async with sdk_agent(mcp_hub, "backup", "ops"):
            await until(lambda: hub.board.tasks[task_id].state is TaskState.DONE)
        status = await call(boss, "task_status", task_id=task_id)
        attempts = [(a["agent_id"], a["outcome"]) for a in status["history"]]
        assert attempts[0] == ("quiet", "lost"), attempts
        assert attempts[-1][0] == "backup", attempts
        with pytest.raises(ToolFailed, match="lost"):
            await call(worker, "submit_result", task_id=task_id, output="late")
    lost = await boss_events(mcp_hub, "agent.lost")
    assert any("no tool call for 3s" in e["message"] for e in lost), lost


async def boss_events(server: HubProcess, kind: str) -> list[dict[str, object]]:
    admin = server.admin_tokens["alpha"]
    async with httpx.AsyncClient(base_url=str(server.gateway_url)) as http:
        r = await http.get(
            "/v1/events", params={"kind": kind}, headers={"Authorization": f"Bearer {admin}"}
        )
        assert r.status_code == 200, r.text
        return list(r.json()["events"])


async def test_http_human_only_tool_refused_to_an_agent_token(mcp_hub: HubProcess) -> None:
    token, _ = await mcp_hub.create_token("alpha", "agent", "bot")
    async with http_session(mcp_url(mcp_hub), token) as mcp:
        with pytest.raises(ToolFailed) as refused:
            await call(mcp, "approve_result", task_id="nope")
        assert "forbidden" in str(refused.value)
        assert "needs a human or admin token" in str(refused.value)
        assert "role agent" in str(refused.value)
    recorded = await boss_events(mcp_hub, "message.refused")
    assert any("needs a human or admin token" in str(e["message"]) for e in recorded)


async def test_http_human_rejects_a_result_and_it_is_reworked_with_the_reason(
    mcp_hub: HubProcess,
) -> None:
    human, _ = await mcp_hub.create_token("alpha", "human", "ann")
    hub = mcp_hub.hubs["alpha"]
    async with (
        sdk_agent(mcp_hub, "writer", "writing"),
        http_session(mcp_url(mcp_hub), human) as mcp,
    ):
        submitted = await call(
            mcp,
            "submit_task",
            title="A haiku",
            skills={"writing": 0.5},
            input="spring",
            human_review=True,
        )
        task_id = submitted["task_id"]
        rec = hub.board.tasks[task_id]
        await until(lambda: rec.state is TaskState.NEEDS_HUMAN)
        rejected = await call(mcp, "reject_result", task_id=task_id, reason="five syllables first")
        assert (rejected["state"], rejected["attempt"]) == ("ready", 1)  # back in the queue
        # the rework comes back with the reason, and waits for the human again
        await until(lambda: rec.state is TaskState.NEEDS_HUMAN and rec.attempt == 2)
        status = await call(mcp, "task_status", task_id=task_id)
        first = status["history"][0]
        assert (first["attempt"], first["outcome"]) == (1, "rejected"), status["history"]
        assert "five syllables first" in first["reason"]
        assert status["failures"] == 1
        approved = await call(mcp, "approve_result", task_id=task_id, reason="better")
        assert approved["state"] == "done"
    output = hub.board.tasks[task_id].status().output
    assert output == {"done_by": "writer", "input": "spring", "feedback": ["five syllables first"]}
    rejections = await boss_events(mcp_hub, "task.rejected")
    assert [e["task_id"] for e in rejections] == [task_id]
    assert "five syllables first" in str(rejections[0]["message"])


async def test_http_bad_token_and_malformed_requests(mcp_hub: HubProcess) -> None:
    url = mcp_url(mcp_hub)
    token, _ = await mcp_hub.create_token("alpha", "agent", "sloppy")
    async with httpx.AsyncClient() as http:
        r = await http.post(url, content=b'{"jsonrpc": "2.0"}')
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        }
        r = await http.post(url, content=b"{this is not json", headers=headers)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == -32700, r.text
    async with http_session(url, token) as mcp:
        with pytest.raises(ToolFailed, match="Unknown tool"):
            await call(mcp, "no_such_tool")
        with pytest.raises(ToolFailed, match="skills"):
            await call(mcp, "submit_task", title="x", skills="not a map")
        assert (await call(mcp, "list_tasks"))["tasks"] == []  # nothing was made, still serving
    recorded = [str(e["message"]) for e in await boss_events(mcp_hub, "message.refused")]
    assert any("not JSON" in m for m in recorded), recorded
    assert any("no_such_tool" in m for m in recorded), recorded
    assert any("submit_task" in m for m in recorded), recorded


# -- stdio: `clawhub mcp` as a subprocess, over NATS with the caller's token -----------------


def stdio_env(server: HubProcess, token: str, store: Store | None) -> dict[str, str]:
    """The environment a client such as Claude Code gives `clawhub mcp` (as the docs show
    it: the token, and here the test hub's folder); ``store``: the hub's store is readable
    here, so the server looks the token up (else it takes --role/--as)."""
    env = {
        "CLAWHUB_TOKEN": token,
        "CLAWHUB_DATA_DIR": str(server.settings.data_dir),
        "CLAWHUB_GROUP": "alpha",
        "CLAWHUB_MCP_WINDOW": "3",
        "CLAWHUB_ACCEPT_TIMEOUT": "3",
        "HOME": str(server.settings.data_dir.parent),
    }
    if store is not None:
        env["CLAWHUB_STORE_URL"] = store.url
    return env


async def test_stdio_task_submitted_and_done_by_an_sdk_agent(
    mcp_hub: HubProcess, sqlite_store: Store
) -> None:
    human, _ = await mcp_hub.create_token("alpha", "human", "ann")
    hub = mcp_hub.hubs["alpha"]
    async with (
        sdk_agent(mcp_hub, "writer", "writing"),
        stdio_session(stdio_env(mcp_hub, human, sqlite_store)) as mcp,
    ):
        tools = {t.name for t in (await mcp.list_tools()).tools}
        assert tools >= WORKER_TOOLS | ASSISTANT_TOOLS
        submitted = await call(
            mcp, "submit_task", title="Write it", skills={"writing": 0.5}, input="over stdio"
        )
        task_id = submitted["task_id"]
        await until(lambda: hub.board.tasks[task_id].state is TaskState.DONE)
        status = await call(mcp, "task_status", task_id=task_id)
        assert status["output"] == {"done_by": "writer", "input": "over stdio"}
        await call(mcp, "chat", text="done over stdio")
    chat = await boss_events(mcp_hub, "chat.message")
    assert [(e["agent_id"], e["message"]) for e in chat] == [("ann", "done over stdio")]
    submitted_by = hub.board.tasks[task_id]
    assert submitted_by.state is TaskState.DONE


async def test_stdio_worker_completes_a_task_then_goes_silent_and_is_reassigned(
    mcp_hub: HubProcess, sqlite_store: Store
) -> None:
    token, _ = await mcp_hub.create_token("alpha", "agent", "cursor-1")
    admin = mcp_hub.admin_tokens["alpha"]
    hub = mcp_hub.hubs["alpha"]
    async with (
        stdio_session(stdio_env(mcp_hub, token, sqlite_store)) as worker,
        http_session(mcp_url(mcp_hub), admin) as boss,
    ):
        joined = await call(worker, "join_group", skills={"sql": 0.9}, name="Cursor")
        assert joined["agent_id"] == "cursor-1" and joined["window"] == 3
        first = (await call(boss, "submit_task", title="Query", skills={"sql": 0.5}))["task_id"]
        taken = await call(worker, "take_next_task", wait_seconds=20)
        assert taken["task"]["task_id"] == first
        await call(worker, "report_progress", task_id=first, message="writing the query")
        done = await call(worker, "submit_result", task_id=first, output="SELECT 1")
        assert done["accepted"] is True and done["state"] == "done"
        second = (await call(boss, "submit_task", title="Index", skills={"sql": 0.5}))["task_id"]
        taken = await call(worker, "take_next_task", wait_seconds=20)
        assert taken["task"]["task_id"] == second
        # silence: the window (3 s) passes with no tool call; the worker's connection closes
        await until(lambda: hub.board.agents["cursor-1"].state == "lost")
        async with sdk_agent(mcp_hub, "dba", "sql"):
            await until(lambda: hub.board.tasks[second].state is TaskState.DONE)
        with pytest.raises(ToolFailed, match="lost"):
            await call(worker, "submit_result", task_id=second, output="too late")
    status = hub.board.tasks[second].status()
    assert (status.history[0].agent_id, status.history[0].outcome) == ("cursor-1", "lost")
    assert status.history[-1].agent_id == "dba"
    assert hub.board.tasks[first].status().output == "SELECT 1"


async def test_stdio_roles_are_the_tokens_not_the_declared_ones(mcp_hub: HubProcess) -> None:
    """A hub on another machine: the token's role cannot be looked up, so --role declares
    it. Declared human, an agent token is still refused a human-only tool (NATS holds the
    token to its role); declared agent, the refusal names the role needed."""
    token, _ = await mcp_hub.create_token("alpha", "agent", "remote-bot")
    env = stdio_env(mcp_hub, token, None)
    async with stdio_session(env, args=["mcp", "--role", "human", "--as", "remote-bot"]) as mcp:
        with pytest.raises(ToolFailed) as refused:
            await call(mcp, "approve_result", task_id="t-1")
        assert "forbidden" in str(refused.value) and "human" in str(refused.value)
    async with stdio_session(env, args=["mcp", "--role", "agent", "--as", "remote-bot"]) as mcp:
        with pytest.raises(ToolFailed) as refused:
            await call(mcp, "reject_result", task_id="t-1", reason="no")
        assert "needs a human or admin token" in str(refused.value)
        with pytest.raises(ToolFailed, match="Unknown tool"):
            await call(mcp, "approve_everything")
        assert (await call(mcp, "list_tasks"))["tasks"] == []  # still serving


async def test_stdio_line_that_is_not_json_rpc_gets_a_parse_error(
    mcp_hub: HubProcess, sqlite_store: Store
) -> None:
    """A client that writes garbage gets a JSON-RPC parse error (id null), the refusal goes
    to the server's log (standard error), and the server keeps serving."""
    token, _ = await mcp_hub.create_token("alpha", "agent", "garbled")
    env = {**os.environ, **stdio_env(mcp_hub, token, sqlite_store)}
    proc = await asyncio.create_subprocess_exec(
        CLAWHUB,
        "mcp",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        proc.stdin.write(b"this is not json\n")
        await proc.stdin.drain()
        line = await asyncio.wait_for(proc.stdout.readline(), WAIT)
        answer = json.loads(line)
        assert answer["id"] is None and answer["error"]["code"] == -32700, answer
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        proc.stdin.write(json.dumps(ping).encode() + b"\n")
        await proc.stdin.drain()
        pong = json.loads(await asyncio.wait_for(proc.stdout.readline(), WAIT))
        assert pong["id"] == 1 and "error" not in pong, pong
    finally:
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), WAIT)
    log = (await proc.stderr.read()).decode()
    assert "refused stdin: malformed: not JSON-RPC" in log, log


async def test_http_worker_whose_token_is_revoked_is_lost_and_refused(
    mcp_hub: HubProcess,
) -> None:
    token, row = await mcp_hub.create_token("alpha", "agent", "revoked-bot")
    admin = mcp_hub.admin_tokens["alpha"]
    hub = mcp_hub.hubs["alpha"]
    async with (
        http_session(mcp_url(mcp_hub), token) as worker,
        http_session(mcp_url(mcp_hub), admin) as boss,
    ):
        await call(worker, "join_group", skills={"ops": 0.9})
        task_id = (await call(boss, "submit_task", title="Rotate", skills={"ops": 0.5}))["task_id"]
        assert (await call(worker, "take_next_task", wait_seconds=20))["task"]["task_id"] == task_id
        await mcp_hub.revoke_token(row.id)
        await until(lambda: hub.board.agents["revoked-bot"].state == "lost")
        assert hub.board.tasks[task_id].state is not TaskState.RUNNING
    async with httpx.AsyncClient() as http:
        r = await http.post(
            mcp_url(mcp_hub), content=b"{}", headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    lost = await boss_events(mcp_hub, "agent.lost")
    assert any("token was revoked" in str(e["message"]) for e in lost), lost


# -- examples/mcp_worker.py: an MCP client worker as its own process -------------------------

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "mcp_worker.py"


async def start_example(server: HubProcess, agent_id: str, log: Path, *args: str) -> Any:
    token, _ = await server.create_token("alpha", "agent", agent_id)
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLE),
            "--url",
            mcp_url(server),
            "--token",
            token,
            "--skill",
            "text=0.8",
            *args,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )


async def test_example_mcp_worker_does_a_task_and_a_killed_one_is_reassigned(
    mcp_hub: HubProcess, tmp_path: Path
) -> None:
    hub = mcp_hub.hubs["alpha"]
    admin = mcp_hub.admin_tokens["alpha"]
    log = tmp_path / "worker.log"
    worker = await start_example(mcp_hub, "mcp-ex", log, "--tasks", "1")
    async with http_session(mcp_url(mcp_hub), admin) as boss:
        await until(lambda: "mcp-ex" in hub.board.agents)
        first = (await call(boss, "submit_task", title="Shout", skills={"text": 0.5}, input="hi"))[
            "task_id"
        ]
        assert await asyncio.wait_for(worker.wait(), WAIT) == 0, log.read_text()
        assert hub.board.tasks[first].status().output == "HI"
        assert "did " + first + ": done" in log.read_text()
        # a second worker holds its task 30 s; killed meanwhile, its task goes to another
        slow = await start_example(mcp_hub, "mcp-slow", tmp_path / "slow.log", "--hold", "30")
        try:
            await until(lambda: "mcp-slow" in hub.board.agents)
            second = (await call(boss, "submit_task", title="Whisper", skills={"text": 0.5}))[
                "task_id"
            ]
            await until(lambda: hub.board.tasks[second].assigned_to == "mcp-slow")
            await until(lambda: hub.board.tasks[second].state is TaskState.RUNNING)
            killed = hub.board.tasks[second].attempt  # the attempt it runs when killed
        finally:
            slow.kill()
            await slow.wait()
        await until(lambda: hub.board.agents["mcp-slow"].state == "lost")
        async with sdk_agent(mcp_hub, "steady", "text"):
            await until(lambda: hub.board.tasks[second].state is TaskState.DONE)
    history = hub.board.tasks[second].status().history
    # an offer that came before the example's first take_next_task call is declined (the
    # worker takes work only while a take waits), so the killed attempt need not be the first
    ended = {h.attempt: (h.agent_id, h.outcome) for h in history}
    assert ended[killed] == ("mcp-slow", "lost")
    assert all(h.outcome == "declined" for h in history if h.attempt < killed)
    assert (history[-1].agent_id, history[-1].outcome) == ("steady", "done")


async def test_http_session_answers_only_the_token_that_opened_it(mcp_hub: HubProcess) -> None:
    ann, _ = await mcp_hub.create_token("alpha", "human", "ann")
    bob, _ = await mcp_hub.create_token("alpha", "human", "bob")
    url = mcp_url(mcp_hub)
    accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    hello = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"},
        },
    }
    async with httpx.AsyncClient() as http:
        opened = await http.post(
            url, json=hello, headers={**accept, "Authorization": f"Bearer {ann}"}
        )
        assert opened.status_code == 200, opened.text
        session = opened.headers["mcp-session-id"]
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        theirs = {**accept, "Authorization": f"Bearer {bob}", "mcp-session-id": session}
        hijack = await http.post(url, json=ping, headers=theirs)
        assert hijack.status_code == 404, hijack.text
        mine = {**accept, "Authorization": f"Bearer {ann}", "mcp-session-id": session}
        own = await http.post(
            url, json=ping, headers={**mine, "mcp-protocol-version": "2025-06-18"}
        )
        assert own.status_code in (200, 202), own.text


@pytest.mark.parametrize(("role", "counted"), [("agent", True), ("human", False)])
async def test_http_worker_hands_a_task_back(mcp_hub: HubProcess, role: str, counted: bool) -> None:
    """An agent token's hand-back is a failed attempt; a human token's is a reassign, not
    counted. Either way the task goes to another participant and is done."""
    token, _ = await mcp_hub.create_token("alpha", role, "giver")  # type: ignore[arg-type]
    admin = mcp_hub.admin_tokens["alpha"]
    hub = mcp_hub.hubs["alpha"]
    async with (
        http_session(mcp_url(mcp_hub), token) as worker,
        http_session(mcp_url(mcp_hub), admin) as boss,
    ):
        await call(worker, "join_group", skills={"docs": 0.9})
        task_id = (await call(boss, "submit_task", title="Docs", skills={"docs": 0.5}))["task_id"]
        assert (await call(worker, "take_next_task", wait_seconds=20))["task"]["task_id"] == task_id
        back = await call(worker, "hand_back_task", task_id=task_id, reason="out of my depth")
        assert back["counted"] is counted
        await call(worker, "leave_group")
        async with sdk_agent(mcp_hub, "taker", "docs"):
            await until(lambda: hub.board.tasks[task_id].state is TaskState.DONE)
    status = hub.board.tasks[task_id].status()
    assert status.history[0].agent_id == "giver"
    assert status.history[-1].agent_id == "taker"
    assert status.failures == (1 if counted else 0)


# -- a goal for the coordinator (its model answers through litellm's mock_response) ---------

GOAL_PLAN = {
    "tasks": [
        {"id": "draft", "title": "Draft the note", "skills": {"writing": 0.5}, "input": "d"},
        {
            "id": "polish",
            "title": "Polish the note",
            "skills": {"writing": 0.5},
            "input": "p",
            "depends_on": ["draft"],
        },
    ],
    "deliverable": "polish",
}


async def test_http_submit_goal_is_planned_into_tasks_by_the_coordinator(
    make_hub: MakeHub, sqlite_store: Store
) -> None:
    hub = await make_hub([json.dumps(GOAL_PLAN)])
    tokens = Tokens(sqlite_store)
    human, _ = tokens.create(hub.group, "human", "ann")
    app = create_app(Gateway({hub.group: hub}, tokens, hub.settings))
    async with (
        sdk_agent(hub, "writer", "writing"),
        serving(app) as base,
        http_session(f"{base}/mcp", human) as mcp,
    ):
        goal = await call(mcp, "submit_goal", text="Write a note, then polish it")
        goal_id = goal["id"]
        assert goal["spec"]["text"] == "Write a note, then polish it"
        await until(lambda: hub.board.goals[goal_id].state == "done")
        listed = {t["title"]: t for t in (await call(mcp, "list_tasks"))["tasks"]}
        assert set(listed) == {"Draft the note", "Polish the note"}
        assert {t["state"] for t in listed.values()} == {"done"}
        draft, polish = listed["Draft the note"]["task_id"], listed["Polish the note"]["task_id"]
        status = await call(mcp, "task_status", task_id=polish)
        assert status["spec"]["goal"] == goal_id and status["spec"]["depends_on"] == [draft]
        assert status["output"] == {"done_by": "writer", "input": "p"}
        summary = await call(mcp, "group_summary")
    assert summary["goals"] == {"done": 1}, summary
    assert hub.board.goals[goal_id].deliverable == {"done_by": "writer", "input": "p"}
