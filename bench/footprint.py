"""Scenario 6, footprint: the hub process's resident memory with 10,000 participants
registered through its normal register path (``Register`` requests over NATS), against the
same hub with none; and the time ``import agents_sdk`` takes in a fresh interpreter (median
of seven), against importing what it cannot do without (asyncio and pydantic's BaseModel)."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys

import nats
import psutil

from protocols import AgentProfile, Register, RegisterAck, decode, encode, subjects

from .common import GROUP, ROOT, Row, bus, hub_process

S = "footprint"


async def register_many(url: str, count: int, concurrency: int = 200) -> None:
    nc = await nats.connect(url)
    subject = subjects.hub_register(GROUP, subjects.ANON_SENDER)
    skills = [f"skill{i}" for i in range(50)]

    async def one(i: int) -> None:
        profile = AgentProfile(
            id=f"sim-{i}",
            name=f"simulated {i}",
            skills={skills[i % 50]: 0.8, skills[(i * 7) % 50]: 0.6, skills[(i * 13) % 50]: 0.5},
            capacity=2,
        )
        reply = await nc.request(subject, encode(Register(profile=profile, session="s1")), 30)
        decode(reply.data, RegisterAck)

    try:
        for start in range(0, count, concurrency):
            await asyncio.gather(*(one(i) for i in range(start, min(count, start + concurrency))))
    finally:
        await nc.close()


def import_time(statement: str, runs: int = 7) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        )
        times.append(float(out.stdout.strip()))
    return statistics.median(times)


async def run(quick: bool) -> list[Row]:
    count = 2000 if quick else 10_000
    rows: list[Row] = []
    async with bus() as (server, tmp):
        config = {"heartbeat_interval": 3600.0}  # simulated agents never beat
        async with hub_process(server, tmp / "hub", **config) as hub:
            proc = psutil.Process(hub.pid)
            await asyncio.sleep(0.5)
            empty = proc.memory_info().rss / 2**20
            await register_many(server.url, count)
            await asyncio.sleep(0.5)
            full = proc.memory_info().rss / 2**20
    rows.append(
        Row(
            S,
            f"hub RSS with {count:,} registered agents",
            full,
            "MB",
            empty,
            "hub with none",
            full / empty,
            "< 150 MB",
            full < 150,
            note=f"{(full - empty) * 1024 / count:.1f} KB per agent",
        )
    )
    sdk = await asyncio.to_thread(import_time, "import agents_sdk")
    floor = await asyncio.to_thread(
        import_time, "import asyncio, pydantic; from pydantic import BaseModel"
    )
    rows.append(
        Row(
            S,
            "import agents_sdk (fresh interpreter, median of 7)",
            sdk * 1e3,
            "ms",
            floor * 1e3,
            "import asyncio, pydantic",
            sdk / floor,
            "< 150 ms",
            sdk < 0.150,
        )
    )
    return rows
