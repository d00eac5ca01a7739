"""The group as an A2A agent, against real parts: a HubProcess (two groups, embedded
nats-server with auth, SQLite and PostgreSQL) serving A2A from its gateway on a free port,
SDK agents doing the work, and the a2a-sdk's own client (JSON-RPC and HTTP+JSON) over real
HTTP. Raw httpx only for what no client sends: garbage."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, A2AClientError, Client, ClientConfig, ClientFactory
from a2a.types import (
    CancelTaskRequest,
    GetExtendedAgentCardRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    TaskState,
)
from a2a.utils.constants import TransportProtocol
from a2a.utils.errors import InvalidRequestError, TaskNotCancelableError
from conftest import MakeHub, serving, until
from google.protobuf import json_format

from agents_sdk import Agent, TaskContext
from clawhub.gateway import Gateway, HubProcess, create_app
from clawhub.runtime.auth import Tokens
from clawhub.settings import HubSettings
from clawhub.store import Store
from protocols import ListEvents
from protocols import TaskState as HubState


def settings(tmp_path: Path) -> HubSettings:
    return HubSettings(
        data_dir=tmp_path / "server",
        heartbeat_interval=0.2,
        missed_beats=5,
        accept_timeout=5.0,
        stall_timeout=30.0,
        sweep_interval=0.05,
        decline_backoff=0.1,
        token_refresh=0.2,
        gateway_port=0,
        group="alpha",
    )


@pytest.fixture
async def server(tmp_path: Path, store: Store) -> AsyncIterator[HubProcess]:
    """Groups alpha (the default) and beta behind one gateway, on SQLite and PostgreSQL."""
    hub = HubProcess(settings(tmp_path), ["alpha", "beta"], store=store)
    await hub.start()
    yield hub
    await hub.stop()


@pytest.fixture
async def lite(tmp_path: Path, sqlite_store: Store) -> AsyncIterator[HubProcess]:
    """The same on SQLite only (for the tests whose subject has no store in it: the card,
    built from the live board, and the routing of wrong paths)."""
    hub = HubProcess(settings(tmp_path), ["alpha", "beta"], store=sqlite_store)
    await hub.start()
    yield hub
    await hub.stop()


async def echo_agent(server: HubProcess, agent_id: str = "echo") -> Agent:
    token, _ = await server.create_token("alpha", "agent", agent_id)
    agent = Agent(agent_id, id=agent_id, group="alpha", skills={"text": 0.8})

    @agent.handler
    async def echo(ctx: TaskContext) -> object:
        await ctx.progress(0.5, "shouting")
        text = ctx.input["text"] if isinstance(ctx.input, dict) else str(ctx.input)
        return {"text": str(text).upper(), "reversed": str(text).upper()[::-1]}

    await agent.start(server.url, token=token)
    return agent


async def a2a_client(
    url: str, token: str, binding: str = TransportProtocol.JSONRPC.value, streaming: bool = True
) -> tuple[Client, httpx.AsyncClient]:
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=120)
    config = ClientConfig(
        httpx_client=http, streaming=streaming, supported_protocol_bindings=[binding]
    )
    client = await ClientFactory(config).create_from_url(url)
    return client, http


def text_message(text: str, **metadata: Any) -> SendMessageRequest:
    message = Message(
        message_id=f"m-{abs(hash((text, json.dumps(metadata)))) % 10**9}",
        role=Role.ROLE_USER,
        parts=[Part(text=text)],
        metadata=metadata,
    )
    return SendMessageRequest(message=message)


async def refused(server: HubProcess, group: str, needle: str) -> list[str]:
    """The ``message.refused`` events of ``group`` whose message contains ``needle``."""
    hub = server.hubs[group]
    reply = await hub.handle("api.events", ListEvents(kind="message.refused"))
    return [e.message for e in getattr(reply, "events", []) if needle in e.message]


# -- the card --------------------------------------------------------------------------------


async def test_the_card_lists_the_live_skills_and_the_bearer_scheme(lite: HubProcess) -> None:
    base = str(lite.gateway_url)
    agent = await echo_agent(lite)
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            card = await A2ACardResolver(http, base).get_agent_card()
            per_group = await A2ACardResolver(http, f"{base}/a2a/beta").get_agent_card()
        assert card.name == "Claw Group alpha"  # the default group at the root
        assert [s.id for s in card.skills] == ["clawhub.goal", "text"]
        assert "not ready" in card.skills[0].description  # no coordinator key here
        skill = card.skills[1]
        assert skill.name == "text" and "1 participant online" in skill.description
        assert {"text", "agent", "laptop", "plain-code"} <= set(skill.tags)
        assert "echo" not in skill.description  # who offers it: the extended card only
        assert card.capabilities.streaming and not card.capabilities.push_notifications
        scheme = card.security_schemes["bearer"].http_auth_security_scheme
        assert scheme.scheme == "bearer"
        bindings = {i.protocol_binding: i.url for i in card.supported_interfaces}
        assert bindings == {"JSONRPC": f"{base}/a2a/alpha", "HTTP+JSON": f"{base}/a2a/alpha"}
        assert per_group.name == "Claw Group beta"
        assert [s.id for s in per_group.skills] == ["clawhub.goal"]
        # with a token, the extended card says who offers each skill, with the same URLs
        client, http = await a2a_client(base, lite.admin_tokens["alpha"])
        try:
            extended = await client.get_extended_agent_card(GetExtendedAgentCardRequest())
        finally:
            await client.close()
            await http.aclose()
        assert "Offered by: echo (0.8, 0/1 busy)" in extended.skills[1].description
        assert extended.supported_interfaces[0].url == f"{base}/a2a/alpha"
        # the agent leaves: its skill leaves the card (rebuilt per request)
    finally:
        await agent.stop()
    async with httpx.AsyncClient(timeout=60) as http:
        later = await A2ACardResolver(http, base).get_agent_card()
    assert [s.id for s in later.skills] == ["clawhub.goal"]


# -- the core: send, stream to COMPLETED, read, list (SQLite and PostgreSQL) -------------------


@pytest.mark.parametrize("binding", [TransportProtocol.JSONRPC.value, "HTTP+JSON"])
async def test_a_message_streams_to_completed_with_the_output_as_artifact(
    server: HubProcess, binding: str
) -> None:
    agent = await echo_agent(server)
    token, _ = await server.create_token("alpha", "human", "ann")
    client, http = await a2a_client(f"{server.gateway_url}/a2a/alpha", token, binding)
    try:
        events: list[StreamResponse] = []
        async for event in client.send_message(text_message("hello", skill="text")):
            events.append(event)
        first = events[0]
        assert first.HasField("task")
        assert first.task.status.state == TaskState.TASK_STATE_SUBMITTED
        task_id = first.task.id
        updates = [e.status_update for e in events if e.HasField("status_update")]
        states = [u.status.state for u in updates]
        assert states[-1] == TaskState.TASK_STATE_COMPLETED
        assert TaskState.TASK_STATE_WORKING in states  # running, validating
        assert "shouting" in [u.status.message.parts[0].text for u in updates]  # progress
        artifacts = [e.artifact_update for e in events if e.HasField("artifact_update")]
        assert len(artifacts) == 1
        output = json_format.MessageToDict(artifacts[0].artifact.parts[0].data)
        assert output == {"text": "HELLO", "reversed": "OLLEH"}
        # the hub's task is the A2A task
        hub = server.hubs["alpha"]
        rec = hub.board.tasks[task_id]
        assert rec.state is HubState.DONE and rec.spec.skills == {"text": 0.0}
        assert rec.spec.metadata["source"] == "a2a"
        got = await client.get_task(GetTaskRequest(id=task_id))
        assert got.status.state == TaskState.TASK_STATE_COMPLETED
        assert got.context_id == first.task.context_id
        assert got.history[0].parts[0].text == "hello"
        assert "done by echo" in got.status.message.parts[0].text
        listed = await client.list_tasks(ListTasksRequest(context_id=got.context_id))
        assert [t.id for t in listed.tasks] == [task_id] and listed.total_size == 1
        done = await client.list_tasks(ListTasksRequest(status=TaskState.TASK_STATE_COMPLETED))
        assert task_id in [t.id for t in done.tasks]
        # a non-streaming send blocks until done
        blocking, bhttp = await a2a_client(
            f"{server.gateway_url}/a2a/alpha", token, binding, streaming=False
        )
        try:
            [answer] = [e async for e in blocking.send_message(text_message("abc", skill="text"))]
            assert answer.task.status.state == TaskState.TASK_STATE_COMPLETED
            data = json_format.MessageToDict(answer.task.artifacts[0].parts[0].data)
            assert data["reversed"] == "CBA"
        finally:
            await blocking.close()
            await bhttp.aclose()
    finally:
        await client.close()
        await http.aclose()
        await agent.stop()


# -- cancel, a skill nobody has, subscribe ------------------------------------------------------


async def test_cancel_needs_a_human_and_maps_to_canceled(server: HubProcess) -> None:
    token, _ = await server.create_token("alpha", "agent", "slow")
    release = asyncio.Event()
    agent = Agent("slow", id="slow", group="alpha", skills={"essay": 0.9})

    @agent.handler
    async def write(ctx: TaskContext) -> object:
        await ctx.progress(0.1, "thinking")
        await release.wait()
        return "late"

    await agent.start(server.url, token=token)
    human, _ = await server.create_token("alpha", "human", "ann")
    worker, _ = await server.create_token("alpha", "agent", "bot")
    url = f"{server.gateway_url}/a2a/alpha"
    client, http = await a2a_client(url, human)
    poll, poll_http = await a2a_client(url, human, streaming=False)
    bot, bot_http = await a2a_client(url, worker)
    try:
        request = text_message("an essay", skill="essay")
        request.configuration.return_immediately = True
        [sent] = [e async for e in poll.send_message(request)]
        task_id = sent.task.id
        hub = server.hubs["alpha"]
        await until(lambda: hub.board.tasks[task_id].state is HubState.RUNNING)
        # subscribe, then cancel: the subscriber sees CANCELED
        seen: list[int] = []

        async def follow() -> None:
            async for event in client.subscribe(SubscribeToTaskRequest(id=task_id)):
                if event.HasField("status_update"):
                    seen.append(event.status_update.status.state)

        follower = asyncio.create_task(follow())
        with pytest.raises(InvalidRequestError, match="forbidden"):  # an agent may not cancel
            await bot.cancel_task(CancelTaskRequest(id=task_id))
        assert await refused(server, "alpha", "only humans and admins may cancel")
        cancelled = await client.cancel_task(
            CancelTaskRequest(id=task_id, metadata={"reason": "changed my mind"})
        )
        assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
        assert "changed my mind" in cancelled.status.message.parts[0].text
        await asyncio.wait_for(follower, 60)
        assert seen[-1] == TaskState.TASK_STATE_CANCELED
        assert hub.board.tasks[task_id].state is HubState.CANCELLED
        with pytest.raises(TaskNotCancelableError):  # cancelled already
            await client.cancel_task(CancelTaskRequest(id=task_id))
    finally:
        release.set()
        for c, h in ((client, http), (poll, poll_http), (bot, bot_http)):
            await c.close()
            await h.aclose()
        await agent.stop()


async def test_a_skill_nobody_has_waits_submitted(server: HubProcess) -> None:
    token, _ = await server.create_token("alpha", "human", "ann")
    url = f"{server.gateway_url}/a2a/alpha"
    client, http = await a2a_client(url, token)
    poll, poll_http = await a2a_client(url, token, streaming=False)
    try:
        request = text_message("translate this", skills={"klingon": 0.5})
        request.configuration.return_immediately = True
        [sent] = [e async for e in poll.send_message(request)]
        assert sent.task.status.state == TaskState.TASK_STATE_SUBMITTED
        note = sent.task.status.message.parts[0].text
        assert "waiting for a participant with klingon >= 0.5" in note
        # streaming: the first event is the task, SUBMITTED, and it stays so
        stream = client.send_message(text_message("again", skill="klingon"))
        first = await anext(stream)
        assert first.task.status.state == TaskState.TASK_STATE_SUBMITTED
        await stream.aclose()
        got = await client.get_task(GetTaskRequest(id=sent.task.id))
        assert got.status.state == TaskState.TASK_STATE_SUBMITTED
        assert server.hubs["alpha"].board.tasks[sent.task.id].state is HubState.READY
    finally:
        for c, h in ((client, http), (poll, poll_http)):
            await c.close()
            await h.aclose()


# -- refusals: tokens, garbage -----------------------------------------------------------------


async def test_bad_tokens_are_refused_and_recorded(server: HubProcess) -> None:
    url = f"{server.gateway_url}/a2a/alpha"
    revoked, row = await server.create_token("alpha", "human", "gone")
    await server.revoke_token(row.id)
    bad, bad_http = await a2a_client(url, revoked)
    beta, _ = await server.create_token("beta", "admin")
    other, other_http = await a2a_client(url, beta)
    try:
        with pytest.raises(A2AClientError, match="401"):
            await bad.get_task(GetTaskRequest(id="anything"))
        with pytest.raises(A2AClientError, match="403"):
            await other.get_task(GetTaskRequest(id="anything"))
    finally:
        for c, h in ((bad, bad_http), (other, other_http)):
            await c.close()
            await h.aclose()
    async with httpx.AsyncClient(timeout=60) as http:
        r = await http.post(f"{url}/message:send", json={"message": {}})
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["error"]["status"] == "UNAUTHENTICATED"
    assert await refused(server, "alpha", "unknown or revoked token")
    assert await refused(server, "alpha", "belongs to group beta, not alpha")
    assert len(await refused(server, "alpha", "a token is required")) == 1


async def test_malformed_requests_get_a2a_errors_are_recorded_and_lose_nothing(
    server: HubProcess,
) -> None:
    agent = await echo_agent(server)
    admin = server.admin_tokens["alpha"]
    url = f"{server.gateway_url}/a2a/alpha"
    headers = {"Authorization": f"Bearer {admin}", "A2A-Version": "1.0"}
    try:
        async with httpx.AsyncClient(timeout=60, headers=headers) as http:

            async def post(body: bytes | dict[str, Any], path: str = "") -> httpx.Response:
                if isinstance(body, bytes):
                    return await http.post(url + path, content=body)
                return await http.post(url + path, json=body)

            not_json = await post(b"{not json")
            assert not_json.status_code == 200 and not_json.json()["error"]["code"] == -32700
            unknown = await post({"jsonrpc": "2.0", "id": 1, "method": "Fly", "params": {}})
            assert unknown.json()["error"]["code"] == -32601
            bad_params = await post(
                {"jsonrpc": "2.0", "id": 2, "method": "SendMessage", "params": {"message": 5}}
            )
            assert bad_params.json()["error"]["code"] == -32602
            bad_meta = await post(
                {
                    "jsonrpc": "2.0",
                    "id": 3,
                    "method": "SendMessage",
                    "params": {
                        "message": {
                            "messageId": "x",
                            "role": "ROLE_USER",
                            "parts": [{"text": "hi"}],
                            "metadata": {"skills": {"text": "very"}},
                        }
                    },
                }
            )
            assert bad_meta.json()["error"]["code"] == -32602
            assert "metadata.skills" in bad_meta.json()["error"]["message"]
            for meta, needle in (
                ({"max_attempts": 0}, "max_attempts"),
                ({"human_review": "yes"}, "human_review"),
            ):
                wrong = await post(
                    {
                        "message": {
                            "messageId": f"w-{needle}",
                            "role": "ROLE_USER",
                            "parts": [{"text": "hi"}],
                            "metadata": {"skill": "text", **meta},
                        }
                    },
                    "/message:send",
                )
                assert wrong.status_code == 400 and needle in wrong.text, wrong.text
            no_task = await post(
                {"jsonrpc": "2.0", "id": 4, "method": "GetTask", "params": {"id": "nope"}}
            )
            assert no_task.json()["error"]["code"] == -32001
            huge = await post(b'{"a": "' + b"x" * (server.settings.max_message_bytes + 10) + b'"}')
            assert huge.json()["error"]["data"]["clawhub_code"] == "oversize"
            rest = await post(b"[1, 2]", "/message:send")
            assert rest.status_code == 400 and rest.json()["error"]["status"] == "INVALID_ARGUMENT"
            nul = await post(
                {
                    "message": {
                        "messageId": "y",
                        "role": "ROLE_USER",
                        "parts": [{"text": "a\u0000b"}],
                    }
                },
                "/message:send",
            )
            assert nul.status_code == 400
            push = await post(
                {
                    "jsonrpc": "2.0",
                    "id": 5,
                    "method": "CreateTaskPushNotificationConfig",
                    "params": {"taskId": "t", "url": "http://127.0.0.1:9/hook"},
                }
            )
            assert push.json()["error"]["code"] == -32003
            # the hub still serves: a good message after the garbage is done
            good = await post(
                {
                    "jsonrpc": "2.0",
                    "id": 6,
                    "method": "SendMessage",
                    "params": {
                        "message": {
                            "messageId": "z",
                            "role": "ROLE_USER",
                            "parts": [{"text": "still here"}],
                            "metadata": {"skill": "text"},
                        }
                    },
                }
            )
            result = good.json()["result"]["task"]
            assert result["status"]["state"] == "TASK_STATE_COMPLETED", good.text
    finally:
        await agent.stop()
    for needle in (
        "payload is not JSON",
        "Method not found",
        "metadata.skills",
        "no task nope",
        "max_message_bytes",
        "not a JSON object",
        "NUL",
        "max_attempts",
        "human_review",
        "push notifications are not supported",
    ):
        assert await refused(server, "alpha", needle), (needle, await refused(server, "alpha", ""))


# -- free text: a goal for the coordinator (a hub whose model answers through mock_response) --

PLAN = {
    "tasks": [
        {"id": "shout", "title": "Shout it", "skills": {"text": 0.5}, "input": {"text": "hi"}},
        {
            "id": "again",
            "title": "Shout it again",
            "skills": {"text": 0.5},
            "input": {"text": "there"},
            "depends_on": ["shout"],
        },
    ],
    "deliverable": "again",
}


async def test_free_text_is_a_goal_the_coordinator_plans(
    make_hub: MakeHub, sqlite_store: Store
) -> None:
    hub = await make_hub([json.dumps(PLAN)])
    tokens = Tokens(sqlite_store)
    token, _ = tokens.create(hub.group, "human", "ann")
    app = create_app(Gateway({hub.group: hub}, tokens, hub.settings))
    agent = Agent("echo", id="echo", skills={"text": 0.8})

    @agent.handler
    async def echo(ctx: TaskContext) -> object:
        text = ctx.input["text"] if isinstance(ctx.input, dict) else ""
        return {"text": str(text).upper()}

    await agent.start(hub.url)
    try:
        async with serving(app) as base:
            client, http = await a2a_client(base, token)
            try:
                events = [e async for e in client.send_message(text_message("Shout twice"))]
            finally:
                await client.close()
                await http.aclose()
        first = events[0].task
        assert first.status.state == TaskState.TASK_STATE_SUBMITTED
        goal_id = first.id
        assert goal_id in hub.board.goals and hub.board.goals[goal_id].state == "done"
        updates = [e.status_update.status for e in events if e.HasField("status_update")]
        assert updates[-1].state == TaskState.TASK_STATE_COMPLETED
        assert TaskState.TASK_STATE_WORKING in [u.state for u in updates]
        assert "2/2 tasks" in updates[-1].message.parts[0].text
        [artifact] = [e.artifact_update.artifact for e in events if e.HasField("artifact_update")]
        assert artifact.name == "deliverable"
        assert json_format.MessageToDict(artifact.parts[0].data) == {"text": "THERE"}
    finally:
        await agent.stop()


# -- the docs page, as a newcomer runs it ------------------------------------------------------

PAGE = Path(__file__).resolve().parent.parent / "docs" / "a2a.md"


def page_block(name: str) -> str:
    """The fenced block after ``<!-- a2a-test: NAME -->`` in docs/a2a.md."""
    text = PAGE.read_text()
    marker = f"<!-- a2a-test: {name} -->\n```"
    start = text.index(marker) + len(marker)
    body = text[text.index("\n", start) + 1 :]
    return body[: body.index("\n```")]


async def test_the_docs_example_runs_against_a_live_hub(
    tmp_path: Path, sqlite_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/a2a.md's client script and curl lines, as pasted, against `clawhub up`'s
    default group with the README's echo agent."""
    spec = importlib.util.spec_from_file_location(
        "_a2a_echo", PAGE.parent.parent / "examples" / "echo_agent.py"
    )
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    hub = HubProcess(settings(tmp_path).model_copy(update={"group": "default"}), store=sqlite_store)
    await hub.start()
    agent = example.build("echo")
    try:
        agent_token, _ = await hub.create_token("default", "agent", "echo")
        await agent.start(hub.url, token=agent_token)
        token, _ = await hub.create_token("default", "human", "ann")
        ns: dict[str, Any] = {"__name__": "docs_block"}
        exec(compile(page_block("client"), str(PAGE), "exec"), ns)
        output = await ns["main"](str(hub.gateway_url), token)
        assert output == {"text": "HELLO", "reversed": "OLLEH", "length": 5.0}
        printed = capsys.readouterr().out
        assert "skills: ['clawhub.goal', 'text']" in printed
        assert "TASK_STATE_COMPLETED done by echo (attempt 1)" in printed
        env = {
            "CLAWHUB_GATEWAY": str(hub.gateway_url),
            "CLAWHUB_TOKEN": token,
            "PATH": "/usr/bin:/bin",
        }
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", page_block("curl"), env=env, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0
        text = out.decode()
        card, end = json.JSONDecoder().raw_decode(text)
        answer, _ = json.JSONDecoder().raw_decode(text[end:].lstrip())
        assert card["name"] == "Claw Group default"
        result = answer["result"]["task"]
        assert result["status"]["state"] == "TASK_STATE_COMPLETED"
        assert result["artifacts"][0]["parts"][0]["data"]["reversed"] == "LRUC"
    finally:
        await agent.stop()
        await hub.stop()


