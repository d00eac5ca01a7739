"""Who sent it: every message that acts for a participant is tied to the credential that sent
it, enforced by nats-server (a token may publish only under its own id) and the hub (the
message may act only as that credential's participant). Against real parts: an embedded
nats-server WITH authentication, two groups (alpha, beta) in one HubProcess, the gateway.

Each attack is refused with its code, recorded in the event log, and leaves the victim's
work as it was."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import httpx
import nats
import websockets
from conftest import until
from nats.aio.client import Client as NATS
from test_gateway import auth
from test_security import nats_as

from agents_sdk import Agent, TaskContext
from clawhub.gateway import HubProcess
from clawhub.runtime import Hub
from protocols import (
    AgentProfile,
    ClaimTask,
    Decline,
    ErrorCode,
    ErrorReply,
    Event,
    Heartbeat,
    ListEvents,
    PostChat,
    Progress,
    Register,
    RegisterAck,
    Result,
    TaskSpec,
    TaskState,
    Timeouts,
    decode_any,
    encode,
    subjects,
)


async def ask(nc: NATS, subject: str, message: Any) -> Any:
    """One request, its decoded reply."""
    return decode_any((await nc.request(subject, encode(message), timeout=5)).data)


class Refusals:
    """Every ``message.refused`` event a hub publishes (it appends each to its log too)."""

    def __init__(self, hub: Hub) -> None:
        self.seen: list[tuple[str, str]] = []
        hub.observers.append(self._observe)

    def _observe(self, event: Event) -> None:
        if event.kind == "message.refused":
            self.seen.append((str(event.data.get("code")), event.message))

    def of(self, code: ErrorCode) -> list[str]:
        """The messages of the refusals with ``code``."""
        return [m for c, m in self.seen if c == code.value]


def victim_agent(started: asyncio.Event, release: asyncio.Event) -> Agent:
    agent = Agent("victim", id="victim", group="alpha", skills={"slow": 0.9})

    @agent.handler
    async def slow(ctx: TaskContext) -> str:
        started.set()
        await release.wait()
        return "done by the victim"

    return agent


async def test_an_agent_token_registers_only_as_its_own_participant(
    hub_server: HubProcess,
) -> None:
    hub = hub_server.hubs["alpha"]
    refused = Refusals(hub)
    token, _ = await hub_server.create_token("alpha", "agent", "echo")
    sender = subjects.sender_for(token)
    nc = await nats_as(hub_server, token, [])
    try:
        squat = Register(profile=AgentProfile(id="real-agent", name="squatter"), session="s1")
        reply = await ask(nc, subjects.hub_register("alpha", sender), squat)
        assert isinstance(reply, ErrorReply) and reply.code is ErrorCode.FORBIDDEN
        assert "may act only as echo" in reply.message  # it says which id the token is for
        human = Register(
            profile=AgentProfile(id="echo", name="fake human", kind="human"), session="s2"
        )
        reply = await ask(nc, subjects.hub_register("alpha", sender), human)
        assert isinstance(reply, ErrorReply) and reply.code is ErrorCode.FORBIDDEN
        assert "real-agent" not in hub.board.agents
        assert "echo" not in hub.board.agents
        assert len(refused.of(ErrorCode.FORBIDDEN)) == 2
        # under its own id it joins
        own = Register(profile=AgentProfile(id="echo", name="echo"), session="s3")
        assert isinstance(await ask(nc, subjects.hub_register("alpha", sender), own), RegisterAck)
        assert hub.board.agents["echo"].credential == sender
    finally:
        await nc.close()


async def test_a_token_may_not_publish_under_another_senders_id(hub_server: HubProcess) -> None:
    """nats-server itself refuses: the sender in the subject is the credential's own."""
    token, _ = await hub_server.create_token("alpha", "agent", "mallory")
    victim, _ = await hub_server.create_token("alpha", "agent", "victim")
    errors: list[Exception] = []
    nc = await nats_as(hub_server, token, errors)
    try:
        forged = subjects.hub_register("alpha", subjects.sender_for(victim))
        message = Register(profile=AgentProfile(id="victim", name="v"), session="s1")
        with contextlib.suppress(nats.errors.TimeoutError, nats.errors.NoRespondersError):
            await nc.request(forged, encode(message), timeout=0.5)
        await until(lambda: any("ermissions" in str(e) for e in errors))
        assert "victim" not in hub_server.hubs["alpha"].board.agents
    finally:
        await nc.close()


