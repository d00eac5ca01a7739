"""A Synadia Agent Protocol (v0.3) agent in its own process, for the bridge's tests: served
by the protocol's own Python host SDK (``synadia_ai.agent_service.AgentService``), so it
is spec-compliant by construction; the tests kill it or let it go silent.

Modes: ``answer`` streams its answer in a few chunks; ``slow`` streams a chunk every 0.2 s
for ``--seconds``; ``stop`` sends one chunk and then nothing more (heart-beating on);
``fail`` raises in its handler (the host answers with a §9 error frame); ``garbage`` is the
one non-compliant agent: a bare nats-py micro service, since the host SDK cannot send
anything but protocol chunks, whose prompt endpoint answers bytes that are not a chunk.

Each prompt appends ``<task_id> <attempt> <name>`` to ``--runs``; ``ready <instance id>``
on stdout says the agent is registered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from datetime import UTC, datetime
from pathlib import Path

import nats
from nats.micro import add_service
from nats.micro.request import Request
from synadia_ai.agent_service import AgentService, PromptStream
from synadia_ai.agents import Envelope


def note(args: argparse.Namespace, envelope: Envelope) -> str:
    task = envelope.extras.get("clawhub")
    task_id, attempt = ("-", 0)
    if isinstance(task, dict):
        task_id, attempt = task.get("task_id", "-"), task.get("attempt", 0)
    with args.runs.open("a") as fh:
        fh.write(f"{task_id} {attempt} {args.name}\n")
    return str(task.get("title", "")) if isinstance(task, dict) else envelope.prompt[:40]


async def serve_compliant(args: argparse.Namespace, nc: nats.NATS, stop: asyncio.Event) -> None:
    async def handler(envelope: Envelope, stream: PromptStream) -> None:
        title = note(args, envelope)
        if args.mode == "fail":
            raise RuntimeError("the model is out of credit")
        if args.mode == "answer":
            for part in (f"{args.name} ", "did: ", title.upper()):
                await stream.send(part)
                await asyncio.sleep(0.05)
        elif args.mode == "slow":
            for i in range(max(1, int(args.seconds / 0.2))):
                await stream.send(f"step {i}; ")
                await asyncio.sleep(0.2)
        elif args.mode == "stop":
            await stream.send("thinking...")
            await asyncio.Event().wait()  # never another chunk; the heartbeats go on

    extra = {"skills": args.skills} if args.skills else {}
    if args.model:
        extra["model"] = args.model
    service = AgentService(
        agent=args.agent,
        owner=args.owner,
        session_name=args.name,
        nc=nc,
        description=f"test agent in mode {args.mode}",
        heartbeat_interval_s=args.interval,
        max_payload=args.max_payload,
        keepalive_interval_s=0.5,  # keep-alive acks are not progress: they must not hide a stall
        extra_metadata=extra,
    )
    service.on_prompt(handler)
    await service.start()
    print(f"ready {service.instance_id}", flush=True)
    try:
        await stop.wait()
    finally:
        await service.stop()


async def serve_garbage(args: argparse.Namespace, nc: nats.NATS, stop: asyncio.Event) -> None:
    subject = f"{args.agent}.{args.owner}.{args.name}"

    async def prompt(request: Request) -> None:
        task = json.loads(request.data)
        note(args, Envelope.model_validate(task))
        await request.respond(b'{"type":"status","data":"ack"}')
        await request.respond(b"\x00\xffthis is not a chunk")
        await request.respond(b"")

    metadata = {"agent": args.agent, "owner": args.owner, "session": args.name}
    metadata |= {"protocol_version": "0.3", "skills": args.skills}
    service = await add_service(
        nc, name="agents", version="0.0.1", description="garbage", metadata=metadata
    )
    await service.add_endpoint(
        name="prompt",
        subject=f"agents.prompt.{subject}",
        handler=prompt,
        queue_group="agents",
        metadata={"max_payload": "1MB", "attachments_ok": "false"},
    )
    print(f"ready {service.id}", flush=True)
    while not stop.is_set():
        beat = {"agent": args.agent, "owner": args.owner, "session": args.name}
        beat |= {"instance_id": service.id, "interval_s": args.interval}
        beat["ts"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        await nc.publish(f"agents.hb.{subject}", json.dumps(beat).encode())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.interval)
    await service.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--agent", default="demo")
    parser.add_argument("--owner", default="tests")
    parser.add_argument("--name", required=True)
    parser.add_argument("--mode", default="answer")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--skills", default="x=0.9")
    parser.add_argument("--model", default="")
    parser.add_argument("--interval", type=int, default=1)
    parser.add_argument("--max-payload", default="1MB")
    parser.add_argument("--runs", type=Path, required=True)
    args = parser.parse_args()
    nc = await nats.connect(args.url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if args.mode == "garbage":
            await serve_garbage(args, nc, stop)
        else:
            await serve_compliant(args, nc, stop)
    finally:
        await nc.close()


if __name__ == "__main__":
    asyncio.run(main())
