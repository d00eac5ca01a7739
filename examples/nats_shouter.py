"""A Synadia Agent Protocol agent that knows nothing of Claw Hub: it shouts back its prompt.

It runs on the protocol's own host SDK (synadia-ai-agent-service) and declares a skill in
its service metadata; `clawhub bridge nats-agents` brings it into a group (docs/nats-agents.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os

import nats
from synadia_ai.agent_service import AgentService, PromptStream
from synadia_ai.agents import Envelope


async def shout(envelope: Envelope, stream: PromptStream) -> None:
    """Stream the prompt back upper-cased, a word a chunk (each chunk is progress)."""
    for word in envelope.prompt.split():
        await stream.send(word.upper() + " ")


async def serve(url: str, owner: str, name: str, skills: str) -> None:
    nc = await nats.connect(url)
    service = AgentService(
        agent="demo",
        owner=owner,
        session_name=name,
        nc=nc,
        extra_metadata={"skills": skills},
    )
    service.on_prompt(shout)
    await service.start()
    print("listening on", service.subject.prompt, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await service.stop()
        await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--nats-url", default=os.environ.get("AGENTS_NATS", "nats://127.0.0.1:4333")
    )
    parser.add_argument("--owner", default="alice")
    parser.add_argument("--name", default="shouter")
    parser.add_argument("--skills", default="text=0.8", help="name=level,... (metadata)")
    args = parser.parse_args()
    asyncio.run(serve(args.nats_url, args.owner, args.name, args.skills))


if __name__ == "__main__":
    main()
