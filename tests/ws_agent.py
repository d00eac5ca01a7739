"""A participant made of a raw ``websockets`` client and JSON dicts (no SDK, no pydantic):
what an agent in another language does, as the README's guide shows."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from typing import Any

import websockets

WAIT = 10.0


class RawWsAgent:
    """Registers over the gateway's socket, accepts offers, reports progress, returns results."""

    def __init__(self, url: str, token: str, agent_id: str, skills: dict[str, float]) -> None:
        self.url = url
        self.token = token
        self.id = agent_id
        self.session = "raw" + str(int(time.time() * 1000) % 100000)
        self.skills = skills
        self.ws: Any = None
        self._ids = itertools.count(1)
        self.replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.offers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.pushes: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self._reader: asyncio.Task[None] | None = None
        self._beats: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.ws = await websockets.connect(f"{self.url}?token={self.token}")
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for text in self.ws:
                frame = json.loads(text)
                if frame["type"] == "claw.v1.ws.response":
                    future = self.replies.pop(frame["id"], None) if frame["id"] else None
                    if future is not None:
                        future.set_result(frame["message"])
                    else:
                        self.errors.append(frame["message"])
                elif frame["type"] == "claw.v1.ws.offer":
                    await self.offers.put(frame)
                elif frame["type"] == "claw.v1.ws.push":
                    self.pushes.append(frame["message"])

    async def call(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one message and wait for its reply."""
        call_id = f"c{next(self._ids)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.replies[call_id] = future
        await self.ws.send(
            json.dumps({"type": "claw.v1.ws.request", "id": call_id, "message": message})
        )
        return await asyncio.wait_for(future, WAIT)

    async def send(self, message: dict[str, Any]) -> None:
        """Send one message with no reply wanted (heartbeat, progress)."""
        await self.ws.send(
            json.dumps({"type": "claw.v1.ws.request", "id": None, "message": message})
        )

    async def register(self) -> dict[str, Any]:
        ack = await self.call(
            {
                "type": "claw.v1.agent.register",
                "profile": {"id": self.id, "name": self.id, "skills": self.skills, "capacity": 2},
                "session": self.session,
            }
        )
        if ack["type"] == "claw.v1.agent.registered":
            self._beats = asyncio.create_task(self._beat(ack["heartbeat_interval"]))
        return ack

    async def _beat(self, interval: float) -> None:
        while True:
            await self.send(
                {
                    "type": "claw.v1.agent.heartbeat",
                    "agent_id": self.id,
                    "session": self.session,
                    "ts": time.time(),
                }
            )
            await asyncio.sleep(interval)

    async def work_one(self, output: Any) -> dict[str, Any]:
        """Take the next offer, accept it, report progress, deliver ``output``."""
        frame = await asyncio.wait_for(self.offers.get(), WAIT)
        task = frame["message"]
        ids = {"task_id": task["task_id"], "attempt": task["attempt"], "agent_id": self.id}
        await self.ws.send(
            json.dumps(
                {
                    "type": "claw.v1.ws.answer",
                    "id": frame["id"],
                    "message": {"type": "claw.v1.task.accept", **ids},
                }
            )
        )
        await self.send(
            {
                "type": "claw.v1.task.progress",
                **ids,
                "fraction": 0.5,
                "message": "half",
                "ts": time.time(),
            }
        )
        return await self.call(
            {"type": "claw.v1.task.result", **ids, "session": self.session, "output": output}
        )

    async def close(self) -> None:
        for task in (self._beats, self._reader):
            if task is not None:
                task.cancel()
        await self.ws.close()
        for task in (self._beats, self._reader):
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
