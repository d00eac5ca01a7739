"""``clawhub bridge nats-agents``: agents that speak the Synadia Agent Protocol (v0.3) on a
NATS server join the group as workers (``clawhub.bridges.nats_agents``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from ..errors import HubError
from .client import resolve_token
from .options import TALKS_TO_HUB, SharedOptions, fail, shared_options
from .views import console


def read_tokens(path: Path) -> dict[str, str]:
    """A tokens file: one ``participant-id=token`` a line (``#`` starts a comment)."""
    out: dict[str, str] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise fail(f"cannot read --tokens {path}: {exc.strerror}", 2) from None
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        pid, sep, token = text.partition("=")
        if not sep or not pid.strip() or not token.strip():
            raise fail(f"{path}:{number}: write participant-id=token", 2)
        out[pid.strip()] = token.strip()
    return out


@shared_options(*TALKS_TO_HUB)
def nats_agents(
    nats_url: Annotated[
        str | None,
        typer.Option(
            "--nats-url",
            help="The NATS server the agents are on (user:password@ or token@ in the URL); "
            "default: the hub's.",
        ),
    ] = None,
    filter_: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            help="Only these agents (repeatable): a glob on the name (worker-*) or, with "
            "dots, on agent.owner.name (cc.alice.*).",
        ),
    ] = None,
    skills_from: Annotated[
        str,
        typer.Option(
            "--skills-from",
            help="metadata: the agents' metadata.skills (the --skill flags for one that "
            "declares none); flag: the --skill flags only.",
        ),
    ] = "metadata",
    skill: Annotated[
        list[str] | None,
        typer.Option("--skill", "-s", help="A skill of the agents as name=level (repeatable)."),
    ] = None,
    tokens: Annotated[
        Path | None,
        typer.Option(
            "--tokens",
            help="File of participant-id=token lines (agent tokens, one per agent); an "
            "agent not in it is refused. Without it: CLAWHUB_TOKEN or the hub's admin token.",
        ),
    ] = None,
    capacity: Annotated[int, typer.Option(help="Tasks each agent holds at once.")] = 1,
    rediscover: Annotated[
        float, typer.Option(help="Seconds between discoveries of new agents.")
    ] = 10.0,
    keepalive_progress: Annotated[
        bool,
        typer.Option(
            "--keepalive-progress",
            help="Count the agents' keep-alive acks as progress (harnesses that stream no "
            "text while they work).",
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Log more.")] = False,
    *,
    shared: SharedOptions,
) -> None:
    """Bring Synadia-protocol agents (the NATS micro service `agents`) into the group: each
    one a participant, its heartbeats its liveness, its streamed answer the result."""
    from ..bridges.nats_agents import NatsAgentsBridge  # noqa: PLC0415 - loads the bridge
    from ..bridges.nats_agents.mapping import parse_skills  # noqa: PLC0415

    if skills_from not in ("metadata", "flag"):
        raise fail("--skills-from takes metadata or flag", 2)
    bare = [s for s in skill or [] if "=" not in s]
    if bare:
        raise fail(f"bad --skill {bare[0]!r}: give name=level, e.g. {bare[0]}=0.8", 2)
    flags, problems = parse_skills(",".join(skill or []))
    if problems:
        raise fail(f"bad --skill: {'; '.join(problems)}", 2)
    if skills_from == "flag" and not flags:
        raise fail("--skills-from flag needs at least one --skill name=level", 2)
    settings, hub_url = shared.hub()
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("clawhub.bridges").setLevel(logging.INFO)
    bridge = NatsAgentsBridge(
        hub_url,
        agents_url=nats_url,
        group=settings.group,
        token=None if tokens else resolve_token(settings),
        tokens=read_tokens(tokens) if tokens else None,
        filters=filter_ or [],
        skills_from="flag" if skills_from == "flag" else "metadata",
        skills=flags,
        capacity=capacity,
        rediscover_interval=rediscover,
        keepalive_is_progress=keepalive_progress,
    )

    def told(what: str, pid: str, detail: str) -> None:
        if what == "joined":
            console.print(f"  {detail} joined as {pid}")
        else:
            console.print(f"  {pid} {what}: {detail}")

    bridge.on_change = told

    async def serve() -> None:
        console.print(
            f"[bold green]nats-agents bridge[/] agents on {bridge.agents_url} -> group "
            f"{bridge.group} of the hub at {hub_url} (Ctrl-C to stop)"
        )
        await bridge.start()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await bridge.stop()
        console.print("bridge stopped: its agents left the group")

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve())
    except HubError as exc:  # a bad --nats-url, an unreachable server
        raise fail(str(exc)) from None


def register(bridge: typer.Typer) -> None:
    """Add ``nats-agents`` to the ``clawhub bridge`` sub-app."""
    bridge.command("nats-agents")(nats_agents)