async def test_a_blocking_send_answers_in_time_and_a_revoked_token_ends_its_stream(
    make_hub: MakeHub, sqlite_store: Store
) -> None:
    hub = await make_hub()
    tokens = Tokens(sqlite_store)
    token, row = tokens.create(hub.group, "human", "ann")
    app = create_app(Gateway({hub.group: hub}, tokens, hub.settings))
    app.state.a2a.handlers[hub.group].blocking_wait = 0.5
    async with serving(app) as base:
        poll, poll_http = await a2a_client(base, token, streaming=False)
        client, http = await a2a_client(base, token)
        try:
            # nobody has the skill: a blocking send answers after blocking_wait, SUBMITTED
            [answer] = [e async for e in poll.send_message(text_message("x", skill="nobody"))]
            assert answer.task.status.state == TaskState.TASK_STATE_SUBMITTED
            task_id = answer.task.id
            got: list[StreamResponse] = []

            async def follow() -> None:
                async for event in client.subscribe(SubscribeToTaskRequest(id=task_id)):
                    got.append(event)

            follower = asyncio.create_task(follow())
            await until(lambda: bool(got))  # the subscription is live: it sent the task
            assert got[0].task.status.state == TaskState.TASK_STATE_SUBMITTED
            tokens.revoke(row.id)
            app.state.gateway.drop_revoked()  # what HubProcess's token watcher does
            await asyncio.wait_for(follower, 60)  # the stream ends: no more for that token
            assert len(got) == 1
            with pytest.raises(A2AClientError, match="401"):
                await poll.get_task(GetTaskRequest(id=task_id))
        finally:
            for c, h in ((client, http), (poll, poll_http)):
                await c.close()
                await h.aclose()
    assert hub.board.tasks[task_id].state is HubState.READY  # nothing lost: still waiting


