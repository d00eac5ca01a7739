"""``clawhub up``: run the hub (one process, or ``--workers N`` processes) until Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from .bridge import start_a2a_bridges, stop_bridges
from .options import SharedOptions, fail, run_loop, shared_options
from .views import console


@shared_options("data_dir")
def up(
    nats_url: Annotated[
        str | None,
        typer.Option(
            "--nats-url",
            help="Use this NATS server instead of embedding one (several: comma-separated).",
        ),
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Port of the embedded nats-server (0 = free).")
    ] = None,
    store_url: Annotated[
        str | None, typer.Option("--store-url", help="Store URL (sqlite:///... postgresql://...).")
    ] = None,
    group: Annotated[
        list[str] | None,
        typer.Option("--group", help="Claw Group to serve (repeatable: one hub per group)."),
    ] = None,
    gateway_port: Annotated[
        int | None, typer.Option("--gateway-port", help="Port of the HTTP/WebSocket gateway.")
    ] = None,
    auth: Annotated[
        bool | None,
        typer.Option(
            "--auth/--no-auth",
            help="Require tokens on NATS (embedded, or set up by `clawhub nats-config`).",
        ),
    ] = None,
    replica: Annotated[
        bool,
        typer.Option(
            "--replica",
            help="One of several replicas on one --nats-url and --store-url: each group is "
            "active on one, the others stand by and take over (docs/replicas.md).",
        ),
    ] = False,
    replica_id: Annotated[
        str | None, typer.Option("--replica-id", help="This replica's name (default: unique).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Hub worker processes: the groups spread over N processes, one per core "
            "(each group active in one; a worker that dies has its groups taken over and is "
            "started again). Default 1.",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Log more.")] = False,
    a2a_agent: Annotated[
        list[str] | None,
        typer.Option(
            "--a2a-agent",
            help="Join this A2A agent (card URL) as a worker, with an agent token the hub "
            "makes for it (repeatable).",
        ),
    ] = None,
    a2a_config: Annotated[
        Path | None,
        typer.Option(
            "--a2a-config",
            help="TOML file of A2A agents to join as workers, an [[agent]] table each "
            "(url, id, skills, model, token...: docs/a2a-agents.md).",
        ),
    ] = None,
    *,
    shared: SharedOptions,
) -> None:
    """Run the hub (embedded nats-server + SQLite + gateway unless configured) until Ctrl-C."""
    groups = list(group or [])
    settings = shared.settings(
        nats_url=nats_url,
        nats_port=port,
        store_url=store_url,
        group=groups[0] if groups else None,
        gateway_port=gateway_port,
        auth=auth,
        replica=replica or None,
        replica_id=replica_id,
        workers=workers,
        a2a_config=a2a_config,
    )
    from ..bridges.a2a_config import A2AConfigError, a2a_entries  # noqa: PLC0415

    try:  # before anything starts: a bad file is one error, exit 2
        entries = a2a_entries(a2a_agent or [], settings.a2a_config)
    except A2AConfigError as exc:
        raise fail(str(exc), 2) from None
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    from ..gateway.process import HubProcess  # noqa: PLC0415
    from ..runtime.gc import tune_gc  # noqa: PLC0415 - the server half loads only when serving
    from .workers import Workers  # noqa: PLC0415

    async def serve() -> None:
        pool = Workers(settings, groups or None, settings.workers) if settings.workers > 1 else None
        server = pool.server if pool is not None else HubProcess(settings, groups or None)
        await (pool or server).start()
        tune_gc()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        embedded = server.embedded
        console.print(f"[bold green]Claw Hub[/] serving {', '.join(server.groups)}")
        auth_note = "  (embedded, tokens required)" if embedded and embedded.auth else ""
        if embedded and not embedded.auth:
            auth_note = "  (embedded, no auth)"
        if not embedded:
            auth_note = f"  (external, {'tokens required' if settings.auth else 'no auth'})"
        console.print(f"  NATS     {server.url}{auth_note}")
        if server.gateway_url:
            console.print(
                f"  gateway  {server.gateway_url}  (REST /docs, WebSocket {server.ws_url})"
            )
            console.print(f"  A2A      {server.gateway_url}/.well-known/agent-card.json")
        console.print(f"  store    {server.store.display_url}")
        if server.replicas is not None:
            held = ", ".join(server.replicas.held)
            role = f"active for {held}" if held else "standing by (active for no group yet)"
            console.print(f"  replica  {server.replicas.id}: {role}")
        if pool is not None:
            console.print(
                f"  workers  {pool.count} processes ({pool.name(0)} here; logs in "
                f"{pool.data_dir(0).parent})"
            )
        console.print(f"  data     {settings.data_dir}  (hub.json holds an admin token per group)")
        if embedded and not embedded.auth:
            console.print("  agents:  Agent(...).run() finds this hub in hub.json; no token needed")
        else:
            console.print(
                "  agents:  clawhub token create --group G --role agent --agent-id ID, then "
                f"Agent(...).run({server.url!r}, token=...)"
            )
        bridges = []
        try:
            bridges = await start_a2a_bridges(entries, server, settings.group)
            console.print("  Ctrl-C to stop")
            await stop.wait()
        finally:
            await stop_bridges(bridges)
            await (pool or server).stop()
            console.print("hub stopped")

    run_loop(serve(), settings)  # uvloop when installed; a HubError is one error line
