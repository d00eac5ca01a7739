"""``clawhub bridge``: bring outside agents into the group, one sub-command per protocol
(``clawhub bridge a2a <card-url>``), and the bridges ``clawhub up --a2a-agent URL`` (or
``--a2a-config FILE``) starts, each with an agent token the hub makes for it.

Each bridge runs until Ctrl-C as a participant with its own credential: ``--token`` (an
agent token for the bridged agent's id), else ``CLAWHUB_TOKEN``, else the local admin token
of ``hub.json``. A sub-command for another protocol is one more function registered on
``bridge_app``; the bridges themselves live in ``clawhub.bridges`` (loaded on use).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import HubError
from .client import resolve_token
from .options import SharedOptions, fail, parse_skills, shared_options
from .views import console

if TYPE_CHECKING:
    from ..bridges.a2a import A2ABridge
    from ..bridges.a2a_config import A2AAgentEntry
    from ..gateway.process import HubProcess

bridge_app = typer.Typer(
    help="Bring outside agents into the group (A2A agents as workers).", no_args_is_help=True
)


@bridge_app.command("a2a")
@shared_options("url", "data_dir", "group")
def a2a(
    card_url: Annotated[str, typer.Argument(help="The A2A agent's base URL or card URL.")],
    skill: Annotated[
        list[str] | None,
        typer.Option(
            "--skill",
            "-s",
            help="Skill level, name=level (repeatable; overrides or adds to the card's skills).",
        ),
    ] = None,
    default_level: Annotated[
        float, typer.Option(help="Level of each card skill not given with --skill.")
    ] = 0.5,
    agent_id: Annotated[
        str | None, typer.Option("--id", help="Participant id (default: the card name's slug).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Display name (default: the card's).")] = None,
    model: Annotated[str | None, typer.Option(help="The model it runs, if you know it.")] = None,
    capacity: Annotated[int, typer.Option(help="Tasks it is given at once.")] = 1,
    token: Annotated[
        str | None,
        typer.Option(
            help="Agent token for the participant id (default: "
            "CLAWHUB_TOKEN, else the local admin token)."
        ),
    ] = None,
    poll_interval: Annotated[
        float, typer.Option(help="Seconds between reads of the card (liveness).")
    ] = 5.0,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Log more.")] = False,
    *,
    shared: SharedOptions,
) -> None:
    """Join a remote A2A agent to the group as a worker, until Ctrl-C."""
    from ..bridges.a2a import A2ABridge  # noqa: PLC0415 - loads a2a-sdk and the SDK

    settings, url = shared.hub()
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    quiet_a2a_logs(verbose)
    bridge = A2ABridge(
        card_url,
        hub_url=url,
        token=token or resolve_token(settings),
        group=settings.group,
        agent_id=agent_id,
        name=name,
        skills=parse_skills(skill or []),
        default_level=default_level,
        model=model,
        capacity=capacity,
        poll_interval=poll_interval,
    )

    async def serve() -> None:
        await bridge.start()
        announce(bridge)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await bridge.stop()
            console.print(f"bridge of {bridge.agent_id} stopped")

    run_bridge(serve)


def quiet_a2a_logs(verbose: bool = False) -> None:
    """a2a-sdk logs each card it reads at INFO, whole, and httpx each request: every poll.
    Say that only with -v."""
    if not verbose:
        for name in ("a2a.client.card_resolver", "httpx"):
            logging.getLogger(name).setLevel(logging.WARNING)


def announce(bridge: A2ABridge) -> None:
    """Say who joined: ``A2A agent 'Echo Agent' joined as echo-agent (skills ...)``."""
    assert bridge.agent is not None and bridge.card is not None
    skills = ", ".join(f"{k}={v:g}" for k, v in sorted(bridge.agent.profile.skills.items()))
    mode = "streaming" if bridge.card.capabilities.streaming else "polling"
    console.print(
        f"A2A agent {bridge.card.name!r} at {bridge.card_url} joined as "
        f"[bold]{bridge.agent_id}[/] (skills {skills or '-'}; {mode})"
    )


def run_bridge(serve: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``serve``; a bridge or hub error exits 1 with its text."""
    from agents_sdk import SDKError  # noqa: PLC0415

    try:
        asyncio.run(serve())
    except (HubError, SDKError, ValueError) as exc:
        raise fail(str(exc)) from None


async def start_a2a_bridges(
    entries: list[A2AAgentEntry], server: HubProcess, group: str
) -> list[A2ABridge]:
    """The bridges of ``clawhub up --a2a-agent URL`` / ``--a2a-config FILE``, in ``server``'s
    group ``group``: started in order; if one fails, the ones started are stopped and a
    ``HubError`` says why.

    Each acts with its own credential: the entry's ``token``, else (on the hub's embedded
    nats-server with auth) an agent token the hub makes for the participant id, reused on
    the next start (``HubProcess.bridge_token``). Without auth none is needed; on an
    external NATS the hub cannot add a NATS user, so an entry without a token uses
    ``CLAWHUB_TOKEN`` (as ``clawhub bridge a2a`` does)."""
    if not entries:
        return []
    from agents_sdk import SDKError  # noqa: PLC0415

    from ..bridges.a2a import A2ABridge  # noqa: PLC0415
    from ..bridges.a2a_config import TOKEN_NOTE  # noqa: PLC0415

    quiet_a2a_logs()
    makes_tokens = server.embedded is not None and server.embedded.auth

    async def token_for(agent_id: str) -> str:
        try:
            return await server.bridge_token(group, agent_id, TOKEN_NOTE)
        except ValueError as exc:  # an id that is no identifier
            raise HubError(str(exc)) from None

    started: list[A2ABridge] = []
    try:
        for entry in entries:
            bridge = A2ABridge(
                entry.url,
                hub_url=server.url,
                token=entry.token,
                group=group,
                token_for=token_for if makes_tokens else None,
                **entry.options(),
            )
            await bridge.start()
            started.append(bridge)
            announce(bridge)
    except SDKError as exc:
        await stop_bridges(started)
        raise HubError(f"A2A agent {entry.url}: {exc}") from None
    except BaseException:
        await stop_bridges(started)
        raise
    return started


async def stop_bridges(bridges: list[A2ABridge]) -> None:
    """Stop ``bridges`` (each leaves the group)."""
    for bridge in bridges:
        await bridge.stop()


def register(app: typer.Typer) -> None:
    """Add ``clawhub bridge ...`` to the ``clawhub`` app."""
    app.add_typer(bridge_app, name="bridge")