async def test_a_lost_worker_is_replaced_behind_one_a2a_task(server: HubProcess) -> None:
    """What A2A lacks, the hub supplies: the worker dies mid-task, the hub reassigns it, and
    the A2A client's one stream goes WORKING → SUBMITTED (reassigned) → WORKING → COMPLETED."""
    hub = server.hubs["alpha"]
    started = asyncio.Event()
    flaky_token, _ = await server.create_token("alpha", "agent", "flaky")
    flaky = Agent("flaky", id="flaky", group="alpha", skills={"text": 0.9})

    @flaky.handler
    async def hang(ctx: TaskContext) -> object:
        await ctx.progress(0.1, "flaky starts")
        started.set()
        await asyncio.Event().wait()  # never finishes: it dies first
        return None

    await flaky.start(server.url, token=flaky_token)
    token, _ = await server.create_token("alpha", "human", "ann")
    client, http = await a2a_client(f"{server.gateway_url}/a2a/alpha", token)
    backup: Agent | None = None
    try:
        states: list[int] = []
        async for event in client.send_message(text_message("survive", skill="text")):
            if event.HasField("status_update"):
                states.append(event.status_update.status.state)
            if started.is_set() and backup is None:
                backup = await echo_agent(server, "backup")
                await flaky.lose("the laptop closed")  # no goodbye: the hub sees it lost
        working = TaskState.TASK_STATE_WORKING
        first_run = states.index(working)
        assert TaskState.TASK_STATE_SUBMITTED in states[first_run:]  # back to the queue
        assert states[-1] == TaskState.TASK_STATE_COMPLETED
        [rec] = [r for r in hub.board.tasks.values() if r.spec.instructions == "survive"]
        assert [a.agent_id for a in rec.history] == ["flaky", "backup"]
        assert rec.history[0].outcome == "lost"
    finally:
        await client.close()
        await http.aclose()
        if backup is not None:
            await backup.stop()