async def test_forged_progress_results_claims_and_chat_for_another_participant_are_refused(
    hub_server: HubProcess,
) -> None:
    hub = hub_server.hubs["alpha"]
    refused = Refusals(hub)
    victim_token, _ = await hub_server.create_token("alpha", "agent", "victim")
    mallory_token, _ = await hub_server.create_token("alpha", "agent", "mallory")
    started, release = asyncio.Event(), asyncio.Event()
    agent = victim_agent(started, release)
    await agent.start(hub_server.url, token=victim_token)
    nc = await nats_as(hub_server, mallory_token, [])
    mallory = subjects.sender_for(mallory_token)
    try:
        [task_id] = hub.board.submit(
            [
                TaskSpec(
                    id="slow-1",
                    title="slow",
                    skills={"slow": 0.5},
                    timeouts=Timeouts(stall=1.5),
                    max_attempts=1,
                )
            ]
        )
        await asyncio.wait_for(started.wait(), 10)
        rec = hub.board.tasks[task_id]
        attempt, session = rec.attempt, agent.session  # what an insider could know
        assert rec.pushed  # the SDK agent on NATS takes credit
        # forged progress would keep a hung attempt from being judged stalled
        forged = Progress(
            task_id=task_id,
            attempt=attempt,
            agent_id="victim",
            message="all fine",
            ts=time.time(),
        )
        for _ in range(5):
            await nc.publish(subjects.hub_progress("alpha", mallory), encode(forged))
            await nc.publish(
                subjects.hub_heartbeat("alpha", mallory),
                encode(Heartbeat(agent_id="victim", session=session, ts=time.time())),
            )
            # a forged decline would give the victim's pushed attempt (credit) back
            decline = Decline(task_id=task_id, attempt=attempt, agent_id="victim")
            await nc.publish(subjects.hub_decline("alpha", mallory), encode(decline))
        await nc.flush()
        result = Result(
            task_id=task_id, attempt=attempt, agent_id="victim", session=session, output="forged"
        )
        reply = await ask(nc, subjects.hub_result("alpha", mallory), result)
        assert isinstance(reply, ErrorReply) and reply.code is ErrorCode.FORBIDDEN
        claim = await ask(
            nc,
            subjects.api("alpha", mallory, subjects.API_CLAIM),
            ClaimTask(task_id=task_id, agent_id="victim"),
        )
        assert isinstance(claim, ErrorReply) and claim.code is ErrorCode.FORBIDDEN
        chat = await ask(
            nc,
            subjects.api("alpha", mallory, subjects.API_CHAT),
            PostChat(sender="victim", text="I quit"),
        )
        assert isinstance(chat, ErrorReply) and chat.code is ErrorCode.FORBIDDEN
        own = await ask(
            nc,
            subjects.api("alpha", mallory, subjects.API_CHAT),
            PostChat(sender="mallory", text="hello"),
        )
        assert not isinstance(own, ErrorReply)
        # the forgeries changed nothing: the hung attempt is judged stalled on time
        await until(lambda: rec.state is TaskState.FAILED, timeout=15)
        assert rec.history[-1].outcome == "stalled"
        assert rec.output is None
        assert rec.attempt == attempt and rec.history[-1].agent_id == "victim"
        assert len(refused.of(ErrorCode.FORBIDDEN)) >= 5 + 5 + 5 + 3
    finally:
        release.set()
        await nc.close()
        await agent.stop()


