"""Hard edges on bad input, on every path: NATS against a real hub (``hub``), REST and
WebSocket against a real ``HubProcess`` with auth (``hub_server``). Each bad input gets its
code, is recorded as ``message.refused``, and the hub keeps serving and loses nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets
from conftest import until
from nats.aio.client import Client as NATS
from test_bad_input import ask_error, list_tasks, refusal, refusals, spec, submit
from test_gateway import auth

from clawhub.gateway import HubProcess
from clawhub.runtime import Hub
from protocols import (
    MAX_DEPTH,
    MAX_INT,
    ErrorCode,
    EventList,
    ListEvents,
    ProtocolError,
    SubmitTasks,
    TaskSpec,
    decode,
    encode,
    subjects,
)
from protocols.schema import message_schemas

GROUP = "default"
SUBMIT = subjects.api(GROUP, subjects.ANON_SENDER, subjects.API_SUBMIT)
EVENTS = subjects.api(GROUP, subjects.ANON_SENDER, subjects.API_EVENTS)
REGISTER = subjects.hub_register(GROUP, subjects.ANON_SENDER)
HUGE = 10**25  # the issue's `after` ≈ 1e25: far outside a 64-bit integer


def nested(depth: int) -> str:
    """JSON arrays nested ``depth`` deep (2 bytes a level)."""
    return "[" * depth + "]" * depth


def deep_submit(below: int) -> bytes:
    """A submit nested ``below`` levels below the message object (its tasks list is one,
    the task object two, then arrays in the task's input)."""
    inner = nested(below - 2)
    return (
        '{"type":"claw.v1.api.submit","tasks":[{"title":"deep","input":' + inner + "}]}"
    ).encode()


def refused_codes(hub: Hub, before: int = 0) -> list[str]:
    return [json.loads(e.data)["code"] for e in refusals(hub)[before:]]


# ---------------------------------------------------------------- the codec


def test_depth_limit_is_exact_on_both_decode_paths() -> None:
    """MAX_DEPTH levels decode on the fast path and on the checked one; one more is
    malformed on both, and 100,000 levels are answered, not a RecursionError."""
    from protocols.codec import _fast

    # the fast path (pydantic's parser) stops exactly where MAX_DEPTH does: if pydantic
    # changes its limit, this says so
    assert _fast(SubmitTasks, deep_submit(MAX_DEPTH)) is not None
    assert _fast(SubmitTasks, deep_submit(MAX_DEPTH + 1)) is None
    ok = decode(deep_submit(MAX_DEPTH), SubmitTasks)
    assert ok.tasks[0].title == "deep"

    def escaped(below: int) -> bytes:  # an escape sends it down the checked path
        return deep_submit(below).replace(b'"deep"', b'"d\\u0065ep"')

    assert decode(escaped(MAX_DEPTH), SubmitTasks).tasks[0].title == "deep"
    for payload in (deep_submit(MAX_DEPTH + 1), escaped(MAX_DEPTH + 1), deep_submit(100_000)):
        with pytest.raises(ProtocolError) as info:
            decode(payload, SubmitTasks)
        assert info.value.code is ErrorCode.MALFORMED, payload[:80]
    # brackets inside strings are text, not depth
    text = json.dumps({"type": "claw.v1.api.submit", "tasks": [{"title": "[{" * 150}]})
    assert decode(text.encode(), SubmitTasks).tasks[0].title == "[{" * 150


def test_integer_range_is_checked_at_decoding() -> None:
    top = json.dumps({"type": "claw.v1.api.list_events", "after": MAX_INT}).encode()
    assert decode(top, ListEvents).after == MAX_INT
    for value in (HUGE, MAX_INT + 1):
        data = json.dumps({"type": "claw.v1.api.list_events", "after": value}).encode()
        with pytest.raises(ProtocolError) as info:
            decode(data, ListEvents)
        assert info.value.code is ErrorCode.INVALID
    free_form = encode(SubmitTasks(tasks=[TaskSpec(title="x", input={"n": -(2**70)})]))
    with pytest.raises(ProtocolError) as info:
        decode(free_form, SubmitTasks)
    assert info.value.code is ErrorCode.INVALID
    digits = encode(SubmitTasks(tasks=[TaskSpec(title="x", input="12345678901234567890123")]))
    assert decode(digits, SubmitTasks).tasks[0].input == "12345678901234567890123"
    # a number Python will not even convert (over 4300 digits): invalid, not internal
    endless = b'{"type":"claw.v1.api.submit","tasks":[{"title":"x","input":' + b"9" * 5000 + b"}]}"
    with pytest.raises(ProtocolError) as info:
        decode(endless, SubmitTasks)
    assert info.value.code is ErrorCode.INVALID


def test_list_events_bounds_are_in_the_json_schema() -> None:
    props = message_schemas()["claw.v1.api.list_events.json"]["properties"]
    assert (props["after"]["minimum"], props["after"]["maximum"]) == (0, MAX_INT)
    assert (props["limit"]["minimum"], props["limit"]["maximum"]) == (1, 10_000)


# ---------------------------------------------------------------- NATS


async def test_deep_json_is_answered_malformed_on_nats(hub: Hub, nc: NATS) -> None:
    (kept,) = await submit(nc, spec("kept", skills={"python": 0.5}))
    for subject in (SUBMIT, REGISTER):
        before = len(refusals(hub))
        payload = deep_submit(1000)
        assert len(payload) < 2100  # the 2 KB
        reply = await ask_error(nc, subject, payload)
        assert reply.code is ErrorCode.MALFORMED
        assert str(MAX_DEPTH) in reply.message
        await refusal(hub, subject, ErrorCode.MALFORMED, before)
    assert list(await list_tasks(nc)) == [kept]  # nothing added, nothing lost
    (more,) = await submit(nc, spec("more"))  # still serving
    assert set(await list_tasks(nc)) == {kept, more}


async def test_huge_integer_is_invalid_on_nats(hub: Hub, nc: NATS) -> None:
    (kept,) = await submit(nc, spec("kept"))
    before = len(refusals(hub))
    data = json.dumps({"type": "claw.v1.api.list_events", "after": HUGE}).encode()
    reply = await ask_error(nc, EVENTS, data)
    assert reply.code is ErrorCode.INVALID
    await refusal(hub, EVENTS, ErrorCode.INVALID, before)
    # a follow-up read works and the task is there
    msg = await nc.request(EVENTS, encode(ListEvents(task_id=kept)), timeout=5)
    events = decode(msg.data, EventList)
    assert events.events and events.events[0].task_id == kept


# ---------------------------------------------------------------- REST


async def test_rest_refuses_bad_bodies_with_claw_errors(hub_server: HubProcess) -> None:
    hub = hub_server.hubs["alpha"]
    admin = hub_server.admin_tokens["alpha"]
    limit = hub.settings.max_message_bytes
    headers = {**auth(admin), "content-type": "application/json"}
    cases: list[tuple[str, bytes, int, str]] = [
        ("deep", deep_submit(1000), 400, "malformed"),
        ("not json", b"{not json", 400, "malformed"),
        ("array", b"[]", 400, "malformed"),
        (
            "huge int",
            json.dumps({"tasks": [{"title": "x", "input": HUGE}]}).encode(),
            422,
            "invalid",
        ),
        ("nul", json.dumps({"tasks": [{"title": "a\u0000b"}]}).encode(), 422, "invalid"),
        ("schema", b"{}", 422, "invalid"),
        ("other type", b'{"type":"claw.v1.api.list_tasks"}', 400, "unknown_type"),
        (
            "oversize",
            json.dumps({"tasks": [{"title": "x" * (limit + 10)}]}).encode(),
            413,
            "oversize",
        ),
    ]
    async with httpx.AsyncClient(base_url=str(hub_server.gateway_url)) as http:
        r = await http.post(
            "/v1/api/submit", json={"tasks": [{"id": "kept", "title": "k"}]}, headers=auth(admin)
        )
        assert r.status_code == 200, r.text
        before = len(refusals(hub))
        for name, body, status, code in cases:
            r = await http.post("/v1/api/submit", content=body, headers=headers)
            assert (r.status_code, r.json()["type"], r.json()["code"]) == (
                status,
                "claw.v1.error",
                code,
            ), (name, r.text[:300])
        events = await http.post("/v1/api/events", json={"after": HUGE}, headers=auth(admin))
        assert events.status_code == 422 and events.json()["code"] == "invalid", events.text
        await hub.durable()
        assert sorted(refused_codes(hub, before)) == sorted([c[3] for c in cases] + ["invalid"])

        # a body that is too large without a Content-Length (chunked) is cut off too
        async def chunks() -> Any:
            for _ in range(limit // 65536 + 2):
                yield b"x" * 65536

        chunked = await http.post("/v1/api/submit", content=chunks(), headers=headers)
        assert chunked.status_code == 413 and chunked.json()["code"] == "oversize"
        # the hub kept serving and lost nothing
        tasks = (await http.get("/v1/tasks", headers=auth(admin))).json()["tasks"]
        assert [t["id"] for t in tasks] == ["kept"]


async def test_rest_queries_paths_and_unknown_routes_answer_claw_errors(
    hub_server: HubProcess,
) -> None:
    admin = hub_server.admin_tokens["alpha"]
    async with httpx.AsyncClient(base_url=str(hub_server.gateway_url)) as http:
        for path, params, status, code in (
            ("/v1/events", {"after": str(HUGE)}, 422, "invalid"),  # was a 500 (OverflowError)
            ("/v1/events", {"after": "-1"}, 422, "invalid"),
            ("/v1/events/stream", {"after": str(HUGE)}, 422, "invalid"),
            ("/v1/tasks/a.b", {}, 422, "invalid"),  # path ids have the identifier pattern
            ("/v1/goals/" + "x" * 65, {}, 422, "invalid"),
            ("/v1/nowhere", {}, 404, "unknown_type"),
        ):
            r = await http.get(path, params=params, headers=auth(admin))
            body = r.json()
            assert (r.status_code, body["type"], body["code"]) == (status, "claw.v1.error", code), (
                path,
                r.text,
            )
        wrong_method = await http.delete("/v1/tasks", headers=auth(admin))
        assert wrong_method.status_code == 405 and wrong_method.json()["type"] == "claw.v1.error"
        ok = await http.get("/v1/events", params={"after": str(MAX_INT)}, headers=auth(admin))
        assert ok.status_code == 200 and ok.json()["events"] == []


def test_openapi_documents_errors_patterns_and_bounds(hub_server: HubProcess) -> None:
    gw = hub_server.gateway
    assert gw is not None
    from clawhub.gateway.app import create_app

    spec = create_app(gw).openapi()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    submit_op = spec["paths"]["/v1/api/submit"]["post"]
    for status in ("400", "401", "403", "404", "409", "413", "422", "429", "500"):
        ref = submit_op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorReply"), (status, ref)
    task_op = spec["paths"]["/v1/tasks/{task_id}"]["get"]
    (path_id,) = [p for p in task_op["parameters"] if p["in"] == "path"]
    assert path_id["schema"]["pattern"].startswith("^[A-Za-z0-9]")
    events = {p["name"]: p["schema"] for p in spec["paths"]["/v1/events"]["get"]["parameters"]}
    assert (events["after"]["minimum"], events["after"]["maximum"]) == (0, MAX_INT)
    assert events["limit"]["maximum"] == 10_000
    assert "pattern" in events["task_id"]["anyOf"][0]


# ---------------------------------------------------------------- WebSocket


async def recv(ws: Any) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
    return frame


async def test_ws_bad_frames_are_answered_with_their_id(hub_server: HubProcess) -> None:
    token, _ = await hub_server.create_token("alpha", "agent", "edgy")
    hub = hub_server.hubs["alpha"]
    deep_message = json.loads(deep_submit(50))  # fine inside; the frame adds its levels
    deep_frame = (
        '{"type":"claw.v1.ws.request","id":"deep","message":' + deep_submit(1000).decode() + "}"
    )
    await hub.durable()
    before = len(refusals(hub))
    async with websockets.connect(f"{hub_server.ws_url}?token={token}") as ws:
        cases: list[tuple[str | bytes, str | None, str]] = [
            (deep_frame, "deep", "malformed"),  # was: the socket dropped with no close frame
            (
                json.dumps(
                    {
                        "type": "claw.v1.ws.request",
                        "id": "big",
                        "message": {"type": "claw.v1.api.list_events", "after": HUGE},
                    }
                ),
                "big",
                "invalid",
            ),
            (
                json.dumps({"type": "claw.v1.ws.request", "id": "e1", "message": "x"}),
                "e1",
                "invalid",
            ),
            (json.dumps({"type": "claw.v1.ws.nope", "id": "e2"}), "e2", "unknown_type"),
            (b'{"type":"claw.v1.ws.request","id":"bin","message":{}}', None, "malformed"),
            ("not json", None, "malformed"),
        ]
        for frame, frame_id, code in cases:
            await ws.send(frame)
            reply = await recv(ws)
            assert reply["type"] == "claw.v1.ws.response", reply
            assert (reply["id"], reply["message"]["type"], reply["message"]["code"]) == (
                frame_id,
                "claw.v1.error",
                code,
            ), (frame if isinstance(frame, bytes) else frame[:80], reply)
        # the socket still serves: a normal request with a deep-but-allowed message
        await ws.send(
            json.dumps({"type": "claw.v1.ws.request", "id": "ok", "message": deep_message})
        )
        reply = await recv(ws)
        assert reply["id"] == "ok" and reply["message"]["type"] == "claw.v1.api.submitted", reply
    await hub.durable()
    assert sorted(refused_codes(hub, before)) == sorted(c[2] for c in cases)
    assert [t.spec.title for t in hub.board.tasks.values()] == ["deep"]


async def test_ws_answers_to_unknown_or_other_offers_are_refused(hub_server: HubProcess) -> None:
    from ws_agent import RawWsAgent

    token, _ = await hub_server.create_token("alpha", "agent", "answerer")
    hub = hub_server.hubs["alpha"]
    agent = RawWsAgent(str(hub_server.ws_url), token, "answerer", {"python": 0.9})
    await agent.connect()
    try:
        assert (await agent.register())["type"] == "claw.v1.agent.registered"

        async def answer(offer_id: str, **fields: Any) -> None:
            message = {"type": "claw.v1.task.accept", **fields}
            await agent.ws.send(
                json.dumps({"type": "claw.v1.ws.answer", "id": offer_id, "message": message})
            )

        await answer("o999", task_id="t", attempt=1, agent_id="answerer")
        await until(lambda: len(agent.errors) == 1)
        assert agent.errors[0]["code"] == "conflict"  # not silence

        admin = hub_server.admin_tokens["alpha"]
        async with httpx.AsyncClient(base_url=str(hub_server.gateway_url)) as http:
            body = {"tasks": [{"id": "job", "title": "job", "skills": {"python": 0.5}}]}
            r = await http.post("/v1/api/submit", json=body, headers=auth(admin))
            assert r.status_code == 200, r.text
        offer = await asyncio.wait_for(agent.offers.get(), 5)
        attempt = offer["message"]["attempt"]
        wrong = [
            ({"task_id": "other", "attempt": attempt, "agent_id": "answerer"}, "conflict"),
            ({"task_id": "job", "attempt": attempt + 1, "agent_id": "answerer"}, "conflict"),
            ({"task_id": "job", "attempt": attempt, "agent_id": "someone"}, "forbidden"),
        ]
        for count, (fields, code) in enumerate(wrong, start=2):
            await answer(offer["id"], **fields)
            await until(lambda n=count: len(agent.errors) == n)
            assert agent.errors[-1]["code"] == code, agent.errors[-1]
        assert hub.board.tasks["job"].state.value == "assigned"  # none was taken as acceptance
        await answer(offer["id"], task_id="job", attempt=attempt, agent_id="answerer")
        await until(lambda: hub.board.tasks["job"].state.value == "running")
    finally:
        await agent.close()
    await hub.durable()
    codes = refused_codes(hub)
    assert codes.count("conflict") >= 3 and "forbidden" in codes