# -- failed and needs_human, live (SQLite and PostgreSQL) ----------------------------------------


async def test_a_task_that_fails_in_the_hub_is_failed_with_its_reason(server: HubProcess) -> None:
    token, _ = await server.create_token("alpha", "agent", "flop")
    agent = Agent("flop", id="flop", group="alpha", skills={"maths": 0.9})

    @agent.handler
    async def divide(ctx: TaskContext) -> object:
        raise ZeroDivisionError("cannot divide by zero")

    await agent.start(server.url, token=token)
    human, _ = await server.create_token("alpha", "human", "ann")
    url = f"{server.gateway_url}/a2a/alpha"
    blocking, bhttp = await a2a_client(url, human, streaming=False)
    client, http = await a2a_client(url, human)
    try:
        # a blocking send returns at FAILED, the hub's reason in the status message
        sent = text_message("1/0", skill="maths", max_attempts=1)
        [answer] = [e async for e in blocking.send_message(sent)]
        task = answer.task
        assert task.status.state == TaskState.TASK_STATE_FAILED
        note = task.status.message.parts[0].text
        rec = server.hubs["alpha"].board.tasks[task.id]
        assert rec.state is HubState.FAILED and rec.spec.max_attempts == 1
        assert note == rec.error
        assert "1 failed attempts (max 1)" in note and "cannot divide by zero" in note
        assert not task.artifacts
        got = await client.get_task(GetTaskRequest(id=task.id))
        assert got.status.state == TaskState.TASK_STATE_FAILED
        assert got.status.message.parts[0].text == note
        # a stream ends on a final FAILED update with the same reason, and no artifact
        events = [
            e async for e in client.send_message(text_message("2/0", skill="maths", max_attempts=1))
        ]
        updates = [e.status_update for e in events if e.HasField("status_update")]
        assert updates[-1].status.state == TaskState.TASK_STATE_FAILED
        assert "cannot divide by zero" in updates[-1].status.message.parts[0].text
        assert not [e for e in events if e.HasField("artifact_update")]
    finally:
        for c, h in ((blocking, bhttp), (client, http)):
            await c.close()
            await h.aclose()
        await agent.stop()


