"""The "write an agent in another language" page is true: its two worked sessions (raw JSON
over NATS and over the gateway's WebSocket) are replayed step by step, with raw nats-py and
raw ``websockets`` (no SDK, no pydantic), against a real hub with authentication; every
reply has the type and the fields the page shows; every JSON message on the page validates
against the committed schemas; its tables of error and close codes are complete; and the
AsyncAPI document carries what a third party needs to log in.

The page marks its steps with a bold label before a JSON block: ``**→ request** `SUBJECT` ``,
``**← reply**``, ``**→ publish** `SUBJECT` ``, ``**→ subscribe** `SUBJECT` ``, ``**← offer**
`SUBJECT` ``, ``**→ answer**``, ``**→ connect**`` (NATS); ``**→ open** `URL` ``,
``**→ frame**``, ``**← frame**``, ``**← close** `CODE` `` (WebSocket). The page's example
token, group and addresses are swapped for the real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import nats
import pytest
import websockets
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from clawhub.gateway import HubProcess
from clawhub.gateway import sockets as gateway_ws
from clawhub.gateway.replies import STATUS
from protocols import ErrorCode, asyncapi

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "other-languages.md"
SCHEMAS = ROOT / "protocols" / "schema"
WAIT = 10.0

# the page's example values
TOKEN = "tk-3f9a1c2b7d4e.q8dY0wLk3mZr9XvB2nT5pA7sHc1JfE6u"
TOKEN_ID, _, SECRET = TOKEN.partition(".")
GROUP = "acme"
AGENT = "rusty"
NATS_URL = "nats://127.0.0.1:4222"
WS_BASE = "ws://127.0.0.1:8765"

#: Fields whose value in a reply must be the page's (the rest must only be present).
STABLE = {"type", "id", "agent_id", "task_id", "attempt", "accepted", "state", "code", "ids"}

LABEL = re.compile(r"^\*\*(→|←) ([a-z]+)\*\*(?: `([^`]*)`)?\s*$")
SECTION = re.compile(r"^## (.*)$")


@dataclass
class Step:
    section: str
    line: int
    sent: bool
    """→: the client sends it; ←: the hub (or gateway) does."""
    verb: str
    arg: str | None
    body: Any


def steps(text: str) -> list[Step]:
    """Every labelled step of the page, with the JSON block right after its label."""
    lines = text.split("\n")
    found: list[Step] = []
    section = ""
    for i, line in enumerate(lines):
        head = SECTION.match(line)
        if head:
            section = head.group(1)
            continue
        label = LABEL.match(line)
        if not label:
            continue
        body = None
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        if j < len(lines) and lines[j].strip() == "```json":
            end = lines.index("```", j + 1)
            body = json.loads("\n".join(lines[j + 1 : end]))
        found.append(
            Step(section, i + 1, label.group(1) == "→", label.group(2), label.group(3), body)
        )
    return found


def json_blocks(text: str) -> list[tuple[int, Any]]:
    """Every ```json block of the page, parsed."""
    lines = text.split("\n")
    out = []
    for i, line in enumerate(lines):
        if line.strip() == "```json":
            end = lines.index("```", i + 1)
            out.append((i + 1, json.loads("\n".join(lines[i + 1 : end]))))
    return out


def page(token: str, url: str, ws_base: str, group: str = "alpha") -> str:
    """The page with its example token, group and addresses swapped for real ones."""
    text = PAGE.read_text()
    token_id, _, secret = token.partition(".")
    text = text.replace(TOKEN, token).replace(SECRET, secret).replace(TOKEN_ID, token_id)
    text = text.replace(NATS_URL, url).replace(WS_BASE, ws_base)
    return re.sub(rf"claw\.{GROUP}\.", f"claw.{group}.", text)


def session(text: str, name: str) -> list[Step]:
    return [s for s in steps(text) if s.section == name]