async def test_a_connection_named_for_another_agent_cannot_get_it_marked_lost(
    hub_server: HubProcess,
) -> None:
    """The disconnect advisory is matched to the credential that registered, never to a
    name another user can choose (here a user of another group)."""
    alpha = hub_server.hubs["alpha"]
    refused = Refusals(alpha)
    victim_token, _ = await hub_server.create_token("alpha", "agent", "victim")
    beta_token, _ = await hub_server.create_token("beta", "agent", "outsider")
    started, release = asyncio.Event(), asyncio.Event()
    agent = victim_agent(started, release)
    await agent.start(hub_server.url, token=victim_token)
    try:
        name = subjects.agent_connection_name("victim", agent.session)
        forger = await nats.connect(
            hub_server.url,
            user=subjects.sender_for(beta_token),
            password=beta_token.split(".", 1)[1],
            inbox_prefix=subjects.inbox_prefix(subjects.sender_for(beta_token)),
            name=name,
            allow_reconnect=False,
        )
        await forger.close()
        await until(lambda: any("ignored the close" in m for m in refused.of(ErrorCode.FORBIDDEN)))
        assert alpha.board.agents["victim"].state == "online"
        # the victim's own connection closing is still noticed at once
        assert agent._link.bus is not None
        await agent._link.bus.close()
        await until(lambda: alpha.board.agents["victim"].state == "lost", timeout=3)
    finally:
        release.set()
        await agent.stop()


async def test_a_human_token_speaks_and_decides_only_as_its_human(
    hub_server: HubProcess,
) -> None:
    hub = hub_server.hubs["alpha"]
    token, _ = await hub_server.create_token("alpha", "human", "ann")
    base = str(hub_server.gateway_url)
    async with httpx.AsyncClient(base_url=base) as http:
        r = await http.post(
            "/v1/api/chat", json={"sender": "bob", "text": "hi"}, headers=auth(token)
        )
        assert r.status_code == 403 and r.json()["code"] == "forbidden"
        r = await http.post(
            "/v1/api/chat", json={"sender": "ann", "text": "hi"}, headers=auth(token)
        )
        assert r.status_code == 200
        [task_id] = hub.board.submit([TaskSpec(title="t", skills={"x": 0.1})])
        r = await http.post(
            "/v1/api/cancel", json={"task_id": task_id, "by": "bob"}, headers=auth(token)
        )
        assert r.status_code == 403 and hub.board.tasks[task_id].state is TaskState.READY
        r = await http.post("/v1/api/cancel", json={"task_id": task_id}, headers=auth(token))
        assert r.status_code == 200 and "(by ann)" in (hub.board.tasks[task_id].error or "")
    ws_url = str(hub_server.ws_url)
    async with websockets.connect(f"{ws_url}?token={token}") as ws:
        chat_as_bob = {"type": "claw.v1.api.chat", "sender": "bob", "text": "hi"}
        frame = {"type": "claw.v1.ws.request", "id": "c1", "message": chat_as_bob}
        await ws.send(json.dumps(frame))
        answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert answer["id"] == "c1" and answer["message"]["code"] == "forbidden"
    chats = [e for e in await hub_events(hub, "chat.message")]
    assert [e["agent_id"] for e in chats] == ["ann"]


async def hub_events(hub: Hub, kind: str) -> list[dict[str, Any]]:
    reply = await hub.handle("api.events", ListEvents(kind=kind))
    return [e.model_dump(mode="json") for e in reply.events]  # type: ignore[union-attr]


async def test_a_person_who_goes_silent_is_away_not_lost(hub_server: HubProcess) -> None:
    hub = hub_server.hubs["alpha"]
    token, _ = await hub_server.create_token("alpha", "human", "ann")
    person = Agent("Ann", id="ann", kind="human", group="alpha", skills={"review": 0.9})
    await person.start(hub_server.url, token=token)
    try:
        record = hub.board.agents["ann"]
        before = record.reliability
        assert person._link.bus is not None
        await person._link.bus.close()  # the terminal was closed
        await until(lambda: record.state == "away", timeout=5)
        assert record.reliability == before
        kinds = [e["kind"] for e in await hub_events(hub, "agent.away")]
        assert kinds == ["agent.away"]
    finally:
        await person.stop()