async def test_a_result_for_a_human_is_input_required_until_approved(server: HubProcess) -> None:
    agent = await echo_agent(server)
    human, _ = await server.create_token("alpha", "human", "ann")
    url = f"{server.gateway_url}/a2a/alpha"
    blocking, bhttp = await a2a_client(url, human, streaming=False)
    client, http = await a2a_client(url, human)
    hub = server.hubs["alpha"]
    try:
        # a blocking send returns at INPUT_REQUIRED: the result waits for a human
        sent = text_message("check me", skill="text", human_review=True)
        [answer] = [e async for e in blocking.send_message(sent)]
        task_id = answer.task.id
        assert answer.task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        assert "waiting for a human" in answer.task.status.message.parts[0].text
        assert not answer.task.artifacts  # not accepted yet
        assert hub.board.tasks[task_id].state is HubState.NEEDS_HUMAN
        got = await client.get_task(GetTaskRequest(id=task_id))
        assert got.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        waiting = await client.list_tasks(
            ListTasksRequest(status=TaskState.TASK_STATE_INPUT_REQUIRED)
        )
        assert [t.id for t in waiting.tasks] == [task_id]
        # a subscriber from here sees the human's approval through the hub end it COMPLETED
        seen: list[StreamResponse] = []

        async def follow() -> None:
            async for event in client.subscribe(SubscribeToTaskRequest(id=task_id)):
                seen.append(event)

        follower = asyncio.create_task(follow())
        await until(lambda: bool(seen))
        assert seen[0].task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        async with httpx.AsyncClient(base_url=str(server.gateway_url), timeout=60) as rest:
            decided = await rest.post(
                "/v1/api/decide",
                json={"task_id": task_id, "accept": True, "reason": "looks right", "by": "ann"},
                headers={"Authorization": f"Bearer {human}"},
            )
        assert decided.status_code == 200, decided.text
        await asyncio.wait_for(follower, 60)
        last = seen[-1].status_update.status
        assert last.state == TaskState.TASK_STATE_COMPLETED
        [artifact] = [e.artifact_update.artifact for e in seen if e.HasField("artifact_update")]
        assert json_format.MessageToDict(artifact.parts[0].data)["text"] == "CHECK ME"
        done = await client.get_task(GetTaskRequest(id=task_id))
        assert done.status.state == TaskState.TASK_STATE_COMPLETED
        assert hub.board.tasks[task_id].state is HubState.DONE
    finally:
        for c, h in ((blocking, bhttp), (client, http)):
            await c.close()
            await h.aclose()
        await agent.stop()


