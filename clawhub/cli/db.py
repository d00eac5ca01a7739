"""``clawhub db``: the store's schema revision (``current``) and its upgrade (``upgrade``).

The embedded SQLite store upgrades itself when a newer hub opens it; a PostgreSQL store is
upgraded by this command, deliberately (back it up first): a hub refuses to start on a
schema older or newer than it knows and says which command to run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from .options import SharedOptions, build_settings, fail, shared_options
from .views import console

if TYPE_CHECKING:
    from sqlalchemy import Engine

db_app = typer.Typer(help="The store's schema: its revision and its upgrade (Alembic).")


def _engine(shared: SharedOptions, *, create: bool) -> tuple[Engine, str]:
    from sqlalchemy import create_engine, make_url  # noqa: PLC0415 - only for these commands

    from ..store.store import normalise_url  # noqa: PLC0415

    settings = build_settings(data_dir=shared.data_dir, store_url=shared.store_url)
    url = normalise_url(settings.resolved_store_url())
    shown = make_url(url).render_as_string(hide_password=True)
    path = make_url(url).database if url.startswith("sqlite") else None
    if path:
        if not create and not Path(path).exists():
            raise fail(f"no store at {shown} yet (a hub creates it on start)")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url)
        engine.connect().close()
    except Exception as exc:  # the driver's errors vary; say which store failed
        raise fail(f"cannot open store {shown}: {exc}") from None
    return engine, shown


@db_app.command("current")
@shared_options("data_dir", "store_url")
def db_current(*, shared: SharedOptions) -> None:
    """Print the store's schema revision and the one this release runs on."""
    from ..store.schema import HEAD, current  # noqa: PLC0415

    engine, shown = _engine(shared, create=False)
    try:
        revision = current(engine)
    finally:
        engine.dispose()
    state = "up to date" if revision == HEAD else f"this release needs {HEAD}"
    console.print(f"{shown}: revision {revision or 'none'} ({state})", soft_wrap=True)


@db_app.command("upgrade")
@shared_options("data_dir", "store_url")
def db_upgrade(*, shared: SharedOptions) -> None:
    """Upgrade the store to this release's schema (creates it when empty)."""
    from ..store.schema import current, upgrade  # noqa: PLC0415

    engine, shown = _engine(shared, create=True)
    try:
        before = current(engine)
        upgrade(engine)
        after = current(engine)
    except Exception as exc:  # a migration that fails leaves the store as it was
        raise fail(f"upgrade of {shown} failed: {exc}") from None
    finally:
        engine.dispose()
    console.print(f"{shown}: revision {before or 'none'} → {after}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``clawhub db ...`` to the CLI."""
    app.add_typer(db_app, name="db")
