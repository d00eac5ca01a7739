"""A Synadia Agent Protocol agent, on the protocol's host SDK alone: it shouts the text it
is given a word a chunk (each chunk is progress to whoever prompted it).

    python -P nats_crier.py --nats-url nats://127.0.0.1:PORT --skills shout=0.9,text=0.8

It registers the micro service ``agents`` (agent ``demo``, owner ``--owner``, session
``--name``) with its skills in the service metadata, beats every ``--heartbeat`` seconds and
prints ``READY <instance id>``. The text is the ``text`` of the task input a sender may put
in the envelope's ``clawhub`` extra field (§5.6: unknown fields are tolerated), else the
prompt.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

import nats
from synadia_ai.agent_service import AgentService, PromptStream
from synadia_ai.agents import Envelope


def given_text(envelope: Envelope) -> str:
    """The input's ``text`` from the ``clawhub`` extra, else the prompt."""
    task = envelope.extras.get("clawhub")
    given = task.get("input") if isinstance(task, dict) else None
    if isinstance(given, dict) and isinstance(given.get("text"), str):
        return str(given["text"])
    return envelope.prompt


async def serve(url: str, owner: str, name: str, skills: str, heartbeat: int) -> None:
    nc = await nats.connect(url)

    async def shout(envelope: Envelope, stream: PromptStream) -> None:
        for word in given_text(envelope).split():
            await stream.send(word.upper() + " ")
            await asyncio.sleep(0.02)

    service = AgentService(
        agent="demo",
        owner=owner,
        session_name=name,
        nc=nc,
        description="Shouts the text it is given",
        heartbeat_interval_s=heartbeat,
        extra_metadata={"skills": skills},
    )
    service.on_prompt(shout)
    await service.start()
    print(f"READY {service.instance_id}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await service.stop()
        await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nats-url", required=True, help="the agents' own NATS")
    parser.add_argument("--owner", default="clawhub")
    parser.add_argument("--name", default="crier")
    parser.add_argument("--skills", default="shout=0.9", help="name=level,... (metadata)")
    parser.add_argument("--heartbeat", type=int, default=1, help="seconds between beats")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.nats_url, args.owner, args.name, args.skills, args.heartbeat))


if __name__ == "__main__":
    main()
