"""The gateway against real parts: a HubProcess (two groups, embedded nats-server with auth,
SQLite) and uvicorn on a free port; clients are httpx, raw ``websockets`` and the SDK."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets
from conftest import until
from ws_agent import RawWsAgent

from agents_sdk import Agent, TaskContext
from clawhub.gateway import HubProcess
from clawhub.gateway.ws import parse_frame
from protocols import API, Event, ProtocolError, TaskSpec, TaskState, subjects


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_raw_websocket_agent_completes_tasks(hub_server: HubProcess) -> None:
    token, _ = await hub_server.create_token("alpha", "agent", "raw-ws")
    hub = hub_server.hubs["alpha"]
    agent = RawWsAgent(str(hub_server.ws_url), token, "raw-ws", {"python": 0.9})
    await agent.connect()
    ack = await agent.register()
    assert ack["type"] == "claw.v1.agent.registered", ack
    progress: list[Event] = []
    hub.observers.append(lambda e: progress.append(e) if e.kind == "task.progress" else None)
    admin = hub_server.admin_tokens["alpha"]
    async with httpx.AsyncClient(base_url=str(hub_server.gateway_url)) as http:
        specs = [{"title": f"job {i}", "skills": {"python": 0.5}, "input": i} for i in range(3)]
        r = await http.post("/v1/api/submit", json={"tasks": specs}, headers=auth(admin))
        assert r.status_code == 200, r.text
        ids = r.json()["ids"]
        acks = [await agent.work_one({"n": i}) for i in range(3)]
        assert all(a["type"] == "claw.v1.task.result_ack" and a["accepted"] for a in acks), acks
        for task_id in ids:
            status = (await http.get(f"/v1/tasks/{task_id}", headers=auth(admin))).json()
            assert status["state"] == "done"
            assert status["history"][-1]["agent_id"] == "raw-ws"
    assert {e.task_id for e in progress if e.agent_id == "raw-ws"} == set(ids)
    assert hub.board.agents["raw-ws"].state == "online"
    # the socket closes: the participant is lost at once (not after missed beats)
    await agent.close()
    await until(lambda: hub.board.agents["raw-ws"].state == "lost")
    events = await hub.handle("api.events", _list_events(kind="agent.lost"))
    assert any("websocket" in e.message for e in events.events)  # type: ignore[attr-defined]


def _list_events(**kw: Any) -> Any:
    from protocols import ListEvents

    return ListEvents(**kw)


@pytest.mark.parametrize("transport", ["nats", "ws"])
async def test_sdk_agent_same_scenario_on_both_transports(
    hub_server: HubProcess, transport: str
) -> None:
    agent_id = f"sdk-{transport}"
    token, _ = await hub_server.create_token("alpha", "agent", agent_id)
    url = hub_server.url if transport == "nats" else str(hub_server.ws_url)
    agent = Agent(agent_id, id=agent_id, group="alpha", skills={"writing": 0.8})
    seen: list[str] = []

    @agent.handler
    async def write(ctx: TaskContext) -> object:
        await ctx.progress(0.5, "drafting")
        seen.append(ctx.task_id)
        return {"text": f"done {ctx.input}", "deps": ctx.dependency_outputs}

    await agent.start(url, token=token)
    try:
        hub = hub_server.hubs["alpha"]
        admin = hub_server.admin_tokens["alpha"]
        async with httpx.AsyncClient(base_url=str(hub_server.gateway_url)) as http:
            graph = [
                {"id": f"{transport}-a", "title": "a", "skills": {"writing": 0.5}, "input": 1},
                {
                    "id": f"{transport}-b",
                    "title": "b",
                    "skills": {"writing": 0.5},
                    "depends_on": [f"{transport}-a"],
                },
            ]
            r = await http.post("/v1/api/submit", json={"tasks": graph}, headers=auth(admin))
            assert r.status_code == 200, r.text
        await until(lambda: all(hub.board.tasks[t["id"]].state is TaskState.DONE for t in graph))
        assert seen == [f"{transport}-a", f"{transport}-b"]
        b = hub.board.tasks[f"{transport}-b"]
        assert b.output == {
            "text": "done None",
            "deps": {f"{transport}-a": {"text": "done 1", "deps": {}}},
        }
        assert hub.board.agents[agent_id].profile.sdk is not None
    finally:
        await agent.stop()
    await until(lambda: hub.board.agents[agent_id].state == "left")


async def test_rest_reads_health_and_metrics(hub_server: HubProcess) -> None:
    admin = hub_server.admin_tokens["alpha"]
    async with httpx.AsyncClient(base_url=str(hub_server.gateway_url)) as http:
        health = await http.get("/healthz")
        assert health.json() == {"status": "ok", "bus": True}
        r = await http.post(
            "/v1/api/submit",
            json={"tasks": [{"id": "m1", "title": "nobody can", "skills": {"rare": 1.0}}]},
            headers=auth(admin),
        )
        assert r.status_code == 200
        tasks = (await http.get("/v1/tasks", params={"state": "ready"}, headers=auth(admin))).json()
        assert [t["id"] for t in tasks["tasks"]] == ["m1"]
        agents = (await http.get("/v1/agents", headers=auth(admin))).json()
        assert agents["type"] == "claw.v1.api.agent_list"
        events = (
            await http.get("/v1/events", params={"task_id": "m1"}, headers=auth(admin))
        ).json()
        assert [(e["kind"], e["state"]) for e in events["events"]] == [("task.submitted", "ready")]
        missing = await http.get("/v1/tasks/nope", headers=auth(admin))
        assert missing.status_code == 404 and missing.json()["code"] == "unknown_task"
        bad = await http.post("/v1/api/submit", json={"tasks": []}, headers=auth(admin))
        assert bad.status_code == 422 and bad.json()["code"] == "invalid"
        text = (await http.get("/metrics", headers=auth(admin))).text
    assert 'clawhub_tasks{group="alpha",state="ready"} 1' in text
    assert 'clawhub_tasks_submitted_total{group="alpha"} 1' in text
    assert "clawhub_submit_to_done_seconds_bucket" in text
    assert 'group="beta"' not in text  # a group's metrics only


async def test_metrics_count_assignments_and_latency(hub_server: HubProcess) -> None:
    token, _ = await hub_server.create_token("alpha", "agent", "m-agent")
    agent = Agent("m", id="m-agent", group="alpha", skills={"x": 1.0})

    @agent.handler
    def work(ctx: TaskContext) -> object:
        return "ok"

    await agent.start(str(hub_server.ws_url), token=token)
    try:
        hub = hub_server.hubs["alpha"]
        [tid] = hub.board.submit([TaskSpec(title="t", skills={"x": 0.1})])
        await until(lambda: hub.board.tasks[tid].state is TaskState.DONE)
        metrics = hub_server.gateway.metrics["alpha"] if hub_server.gateway else None
        assert metrics is not None
        text = metrics.render()
        assert 'clawhub_assignments_total{group="alpha"} 1' in text
        assert 'clawhub_submit_to_done_seconds_count{group="alpha"} 1' in text
        assert 'clawhub_ws_agents{group="alpha"} 1' in text
    finally:
        await agent.stop()


async def test_event_stream_over_websocket_and_sse(hub_server: HubProcess) -> None:
    admin = hub_server.admin_tokens["alpha"]
    base = str(hub_server.gateway_url)
    ws_url = "ws" + base[4:] + f"/v1/ws/events?token={admin}&kinds=task.&after=0"
    hub = hub_server.hubs["alpha"]
    hub.board.submit([TaskSpec(id="before", title="stored before", skills={"z": 1.0})])
    async with websockets.connect(ws_url) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert first["type"] == "claw.v1.ws.push"
        assert first["message"]["task_id"] == "before"  # the stored ones come first
        hub.board.submit([TaskSpec(id="live", title="live", skills={"z": 1.0})])
        kinds = []
        while ("live", "task.submitted") not in kinds:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
            event = frame["message"]
            assert event["kind"].startswith("task.")
            kinds.append((event["task_id"], event["kind"]))
    async with (
        httpx.AsyncClient(base_url=base) as http,
        http.stream("GET", "/v1/events/stream", params={"after": 0}, headers=auth(admin)) as r,
    ):
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                assert json.loads(line[6:])["type"] == "claw.v1.event"
                break


async def test_bad_frames_are_answered_and_recorded(hub_server: HubProcess) -> None:
    token, _ = await hub_server.create_token("alpha", "agent", "bad-frames")
    hub = hub_server.hubs["alpha"]
    limit = hub.settings.max_message_bytes
    async with websockets.connect(f"{hub_server.ws_url}?token={token}") as ws:
        for frame in (
            "not json",
            json.dumps({"type": "claw.v1.nope"}),
            json.dumps(
                {"type": "claw.v1.ws.request", "id": "x", "message": {"type": "claw.v1.zzz"}}
            ),
            "x" * (limit + 5000),
        ):
            await ws.send(frame)
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert reply["type"] == "claw.v1.ws.response"
            assert reply["message"]["type"] == "claw.v1.error", reply
        # the socket still serves
        await ws.send(
            json.dumps(
                {
                    "type": "claw.v1.ws.request",
                    "id": "ok",
                    "message": {"type": "claw.v1.api.list_tasks"},
                }
            )
        )
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert reply["id"] == "ok" and reply["message"]["type"] == "claw.v1.api.task_list"
    codes = [
        r.data.get("code")
        for r in (await hub.handle("api.events", _list_events(kind="message.refused"))).events  # type: ignore[attr-defined]
    ]
    assert {"malformed", "unknown_type", "oversize"} <= set(codes)


def test_every_served_verb_has_a_typed_rest_route(hub_server: HubProcess) -> None:
    """New verbs in Hub.api_handlers appear in REST and OpenAPI with no gateway change."""
    gw = hub_server.gateway
    assert gw is not None
    from clawhub.gateway.app import create_app

    spec = create_app(gw).openapi()
    hub = hub_server.hubs["alpha"]
    verbs = [name[4:] for name in hub.routes if name.startswith("api.")]
    assert set(verbs) == set(API)  # every verb of the protocol is served
    for verb in verbs:
        operation = spec["paths"][f"/v1/api/{verb}"]["post"]
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/" + API[verb].request.__name__)
        assert subjects.api("alpha", subjects.ANON_SENDER, verb)  # a real verb of the protocol


def test_parse_frame_refuses_with_protocol_errors_only() -> None:
    assert parse_frame('{"type":"claw.v1.ws.request","message":{}}', 1000).id is None
    for bad in ("", "[]", '{"type":"claw.v1.ws.answer"}', "\ud800", b"\xff" * 3):
        with pytest.raises(ProtocolError):
            parse_frame(bad, 1000)
