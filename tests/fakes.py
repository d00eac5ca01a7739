"""A participant made of raw nats-py subscriptions and protocol messages (no SDK), for
tests that need to send exactly the messages they mean, good or bad."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from pydantic import BaseModel

from protocols import (
    Accept,
    AgentProfile,
    Assignment,
    Assignments,
    Cancel,
    Decline,
    Heartbeat,
    Register,
    RegisterAck,
    Result,
    ResultAck,
    TaskRef,
    decode_any,
    encode,
    subjects,
)

GROUP = "default"
WAIT = 5.0


async def ask(nc: NATS, subject: str, data: bytes) -> BaseModel:
    msg = await nc.request(subject, data, timeout=WAIT)
    return decode_any(msg.data)


class FakeAgent:
    """A participant made of raw subscriptions: registers, heart-beats, accepts offers."""

    def __init__(
        self,
        nc: NATS,
        agent_id: str,
        skills: dict[str, float],
        *,
        declines: int = 0,
        group: str = GROUP,
        credit: bool = False,
        batches: bool = False,
        runs_pushed: bool = True,
    ) -> None:
        """``credit``: register with credit (assignments are pushed, not offered);
        ``batches``: and take several pushed at once (``Assignments``); ``runs_pushed``
        false: take pushed assignments but never run them (nor list them)."""
        self.nc = nc
        self.group = group
        self.id = agent_id
        self.session = "s" + secrets.token_hex(4)
        self.skills = skills
        self.declines = declines
        self.credit = credit
        self.batches = batches
        self.messages: list[int] = []
        """Per pushed message on the inbox, how many assignments it carried."""
        self.runs_pushed = runs_pushed
        self.pushed: list[tuple[Assignment, str]] = []
        """Every pushed assignment, with the reply subject it came with (none expected)."""
        self.offers: asyncio.Queue[Assignment] = asyncio.Queue()
        self.cancels: list[Cancel] = []
        self.running: dict[str, int] = {}
        self._beat: asyncio.Task[None] | None = None

    async def start(self) -> RegisterAck:
        await self.nc.subscribe(subjects.agent_inbox(self.group, self.id), cb=self._inbox)
        profile = AgentProfile(id=self.id, name=self.id, skills=self.skills, capacity=4)
        reply = await ask(
            self.nc,
            subjects.hub_register(self.group, subjects.ANON_SENDER),
            encode(
                Register(
                    profile=profile,
                    session=self.session,
                    credit=self.credit,
                    batches=self.batches,
                )
            ),
        )
        assert isinstance(reply, RegisterAck), reply
        self._beat = asyncio.create_task(self._beats())
        return reply

    async def stop(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            await asyncio.gather(self._beat, return_exceptions=True)

    async def _inbox(self, msg: Msg) -> None:
        message = decode_any(msg.data)
        if isinstance(message, Cancel):
            self.cancels.append(message)
            self.running.pop(message.task_id, None)
            return
        if isinstance(message, Assignments):
            assert self.batches, "a batch to an agent that did not ask for batches"
            self.messages.append(len(message.assignments))
            for one in message.assignments:
                assert one.pushed, one
                await self._pushed(one, msg.reply)
            return
        assert isinstance(message, Assignment), message
        if message.pushed:
            self.messages.append(1)
            await self._pushed(message, msg.reply)
            return
        if self.declines > 0:
            self.declines -= 1
            answer: BaseModel = Decline(
                task_id=message.task_id, attempt=message.attempt, agent_id=self.id, reason="no"
            )
        else:
            self.running[message.task_id] = message.attempt
            answer = Accept(task_id=message.task_id, attempt=message.attempt, agent_id=self.id)
        await msg.respond(encode(answer))
        if isinstance(answer, Accept):
            await self.offers.put(message)

    async def _pushed(self, message: Assignment, reply: str) -> None:
        """Credit: run it (listed in the next heartbeat), or publish a Decline."""
        self.pushed.append((message, reply))
        if self.declines > 0:
            self.declines -= 1
            decline = Decline(
                task_id=message.task_id, attempt=message.attempt, agent_id=self.id, reason="no"
            )
            await self.nc.publish(
                subjects.hub_decline(self.group, subjects.ANON_SENDER), encode(decline)
            )
        elif self.runs_pushed:
            self.running[message.task_id] = message.attempt
            await self.offers.put(message)

    async def _beats(self) -> None:
        while True:
            beat = Heartbeat(
                agent_id=self.id,
                session=self.session,
                ts=time.time(),
                running=[TaskRef(task_id=t, attempt=a) for t, a in self.running.items()],
            )
            await self.nc.publish(
                subjects.hub_heartbeat(self.group, subjects.ANON_SENDER), encode(beat)
            )
            await asyncio.sleep(0.1)

    async def next_offer(self) -> Assignment:
        return await asyncio.wait_for(self.offers.get(), WAIT)

    def result_msg(self, task_id: str, attempt: int, output: Any = None, **kw: Any) -> Result:
        values: dict[str, Any] = {
            "task_id": task_id,
            "attempt": attempt,
            "agent_id": self.id,
            "session": self.session,
            "output": output,
        }
        values.update(kw)
        return Result(**values)

    async def finish(self, offer: Assignment, output: Any = "ok") -> ResultAck:
        reply = await ask(
            self.nc,
            subjects.hub_result(self.group, subjects.ANON_SENDER),
            encode(self.result_msg(offer.task_id, offer.attempt, output)),
        )
        assert isinstance(reply, ResultAck), reply
        self.running.pop(offer.task_id, None)
        return reply