async def test_wrong_paths_and_groups_are_a2a_shaped_404s(lite: HubProcess) -> None:
    admin = lite.admin_tokens["alpha"]
    before = len(await refused(lite, "alpha", ""))
    async with httpx.AsyncClient(
        base_url=str(lite.gateway_url), headers={"Authorization": f"Bearer {admin}"}, timeout=60
    ) as http:
        nope = await http.get("/a2a/alpha/nope")
        assert nope.status_code == 404 and nope.json()["error"]["status"] == "NOT_FOUND"
        group = await http.get("/a2a/gamma/tasks")
        assert group.status_code == 404 and "gamma" in group.json()["error"]["message"]
        method = await http.get("/a2a/alpha")  # JSON-RPC is POST only
        assert method.status_code == 405
        listed = await http.get("/a2a/alpha/tasks", headers={"A2A-Version": "1.0"})
        assert listed.status_code == 200 and listed.json()["tasks"] == []
        rest = await http.get("/v1/tasks")  # the gateway's own routes are untouched
        assert rest.status_code == 200
        bad = await http.post("/a2a/alpha", content=b"nope")  # but garbage is recorded
        assert bad.json()["error"]["code"] == -32700
    after = await refused(lite, "alpha", "")
    assert len(after) == before + 1 and "not JSON" in after[-1]


