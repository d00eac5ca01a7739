"""Groups and security against real parts: an embedded nats-server WITH authentication, two
groups (alpha, beta) in one HubProcess, the gateway on a free port."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import websockets
from conftest import server_settings, until
from nats.aio.client import Client as NATS
from test_gateway import auth
from ws_agent import RawWsAgent

from agents_sdk import Agent, HubClient, HubUnavailable, RequestRefused, TaskContext
from clawhub.errors import TokenError
from clawhub.gateway import HubProcess
from clawhub.runtime.auth import MISS_LOOKUPS, Tokens
from clawhub.store import Store
from protocols import (
    CancelTask,
    SubmitTasks,
    TaskSpec,
    TaskState,
    decode_any,
    encode,
    split_token,
    subjects,
)


async def nats_as(server: HubProcess, token: str, errors: list[Exception]) -> NATS:
    """A raw nats-py connection as the token's NATS user."""
    token_id, secret = split_token(token)

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    return await nats.connect(
        server.url,
        user=token_id,
        password=secret,
        inbox_prefix=subjects.inbox_prefix(token_id),
        error_cb=on_error,
        allow_reconnect=False,
    )


async def test_bad_and_revoked_tokens_are_refused_on_every_path(hub_server: HubProcess) -> None:
    token, row = await hub_server.create_token("alpha", "agent", "doomed")
    base = str(hub_server.gateway_url)
    async with httpx.AsyncClient(base_url=base) as http:
        assert (await http.get("/v1/tasks")).status_code == 401
        garbage = await http.get("/v1/tasks", headers=auth("not-a-token"))
        assert garbage.status_code == 401 and garbage.json()["code"] == "unauthorized"
        forged = token.split(".")[0] + ".x" + "A" * 31
        assert (await http.get("/v1/tasks", headers=auth(forged))).status_code == 401
        assert (await http.get("/v1/tasks", headers=auth(token))).status_code == 200
        # NATS: no credentials, wrong password: refused
        with pytest.raises(nats.errors.Error):
            await nats.connect(hub_server.url, allow_reconnect=False, connect_timeout=2)
        with pytest.raises(nats.errors.Error):
            await nats.connect(hub_server.url, user=row.id, password="wrong", allow_reconnect=False)
        # a live NATS connection and a live socket of the token
        errors: list[Exception] = []
        closed = asyncio.Event()
        token_id, secret = split_token(token)

        async def on_closed() -> None:
            closed.set()

        nc = await nats.connect(
            hub_server.url,
            user=token_id,
            password=secret,
            inbox_prefix=subjects.inbox_prefix(token_id),
            allow_reconnect=False,
            closed_cb=on_closed,
            error_cb=_appender(errors),
        )
        assert nc.is_connected
        assert await hub_server.revoke_token(row.id)
        # revoked: REST refuses at once, the NATS connection is closed by the server
        revoked = await http.get("/v1/tasks", headers=auth(token))
        assert revoked.status_code == 401 and revoked.json()["code"] == "unauthorized"
        await asyncio.wait_for(closed.wait(), 10)
        with pytest.raises(nats.errors.Error):
            await nats.connect(
                hub_server.url, user=token_id, password=secret, allow_reconnect=False
            )
    # WebSocket: refused with close code 4401 and an error frame
    async with websockets.connect(f"{hub_server.ws_url}?token={token}") as ws:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert frame["message"]["code"] == "unauthorized"
        with pytest.raises(websockets.ConnectionClosed) as closed_info:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed_info.value.rcvd is not None and closed_info.value.rcvd.code == 4401
    # the SDK says so plainly
    agent = Agent("doomed", id="doomed", group="alpha", skills={"x": 1.0})
    with pytest.raises(RequestRefused):
        await agent.start(str(hub_server.ws_url), token=token, timeout=5)
    with pytest.raises(HubUnavailable):
        await agent.start(hub_server.url, token=token, timeout=2)


def _appender(errors: list[Exception]) -> Any:
    async def append(exc: Exception) -> None:
        errors.append(exc)

    return append


