"""The durable store: the tables (``tables``) on SQLite (default, WAL) or PostgreSQL (by URL).

The hub keeps its working state in memory and writes every change here through a single
writer (``Store.apply`` runs a batch in one transaction). A restarted hub reads open tasks,
known participants and the event sequence back with the ``load_*`` methods. Opening a store
checks its schema revision first (``schema.prepare``: Alembic migrations).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, event, func, make_url, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import SQLModel, col, create_engine

from ..board.rows import EVENTS, Later, Write, dumps, resolve
from ..errors import Fenced, StoreError
from . import schema
from .lease import Lease, check_fence
from .tables import AgentRow, EventRow, GoalRow, LeaseRow, ReplicaRow, TaskRow, TokenRow

Row = TaskRow | EventRow | AgentRow | GoalRow | Write | Later
ROW_TYPES: tuple[type[SQLModel], ...] = (TaskRow, EventRow, AgentRow, GoalRow, TokenRow)
#: Every table of the store: the rows above, and the replicas' leases.
TABLE_TYPES: tuple[type[SQLModel], ...] = (*ROW_TYPES, LeaseRow, ReplicaRow)


def _table(model: type[SQLModel]) -> Table:
    table = SQLModel.metadata.tables[str(model.__tablename__)]
    return table


def normalise_url(url: str) -> str:
    """``postgresql://`` → ``postgresql+psycopg://`` (psycopg 3 is the driver we ship)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url[len("postgres://") :]
    return url


def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


#: A PostgreSQL transaction left idle this long (ms) is ended by the server: ours never idle
#: (each batch runs its statements back to back), so only a frozen process leaves one, and
#: its row locks must not hold up the replica that took over from it.
PG_IDLE_IN_TRANSACTION_MS = 2000


def _pg_session(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"SET idle_in_transaction_session_timeout = {PG_IDLE_IN_TRANSACTION_MS}")
    cur.close()
    dbapi_conn.commit()