# -- the state tables of docs/a2a.md, state by state (pure) ----------------------------------

DOC_STATES = {
    HubState.PENDING: "TASK_STATE_SUBMITTED",
    HubState.READY: "TASK_STATE_SUBMITTED",
    HubState.ASSIGNED: "TASK_STATE_SUBMITTED",
    HubState.RUNNING: "TASK_STATE_WORKING",
    HubState.VALIDATING: "TASK_STATE_WORKING",
    HubState.NEEDS_HUMAN: "TASK_STATE_INPUT_REQUIRED",
    HubState.DONE: "TASK_STATE_COMPLETED",
    HubState.FAILED: "TASK_STATE_FAILED",
    HubState.CANCELLED: "TASK_STATE_CANCELED",
}


#: A failed task's error, as the hub writes it (see the live test above).
FAILED_REASON = "3 failed attempts (max 3); last: lost"


@pytest.mark.parametrize("state", list(HubState))
def test_every_hub_state_maps_as_the_docs_say(state: HubState) -> None:
    from clawhub.gateway.a2a import mapping
    from protocols import TaskSpec, TaskStatus

    status = TaskStatus(
        id="t-1",
        spec=TaskSpec(title="x", skills={"text": 0.5}),
        state=state,
        attempt=1,
        failures=0,
        assigned_to="echo",
        output={"n": 1} if state is HubState.DONE else None,
        error=FAILED_REASON if state is HubState.FAILED else "no (by ann)",
        created_at=1.0,
        updated_at=2.0,
    )
    task = mapping.to_task(status)
    assert TaskState.Name(task.status.state) == DOC_STATES[state]
    assert f"`{state.value}`" in PAGE.read_text()  # the page's table names it
    note = task.status.message.parts[0].text
    assert note
    if state is HubState.DONE:
        assert json_format.MessageToDict(task.artifacts[0].parts[0].data) == {"n": 1}
    else:
        assert not task.artifacts
    if state is HubState.FAILED:
        assert note == FAILED_REASON
    if state is HubState.NEEDS_HUMAN:
        assert "human" in note
    assert task.context_id == "t-1" and task.metadata["clawhub"]["state"] == state.value


@pytest.mark.parametrize(
    ("goal", "a2a"),
    [
        ("planning", "TASK_STATE_SUBMITTED"),
        ("awaiting_approval", "TASK_STATE_INPUT_REQUIRED"),
        ("running", "TASK_STATE_WORKING"),
        ("done", "TASK_STATE_COMPLETED"),
        ("failed", "TASK_STATE_FAILED"),
        ("cancelled", "TASK_STATE_CANCELED"),
    ],
)
def test_every_goal_state_maps_as_the_docs_say(goal: str, a2a: str) -> None:
    from clawhub.gateway.a2a import mapping
    from protocols import GoalSpec, GoalStatus

    status = GoalStatus.model_validate(
        {
            "id": "g-1",
            "spec": GoalSpec(text="do it").model_dump(),
            "state": goal,
            "deliverable": "the end" if goal == "done" else None,
            "created_at": 1.0,
            "updated_at": 2.0,
        }
    )
    task = mapping.goal_to_task(status)
    assert TaskState.Name(task.status.state) == a2a
    assert bool(task.artifacts) is (goal == "done")
    if goal == "done":
        assert task.artifacts[0].parts[0].text == "the end"