async def test_revocation_by_the_cli_reaches_a_running_server(hub_server: HubProcess) -> None:
    """``clawhub token revoke`` in another process: the token table is re-read."""
    token, row = await hub_server.create_token("alpha", "human")
    other = type(hub_server.tokens)(hub_server.store)  # another process's view of the store
    assert other.revoke(row.id)
    async with httpx.AsyncClient(base_url=str(hub_server.gateway_url)) as http:

        async def refused() -> bool:
            r = await http.get("/v1/tasks", headers=auth(token))
            return r.status_code == 401

        for _ in range(200):
            if await refused():
                break
            await asyncio.sleep(0.05)
        assert await refused()


async def test_group_a_cannot_see_take_or_complete_group_b_tasks_on_nats(
    hub_server: HubProcess,
) -> None:
    beta = hub_server.hubs["beta"]
    [secret_task] = beta.board.submit(
        [TaskSpec(id="beta-secret", title="beta only", skills={"x": 0.1}, input="classified")]
    )
    token_a, _ = await hub_server.create_token("alpha", "agent", "spy")
    spy = subjects.sender_for(token_a)
    errors: list[Exception] = []
    nc = await nats_as(hub_server, token_a, errors)
    seen: list[bytes] = []

    async def collect(msg: Any) -> None:
        seen.append(msg.data)

    # subscribe to beta's events and to the inbox beta would offer its task to
    await nc.subscribe(subjects.all_events("beta"), cb=collect)
    await nc.subscribe(subjects.agent_inbox("beta", "spy"), cb=collect)
    await nc.subscribe(">", cb=collect)
    # try to register with beta's hub, list its tasks, submit, complete its task
    for subject, message in (
        (subjects.hub_register("beta", spy), b"{}"),
        (subjects.api("beta", spy, subjects.API_TASKS), b'{"type":"claw.v1.api.list_tasks"}'),
        (
            subjects.api("beta", spy, subjects.API_SUBMIT),
            encode(SubmitTasks(tasks=[TaskSpec(title="x")])),
        ),
        (subjects.hub_result("beta", spy), b"{}"),
    ):
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await nc.request(subject, message, timeout=0.5)
    await nc.flush()
    beta.board.submit([TaskSpec(id="beta-more", title="more", skills={"x": 0.1})])
    await until(lambda: len([e for e in errors if "ermissions" in str(e)]) >= 7)
    await asyncio.sleep(0.2)  # let any (forbidden) delivery arrive before asserting none did
    assert seen == []
    assert set(beta.board.tasks) == {secret_task, "beta-more"}
    assert beta.board.tasks[secret_task].state is TaskState.READY
    assert "spy" not in beta.board.agents
    # while its own group works for it
    reply = decode_any(
        (
            await nc.request(
                subjects.api("alpha", spy, subjects.API_TASKS),
                b'{"type":"claw.v1.api.list_tasks"}',
                timeout=5,
            )
        ).data
    )
    assert reply.type == "claw.v1.api.task_list"  # type: ignore[attr-defined]
    await nc.close()


async def test_group_a_cannot_see_take_or_complete_group_b_tasks_on_rest_and_ws(
    hub_server: HubProcess,
) -> None:
    beta = hub_server.hubs["beta"]
    beta.board.submit([TaskSpec(id="beta-job", title="beta", skills={"x": 0.1}, input="secret")])
    token_a, _ = await hub_server.create_token("alpha", "agent", "spy-ws")
    admin_a = hub_server.admin_tokens["alpha"]
    async with httpx.AsyncClient(base_url=str(hub_server.gateway_url)) as http:
        # REST: the token's group decides; beta's task does not exist for alpha
        r = await http.get("/v1/tasks/beta-job", headers=auth(admin_a))
        assert r.status_code == 404 and r.json()["code"] == "unknown_task"
        listed = (await http.get("/v1/tasks", headers=auth(admin_a))).json()["tasks"]
        assert all(t["id"] != "beta-job" for t in listed)
        cancel = await http.post(
            "/v1/api/cancel", json={"task_id": "beta-job"}, headers=auth(admin_a)
        )
        assert cancel.status_code == 404
        events = (await http.get("/v1/events", headers=auth(admin_a))).json()["events"]
        assert all(e.get("task_id") != "beta-job" for e in events)
    # WebSocket: alpha's agent registers (in alpha), never hears of beta's task
    agent = RawWsAgent(str(hub_server.ws_url), token_a, "spy-ws", {"x": 1.0})
    await agent.connect()
    assert (await agent.register())["type"] == "claw.v1.agent.registered"
    ack = await agent.call(
        {
            "type": "claw.v1.task.result",
            "task_id": "beta-job",
            "attempt": 1,
            "agent_id": "spy-ws",
            "session": agent.session,
            "output": "stolen",
        }
    )
    assert ack["type"] == "claw.v1.error" and ack["code"] == "unknown_task"
    assert agent.offers.empty()
    # nor may it pose as another participant
    other = await agent.call(
        {
            "type": "claw.v1.agent.register",
            "profile": {"id": "someone", "name": "x"},
            "session": "s2",
        }
    )
    assert other["type"] == "claw.v1.error" and other["code"] == "forbidden"
    await agent.close()
    assert beta.board.tasks["beta-job"].state is TaskState.READY
    assert beta.board.tasks["beta-job"].output is None
    assert "spy-ws" not in beta.board.agents
    # the event stream of alpha carries nothing of beta
    ws_url = str(hub_server.gateway_url).replace("http", "ws", 1)
    async with websockets.connect(f"{ws_url}/v1/ws/events?token={admin_a}&after=0") as ws:
        beta.board.submit([TaskSpec(id="beta-late", title="late", skills={"x": 0.1})])
        hub_server.hubs["alpha"].board.submit([TaskSpec(id="alpha-late", title="late")])
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 5))["message"]
            assert not (event.get("task_id") or "").startswith("beta")
            if event.get("task_id") == "alpha-late":
                break