def validate(message: dict[str, Any]) -> None:
    """``message`` against the committed schema of its type (and an envelope's message)."""
    path = SCHEMAS / f"{message['type']}.json"
    assert path.is_file(), f"no schema for {message['type']}"
    jsonschema.Draft202012Validator(json.loads(path.read_text())).validate(message)
    if message["type"].startswith("claw.v1.ws.") and isinstance(message.get("message"), dict):
        validate(message["message"])


def check(expected: dict[str, Any], real: dict[str, Any], where: str) -> None:
    """``real`` has every field ``expected`` shows, with the same value where it is stable."""
    for key, want in expected.items():
        assert key in real, f"{where}: no {key!r} in {json.dumps(real)}"
        got = real[key]
        if isinstance(want, dict) and isinstance(got, dict):
            check(want, got, f"{where}.{key}")
        elif key in STABLE and not (key == "id" and expected.get("type") == "claw.v1.ws.offer"):
            assert got == want, f"{where}: {key} is {got!r}, the page says {want!r}"


# -- the page itself -------------------------------------------------------------------------

NATS_SECTION = "A session over NATS"
WS_SECTION = "A session over the WebSocket"


def test_the_page_has_both_sessions_and_every_message_validates() -> None:
    text = PAGE.read_text()
    verbs = {
        s.section: [x.verb for x in steps(text) if x.section == s.section] for s in steps(text)
    }
    assert verbs[NATS_SECTION][:3] == ["connect", "subscribe", "request"]
    assert {"offer", "answer", "publish", "reply"} <= set(verbs[NATS_SECTION])
    assert verbs[WS_SECTION][0] == "open" and "close" in verbs[WS_SECTION]
    shown: set[str] = set()
    for _, block in json_blocks(text):
        if isinstance(block, dict) and "type" in block:
            validate(block)
            shown.add(block["type"])
            inner = block.get("message")
            if block["type"].startswith("claw.v1.ws.") and isinstance(inner, dict):
                shown.add(inner["type"])
    for kind in (
        "claw.v1.agent.register",
        "claw.v1.agent.registered",
        "claw.v1.agent.heartbeat",
        "claw.v1.task.assigned",
        "claw.v1.task.assignments",
        "claw.v1.task.accept",
        "claw.v1.task.progress",
        "claw.v1.task.result",
        "claw.v1.task.result_ack",
        "claw.v1.task.results",
        "claw.v1.task.result_acks",
        "claw.v1.task.cancel",
        "claw.v1.agent.deregister",
        "claw.v1.error",
        "claw.v1.ws.request",
        "claw.v1.ws.response",
        "claw.v1.ws.offer",
        "claw.v1.ws.answer",
        "claw.v1.ws.push",
    ):
        assert kind in shown, f"the page shows no {kind}"


def test_the_page_names_every_error_code_with_its_http_status() -> None:
    text = PAGE.read_text()
    for code in ErrorCode:
        row = re.search(rf"^\| `{code.value}` \| (\d+) \|", text, re.M)
        assert row, f"error code {code.value} is not in the table"
        assert int(row.group(1)) == STATUS[code], code


def test_the_page_names_every_close_code() -> None:
    text = PAGE.read_text()
    codes = [v for k, v in vars(gateway_ws).items() if k.startswith("CLOSE_")]
    assert len(codes) >= 3
    for code in codes:
        assert re.search(rf"^\| {code} \|", text, re.M), f"close code {code} is not documented"


def test_asyncapi_says_how_to_log_in_and_where() -> None:
    doc = asyncapi()
    servers = doc["servers"]
    assert servers["nats"]["protocol"] == "nats" and servers["gateway"]["protocol"] == "ws"
    for server in servers.values():
        assert set(server["variables"]) == {"host", "port"}
        for ref in server["security"]:
            name = ref["$ref"].rsplit("/", 1)[1]
            assert name in doc["components"]["securitySchemes"]
    token = doc["components"]["securitySchemes"]["token"]
    assert token["type"] == "userPassword"
    assert "first dot" in token["description"]
    text = doc["info"]["description"]
    for rule in ("_INBOX.<token id>", "claw-agent:<agent id>:<session>", "claw.v1.error"):
        assert rule in text, rule
    assert "{sender}" in text and "anon" in text
    for key, chan in doc["channels"].items():
        if key.startswith("ws_"):
            assert chan["servers"] == [{"$ref": "#/servers/gateway"}]
        else:
            assert chan["servers"] == [{"$ref": "#/servers/nats"}], key
    for key, op in doc["operations"].items():
        if op["action"] == "receive" and "reply" in op and not key.startswith("ws_"):
            answers = [m["$ref"] for m in op["reply"]["messages"]]
            assert answers[-1].endswith("/claw_v1_error"), key


