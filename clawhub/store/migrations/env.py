"""Alembic's environment for the store: always run on a connection that
``clawhub.store.schema`` hands over (never from an ``alembic.ini`` URL)."""

from __future__ import annotations

from alembic import context

from clawhub.store.schema import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