class Store:
    """Tables on one database. Thread-safe for one writer thread plus readers."""

    def __init__(
        self,
        url: str,
        *,
        connect_args: dict[str, Any] | None = None,
        auto_upgrade: bool | None = None,
    ) -> None:
        self.url = normalise_url(url)
        self._statements: dict[str, tuple[str, list[str], dict[str, Any], bool]] = {}
        if self.url.startswith("sqlite:///") and self.url != "sqlite:///:memory:":
            Path(self.url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine: Engine = create_engine(
                self.url, connect_args=connect_args or {}, pool_pre_ping=True
            )
            if self.engine.dialect.name == "sqlite":
                event.listen(self.engine, "connect", _sqlite_pragmas)
            elif self.engine.dialect.name == "postgresql":
                event.listen(self.engine, "connect", _pg_session)
            if auto_upgrade is None:  # the embedded default upgrades itself
                auto_upgrade = self.engine.dialect.name == "sqlite"
            schema.prepare(
                self.engine,
                [_table(m) for m in TABLE_TYPES],
                SQLModel.metadata,
                auto_upgrade=auto_upgrade,
                shown_url=self.display_url,
            )
        except StoreError:
            self.engine.dispose()
            raise
        except Exception as exc:  # the driver's errors vary; say which store failed
            raise StoreError(f"cannot open store {self.display_url}: {exc}") from exc

    @property
    def display_url(self) -> str:
        """The URL without a password."""
        return make_url(self.url).render_as_string(hide_password=True)

    def _upsert(self, table: Table) -> Any:
        """An executemany-able upsert: insert, or overwrite every non-key column."""
        keys = [c.name for c in table.primary_key.columns]
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            pg = postgresql.insert(table)
            update = {c.name: pg.excluded[c.name] for c in table.columns if c.name not in keys}
            return pg.on_conflict_do_update(index_elements=keys, set_=update)
        if dialect == "sqlite":
            lite = sqlite.insert(table)
            update = {c.name: lite.excluded[c.name] for c in table.columns if c.name not in keys}
            return lite.on_conflict_do_update(index_elements=keys, set_=update)
        raise StoreError(f"unsupported database {dialect}")

    def _prepared(self, name: str) -> tuple[str, list[str], dict[str, Any], bool]:
        """A table's write (insert for events, upsert for the others) compiled once to the
        driver's SQL: the text, its parameters in order, the defaults of columns a row may
        leave out, and whether parameters are positional. Executing the text straight on
        the driver spares SQLAlchemy's per-row parameter work in the hot write path."""
        found = self._statements.get(name)
        if found is None:
            table = SQLModel.metadata.tables[name]
            stmt = table.insert() if name == EVENTS else self._upsert(table)
            columns = [c.name for c in table.columns]
            compiled = stmt.compile(dialect=self.engine.dialect, column_keys=columns)
            positional = bool(compiled.positional)
            order = list(compiled.positiontup or []) if positional else columns
            model = next(m for m in ROW_TYPES if m.__tablename__ == name)
            defaults = {k: f.default for k, f in model.model_fields.items() if not f.is_required()}
            found = (str(compiled), order, defaults, positional)
            self._statements[name] = found
        return found

    def apply(self, batch: Sequence[Row], fence: Lease | None = None) -> None:
        """Write rows in one transaction: tasks and agents upserted, events appended.

        Each task or agent row is the whole row, so only the last one per key is written.
        With ``fence`` (a replica's lease), the transaction first checks that the lease is
        still the writer's, else nothing is written (``Fenced``).
        """
        if not batch:
            return
        events: list[dict[str, Any]] = []
        latest: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
        for row in batch:
            if isinstance(row, Write | Later):
                name, values = row.table, row.values
            else:
                name, values = str(type(row).__tablename__), row.model_dump()
            if name == EVENTS:
                events.append(values)
            else:
                latest.setdefault(name, {})[(values["group"], values["id"])] = values
        writes = [(name, list(rows.values())) for name, rows in latest.items()]
        if events:
            writes.append((EVENTS, events))
        try:
            with self.engine.begin() as conn:
                if fence is not None:
                    check_fence(conn, fence)
                for name, rows in writes:
                    sql, order, defaults, positional = self._prepared(name)
                    conn.exec_driver_sql(sql, _params(rows, order, defaults, positional))
        except Fenced:
            raise
        except Exception as exc:
            raise StoreError(f"write to {self.display_url} failed: {exc}") from exc

    def load_tasks(self, group: str) -> list[TaskRow]:
        """Every task of the group, in submission order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(TaskRow).where(col(TaskRow.group) == group).order_by(col(TaskRow.seq))
            ).all()
        return [TaskRow.model_validate(r._mapping) for r in rows]

    def load_goals(self, group: str) -> list[GoalRow]:
        """Every goal of the group, in submission order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(GoalRow).where(col(GoalRow.group) == group).order_by(col(GoalRow.seq))
            ).all()
        return [GoalRow.model_validate(r._mapping) for r in rows]

    def load_agents(self, group: str) -> list[AgentRow]:
        """Every participant of the group."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(AgentRow).where(col(AgentRow.group) == group)).all()
        return [AgentRow.model_validate(r._mapping) for r in rows]

    def last_event_seq(self, group: str) -> int:
        """Highest event sequence number written for the group (0 if none)."""
        with self.engine.connect() as conn:
            value = conn.execute(
                select(func.max(col(EventRow.seq))).where(col(EventRow.group) == group)
            ).scalar()
        return int(value or 0)

    def events(
        self,
        group: str,
        *,
        task_id: str | None = None,
        kind: str | None = None,
        after: int = 0,
        limit: int = 1000,
    ) -> list[EventRow]:
        """Events of the group in order, optionally of one task or kind prefix, after a seq."""
        stmt = select(EventRow).where(col(EventRow.group) == group)
        if after:
            stmt = stmt.where(col(EventRow.seq) > after)
        if task_id is not None:
            stmt = stmt.where(col(EventRow.task_id) == task_id)
        if kind is not None:
            # a literal, case-sensitive prefix on every database (LIKE is neither)
            stmt = stmt.where(func.substr(col(EventRow.kind), 1, len(kind)) == kind)
        stmt = stmt.order_by(col(EventRow.seq)).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [EventRow.model_validate(r._mapping) for r in rows]

    def add_token(self, row: TokenRow) -> None:
        """Store a new token."""
        try:
            with self.engine.begin() as conn:
                conn.execute(_table(TokenRow).insert(), [row.model_dump()])
        except Exception as exc:
            raise StoreError(f"cannot store token in {self.display_url}: {exc}") from exc

    def tokens(self, group: str | None = None) -> list[TokenRow]:
        """Every token (of one group), oldest first, revoked ones included."""
        stmt = select(TokenRow).order_by(col(TokenRow.created_at), col(TokenRow.id))
        if group is not None:
            stmt = stmt.where(col(TokenRow.group) == group)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [TokenRow.model_validate(r._mapping) for r in rows]

    def token(self, token_id: str) -> TokenRow | None:
        """One token by its id (revoked or not), or None."""
        stmt = select(TokenRow).where(col(TokenRow.id) == token_id)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else TokenRow.model_validate(row._mapping)

    def revoke_token(self, token_id: str, when: float) -> bool:
        """Mark a token revoked; False when there is no such live token."""
        table = _table(TokenRow)
        with self.engine.begin() as conn:
            done = conn.execute(
                table.update()
                .where(table.c.id == token_id, table.c.revoked_at.is_(None))
                .values(revoked_at=when)
            )
        return bool(done.rowcount)

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()


def _params(
    rows: list[dict[str, Any]], order: list[str], defaults: dict[str, Any], positional: bool
) -> list[Any]:
    """Driver parameters for ``rows``: tuples in ``order`` or dicts; a column a row leaves out
    takes its default."""
    if positional:
        get = operator.itemgetter(*order)
        try:
            return [get(row) for row in rows]  # the usual case: rows carry every column
        except KeyError:
            return [tuple(row.get(k, defaults.get(k)) for k in order) for row in rows]
    return [{k: row.get(k, defaults.get(k)) for k in order} for row in rows]


__all__ = [
    "ROW_TYPES",
    "AgentRow",
    "EventRow",
    "GoalRow",
    "Later",
    "Row",
    "Store",
    "TaskRow",
    "TokenRow",
    "Write",
    "dumps",
    "normalise_url",
    "resolve",
]