# -- the NATS session, replayed ----------------------------------------------------------------


class Beats:
    """Publishes the page's heartbeat every ``heartbeat_interval``, as the page says."""

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None

    def start(self, interval: float, send: Any, *args: Any) -> None:
        async def beat() -> None:
            while True:
                await asyncio.sleep(interval)
                await send(*args)

        self.task = asyncio.create_task(beat())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def test_the_nats_session_runs_as_the_page_shows(hub_server: HubProcess) -> None:
    token, _ = await hub_server.create_token("alpha", "agent", AGENT)
    text = page(token, hub_server.url, str(hub_server.ws_url).removesuffix("/v1/ws/agent"))
    script = session(text, NATS_SECTION)
    nc: NATS | None = None
    inbox: asyncio.Queue[Msg] = asyncio.Queue()
    errors: list[Exception] = []
    last: dict[str, Any] = {}
    offer: Msg | None = None
    interval = 1.0
    beats = Beats()

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    async def on_inbox(msg: Msg) -> None:
        await inbox.put(msg)

    try:
        for step in script:
            where = f"{PAGE.name}:{step.line} ({step.verb})"
            if step.verb == "connect":
                nc = await nats.connect(
                    **step.body, error_cb=on_error, allow_reconnect=False, connect_timeout=5
                )
                continue
            assert nc is not None, f"{where}: not connected yet"
            if step.sent and step.body is not None:
                validate(step.body)
            if step.verb == "subscribe":
                assert step.arg is not None
                await nc.subscribe(step.arg, cb=on_inbox)
                await nc.flush()
            elif step.verb == "request":
                assert step.arg is not None
                msg = await nc.request(step.arg, json.dumps(step.body).encode(), timeout=WAIT)
                last = json.loads(msg.data)
                validate(last)
                if last["type"] == "claw.v1.agent.registered":
                    interval = last["heartbeat_interval"]
            elif step.verb == "reply":
                check(step.body, last, where)
            elif step.verb == "publish":
                assert step.arg is not None
                subject, body = step.arg, json.dumps(step.body).encode()
                await nc.publish(subject, body)
                if step.body["type"] == "claw.v1.agent.heartbeat" and beats.task is None:
                    beats.start(interval, nc.publish, subject, body)
            elif step.verb == "offer":
                offer = await asyncio.wait_for(inbox.get(), WAIT)
                assert offer.subject == step.arg, where
                real = json.loads(offer.data)
                validate(real)
                check(step.body, real, where)
            elif step.verb == "answer":
                assert offer is not None, f"{where}: no offer to answer"
                await offer.respond(json.dumps(step.body).encode())
            else:
                pytest.fail(f"{where}: unknown step {step.verb!r}")
            if step.body is not None and step.body.get("type") == "claw.v1.agent.deregister":
                await beats.stop()
        hub = hub_server.hubs["alpha"]
        assert hub.board.tasks["add-2-3"].state.value == "done"
        assert hub.board.tasks["add-2-3"].output == {"sum": 5}
        assert hub.board.agents[AGENT].state == "left"
        assert not errors, errors
    finally:
        await beats.stop()
        if nc is not None:
            await nc.close()


# -- the WebSocket session, replayed -----------------------------------------------------------