async def test_only_humans_and_admins_approve_reassign_and_cancel(hub_server: HubProcess) -> None:
    hub = hub_server.hubs["alpha"]
    [task_id] = hub.board.submit([TaskSpec(title="keep", skills={"rare": 1.0})])
    agent_token, _ = await hub_server.create_token("alpha", "agent", "worker")
    human_token, _ = await hub_server.create_token("alpha", "human")
    async with httpx.AsyncClient(base_url=str(hub_server.gateway_url)) as http:
        r = await http.post("/v1/api/cancel", json={"task_id": task_id}, headers=auth(agent_token))
        assert r.status_code == 403 and r.json()["code"] == "forbidden"
        assert hub.board.tasks[task_id].state is TaskState.READY
        r = await http.post("/v1/api/cancel", json={"task_id": task_id}, headers=auth(human_token))
        assert r.status_code == 200 and r.json()["state"] == "cancelled"
    # on NATS the agent's user may not even publish on the human verbs
    errors: list[Exception] = []
    nc = await nats_as(hub_server, agent_token, errors)
    with pytest.raises(nats.errors.TimeoutError):
        await nc.request(
            subjects.api("alpha", subjects.sender_for(agent_token), subjects.API_CANCEL),
            encode(CancelTask(task_id=task_id)),
            timeout=0.5,
        )
    await until(lambda: any("ermissions" in str(e) for e in errors))
    await nc.close()


async def test_a_flood_is_rate_limited_without_hurting_another_group(
    hub_server: HubProcess,
) -> None:
    flooder, _ = await hub_server.create_token("alpha", "human")
    token_b, _ = await hub_server.create_token("beta", "agent", "beta-worker")
    worker = Agent("beta-worker", id="beta-worker", group="beta", skills={"x": 1.0})

    @worker.handler
    def work(ctx: TaskContext) -> object:
        return "done in beta"

    await worker.start(hub_server.url, token=token_b)
    admin_b = hub_server.admin_tokens["beta"]
    body = {"tasks": [{"title": "spam", "skills": {"nobody": 1.0}}]}
    try:
        async with httpx.AsyncClient(base_url=str(hub_server.gateway_url)) as http:
            flood = [
                http.post("/v1/api/submit", json=body, headers=auth(flooder)) for _ in range(120)
            ]
            beta_submit = http.post(
                "/v1/api/submit",
                json={"tasks": [{"id": "b-ok", "title": "b", "skills": {"x": 0.5}}]},
                headers=auth(admin_b),
            )
            loop = asyncio.get_running_loop()
            began = loop.time()
            *answers, b_answer = await asyncio.gather(*flood, beta_submit)
            elapsed = loop.time() - began
            codes = [a.status_code for a in answers]
            settings = hub_server.settings
            # the burst, plus what refilled while the flood lasted (however slow the machine)
            assert codes.count(200) <= settings.submit_burst + settings.submit_rate * elapsed + 1
            assert codes.count(200) + codes.count(429) == len(codes)
            assert codes.count(429) >= 60
            limited = next(a for a in answers if a.status_code == 429)
            assert limited.json()["code"] == "rate_limited"
            assert b_answer.status_code == 200
        beta = hub_server.hubs["beta"]
        await until(lambda: beta.board.tasks["b-ok"].state is TaskState.DONE)
        alpha = hub_server.hubs["alpha"]
        assert len(alpha.board.tasks) == codes.count(200)
        refused = await alpha.handle("api.events", _events("message.refused"))
        rate = [e for e in refused.events if e.data.get("code") == "rate_limited"]  # type: ignore[attr-defined]
        assert 1 <= len(rate) < 10  # recorded once per flood, not once per message
    finally:
        await worker.stop()


