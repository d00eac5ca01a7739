"""The store's Alembic migrations (``clawhub db upgrade``; see ``clawhub.store.schema``)."""
