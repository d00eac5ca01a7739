"""The store's schema version: Alembic migrations under ``migrations/``.

A store opened by the hub is checked first (``prepare``): an empty database gets the
current tables and is stamped with the newest revision; a store at that revision opens as
it is; a store at an older revision (or written before migrations existed) is upgraded in
place when ``auto_upgrade`` (the embedded SQLite default) and refused otherwise with the
command that upgrades it; a store at a revision this release does not know (written by a
newer release) is always refused. ``clawhub db upgrade`` / ``clawhub db current`` run
``upgrade`` and ``current``.

The check reads the version table with plain SQL: Alembic itself is imported only when a
database is created, stamped or upgraded.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, MetaData, Table, inspect, text

from ..errors import StoreError

#: The table Alembic keeps the store's revision in (not the default name, so a database
#: shared with another Alembic-managed application keeps the two apart).
VERSION_TABLE = "claw_schema_version"

#: Every revision this release knows, oldest first; the last is the one it runs on.
REVISIONS: tuple[str, ...] = ("0001", "0002")
HEAD = REVISIONS[-1]

MIGRATIONS = Path(__file__).parent / "migrations"


def current(engine: Engine) -> str | None:
    """The store's revision: ``None`` for a store written before migrations (or empty)."""
    if VERSION_TABLE not in inspect(engine).get_table_names():
        return None
    with engine.connect() as conn:
        found = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    return found[0] if found else None


def _run(engine: Engine, command: str, revision: str) -> None:
    from alembic import command as alembic_command  # noqa: PLC0415 (only when needed)
    from alembic.config import Config  # noqa: PLC0415

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        getattr(alembic_command, command)(config, revision)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the migrations up to ``revision`` (default: the newest)."""
    _run(engine, "upgrade", revision)


def prepare(
    engine: Engine, tables: list[Table], metadata: MetaData, *, auto_upgrade: bool, shown_url: str
) -> None:
    """Make the store ready for this release, or refuse it (``StoreError``, saying what to
    run). ``tables`` are the store's tables in ``metadata`` (the current models)."""
    present = set(inspect(engine).get_table_names())
    ours = {t.name for t in tables}
    revision = current(engine)
    if revision == HEAD:
        return
    if revision is None and not present & ours:
        metadata.create_all(engine, tables=tables)
        _run(engine, "stamp", HEAD)
        return
    if revision is not None and revision not in REVISIONS:
        raise StoreError(
            f"the store {shown_url} is at schema revision {revision}, newer than this "
            f"release of clawhub knows (up to {HEAD}): upgrade clawhub to open it"
        )
    if auto_upgrade:
        upgrade(engine)
        return
    found = f"revision {revision}" if revision else "written before schema migrations"
    raise StoreError(
        f"the store {shown_url} is at an older schema ({found}; this release needs "
        f"{HEAD}): run `clawhub db upgrade --store-url {shown_url}` (back it up first)"
    )
