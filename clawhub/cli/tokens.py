"""``clawhub token``: issue, list and revoke access tokens. They live in the store, so these
commands open it directly (they work whether or not a hub runs; a running hub re-reads the
table every ``CLAWHUB_TOKEN_REFRESH`` seconds)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from ..errors import HubError
from .options import SharedOptions, build_settings, fail, shared_options
from .views import console, err

token_app = typer.Typer(help="Issue, list and revoke access tokens (they live in the store).")


def _tokens(shared: SharedOptions) -> Any:
    """The token table of the store that ``--store-url``/``--data-dir`` name."""
    from ..runtime.auth import Tokens  # noqa: PLC0415 - opens the store
    from ..store.store import Store  # noqa: PLC0415

    settings = build_settings(data_dir=shared.data_dir, store_url=shared.store_url)
    try:
        return Tokens(Store(settings.resolved_store_url()))
    except HubError as exc:
        raise fail(str(exc)) from None


@token_app.command("create")
@shared_options("group", "data_dir", "store_url")
def token_create(
    role: Annotated[str, typer.Option("--role", help="agent | human | admin")] = "agent",
    agent_id: Annotated[
        str | None,
        typer.Option("--agent-id", help="Participant id it acts as (required for agents)."),
    ] = None,
    note: Annotated[str, typer.Option(help="A note for `token list`.")] = "",
    *,
    shared: SharedOptions,
) -> None:
    """Issue a token; prints it once (only hashes are stored)."""
    tokens = _tokens(shared)
    group = shared.group or build_settings(data_dir=shared.data_dir).group
    try:
        made, row = tokens.create(group, role, agent_id, note)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    finally:
        tokens.store.close()
    err.print(f"token {row.id}: group {row.group}, role {row.role}, agent {row.agent_id or '-'}")
    typer.echo(made)


@token_app.command("list")
@shared_options("group", "data_dir", "store_url", "as_json")
def token_list(*, shared: SharedOptions) -> None:
    """List tokens (ids, groups, roles; never secrets)."""
    tokens = _tokens(shared)
    try:
        rows = tokens.rows(shared.group)
    finally:
        tokens.store.close()
    if shared.as_json:
        fields = ("id", "group", "role", "agent_id", "note", "created_at", "revoked_at")
        typer.echo(json.dumps([{f: getattr(r, f) for f in fields} for r in rows], indent=2))
        return
    table = Table(title="Tokens")
    for col in ("id", "group", "role", "agent", "note", "state"):
        table.add_column(col)
    for r in rows:
        state = "revoked" if r.revoked_at else "live"
        table.add_row(r.id, r.group, r.role, r.agent_id or "-", r.note, state)
    console.print(table)


@token_app.command("revoke")
@shared_options("data_dir", "store_url")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token id (tk-...).")],
    *,
    shared: SharedOptions,
) -> None:
    """Revoke a token: refused at once by REST/WebSocket of this process and within
    CLAWHUB_TOKEN_REFRESH seconds by a running hub (its NATS connections are closed)."""
    tokens = _tokens(shared)
    try:
        done = tokens.revoke(token_id.split(".")[0])
    finally:
        tokens.store.close()
    if not done:
        raise fail(f"no live token {token_id}")
    console.print(f"revoked {token_id.split('.')[0]}")


def register(app: typer.Typer) -> None:
    """Add ``clawhub token ...`` to the CLI."""
    app.add_typer(token_app, name="token")