class Frames:
    """The frames a socket received, matched to the page's by type and id (any order)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for data in self.ws:
                assert isinstance(data, str), "the gateway sends text frames"
                self.seen.append(json.loads(data))
                self.arrived.set()
        self.arrived.set()

    def _find(self, want: dict[str, Any]) -> dict[str, Any] | None:
        for frame in self.seen:
            if frame["type"] != want["type"]:
                continue
            if want["type"] == "claw.v1.ws.response" and frame.get("id") != want.get("id"):
                continue
            self.seen.remove(frame)
            return frame
        return None

    async def expect(self, want: dict[str, Any], where: str) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT
        while (frame := self._find(want)) is None:
            left = deadline - time.monotonic()
            assert left > 0 and not self.reader.done(), f"{where}: no {want} in {self.seen}"
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), left)
        return frame

    async def close(self) -> None:
        self.reader.cancel()
        await asyncio.gather(self.reader, return_exceptions=True)
        await self.ws.close()


async def test_the_websocket_session_runs_as_the_page_shows(hub_server: HubProcess) -> None:
    token, _ = await hub_server.create_token("alpha", "agent", AGENT)
    text = page(token, hub_server.url, str(hub_server.ws_url).removesuffix("/v1/ws/agent"))
    script = session(text, WS_SECTION)
    frames: Frames | None = None
    offer_id: str | None = None
    interval = 1.0
    beats = Beats()
    closed: list[int] = []
    try:
        for step in script:
            where = f"{PAGE.name}:{step.line} ({step.verb})"
            if step.verb == "open":
                if frames is not None:
                    await frames.close()
                assert step.arg is not None
                frames = Frames(await websockets.connect(step.arg))
                continue
            assert frames is not None, f"{where}: no socket yet"
            if step.sent and step.body is not None:
                validate(step.body)
            if step.verb == "close":
                await asyncio.wait_for(frames.reader, WAIT)
                code = frames.ws.close_code
                closed.append(code)
                assert str(code) == step.arg, f"{where}: closed with {code}"
                continue
            assert step.verb == "frame", f"{where}: unknown step {step.verb!r}"
            if not step.sent:
                real = await frames.expect(step.body, where)
                validate(real)
                check(step.body, real, where)
                if real["type"] == "claw.v1.ws.offer":
                    offer_id = real["id"]
                message = real.get("message", {})
                if message.get("type") == "claw.v1.agent.registered":
                    interval = message["heartbeat_interval"]
                continue
            frame = dict(step.body)
            if frame["type"] == "claw.v1.ws.answer":
                assert offer_id is not None, f"{where}: no offer to answer"
                frame["id"] = offer_id
            ws = frames.ws
            await ws.send(json.dumps(frame))
            kind = frame["message"]["type"]
            if kind == "claw.v1.agent.heartbeat" and beats.task is None:
                beats.start(interval, ws.send, json.dumps(frame))
            elif kind == "claw.v1.agent.deregister":
                await beats.stop()
        hub = hub_server.hubs["alpha"]
        assert hub.board.tasks["add-2-3"].state.value == "done"
        assert hub.board.agents[AGENT].state == "left"
        assert closed == [gateway_ws.CLOSE_UNAUTHORIZED]
    finally:
        await beats.stop()
        if frames is not None:
            await frames.close()


async def test_without_the_inbox_prefix_requests_just_time_out(hub_server: HubProcess) -> None:
    """What the page warns of: the library's default reply inboxes are not readable."""
    token, _ = await hub_server.create_token("alpha", "agent", AGENT)
    text = page(token, hub_server.url, str(hub_server.ws_url).removesuffix("/v1/ws/agent"))
    script = session(text, NATS_SECTION)
    options = dict(script[0].body)
    del options["inbox_prefix"]
    register = next(s for s in script if s.verb == "request")
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    nc = await nats.connect(**options, error_cb=on_error, allow_reconnect=False)
    try:
        with pytest.raises(nats.errors.TimeoutError):
            await nc.request(register.arg or "", json.dumps(register.body).encode(), timeout=1)
        assert any("permissions violation" in str(e).lower() for e in errors), errors
    finally:
        await nc.close()