def _events(kind: str) -> Any:
    from protocols import ListEvents

    return ListEvents(kind=kind)


async def test_hub_client_needs_a_token_under_auth(hub_server: HubProcess) -> None:
    with pytest.raises(HubUnavailable):
        async with HubClient(hub_server.url, group="alpha", timeout=2):
            pass
    token, _ = await hub_server.create_token("alpha", "human", note="sdk client")
    async with HubClient(hub_server.url, group="alpha", token=token) as client:
        task_id = await client.submit_task("from the SDK client", skills={"nobody": 1.0})
        assert (await client.task(task_id)).state is TaskState.READY
        status = await client.cancel(task_id, "a human may")
        assert status.state is TaskState.CANCELLED
    assert task_id not in hub_server.hubs["beta"].board.tasks


def test_a_token_made_in_another_process_is_valid_before_the_next_refresh(
    sqlite_store: Store,
) -> None:
    """The hub's cached table misses a token ``clawhub token create`` just stored: the miss
    reads the store, so an agent started with it is not refused for a refresh period; a
    revoked one stays refused; past ``MISS_LOOKUPS`` misses a second the cache answers."""
    hub_view = Tokens(sqlite_store)
    cli_view = Tokens(sqlite_store)  # another process's view of the same store
    token, row = cli_view.create("alpha", "agent", "fresh")
    who = hub_view.verify(token)
    assert (who.token_id, who.agent_id, who.role) == (row.id, "fresh", "agent")
    assert [u.name for u in hub_view.nats_users()] == [row.id]  # NATS gets it at the next sync
    # a sender a cluster node already lets in (its config reloaded) is known by its id alone
    _, node_row = cli_view.create("alpha", "agent", "on-node")
    sender = hub_view.principal(node_row.id)
    assert sender is not None and (sender.agent_id, sender.role) == ("on-node", "agent")

    revoked, revoked_row = cli_view.create("alpha", "human")
    assert cli_view.revoke(revoked_row.id)
    with pytest.raises(TokenError, match="unknown or revoked"):
        hub_view.verify(revoked)

    flood = Tokens(sqlite_store)
    for _ in range(MISS_LOOKUPS):
        with pytest.raises(TokenError):
            flood.verify("tk-000000000000." + "x" * 32)
    late, _ = cli_view.create("alpha", "human")
    with pytest.raises(TokenError):  # this second's lookups are spent
        flood.verify(late)
    flood.refresh()
    assert flood.verify(late).role == "human"


async def test_restarts_hand_out_one_local_admin_token(tmp_path: Path, sqlite_store: Store) -> None:
    """``hub.json`` goes when the hub stops; the next start hands out the same admin token
    (kept in ``local-tokens.json``), so restarts leave one live local admin token, not one
    each; a revoked one is replaced."""
    settings = server_settings(tmp_path / "server")

    async def start_stop() -> str:
        server = HubProcess(settings, ["alpha"], store=sqlite_store)
        await server.start()
        try:
            token = server.admin_tokens["alpha"]
        finally:
            await server.stop()
        assert not (settings.data_dir / "hub.json").exists()
        return token

    def live_admins() -> list[str]:
        return [
            r.id
            for r in Tokens(sqlite_store).rows("alpha")
            if r.role == "admin" and r.revoked_at is None
        ]

    first = await start_stop()
    assert await start_stop() == first
    assert live_admins() == [first.split(".")[0]]
    assert (settings.data_dir / "local-tokens.json").stat().st_mode & 0o077 == 0
    assert Tokens(sqlite_store).revoke(first.split(".")[0])
    third = await start_stop()
    assert third != first and live_admins() == [third.split(".")[0]]
