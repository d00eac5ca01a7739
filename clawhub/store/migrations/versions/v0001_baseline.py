"""Baseline: the five tables as of the first release with migrations.

A store written before migrations existed (its tables made by ``create_all``, columns
added by later releases one by one) is brought to this shape too: tables it lacks are
created, columns it lacks are added with their defaults, and nothing it has is touched.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _s(length: int | None = None) -> sa.String:
    return sa.String(length)


def _col(
    name: str,
    kind: sa.types.TypeEngine[Any],
    *,
    default: object = None,
    null: bool = False,
    pk: bool = False,
) -> tuple[sa.Column[Any], object]:
    return sa.Column(name, kind, primary_key=pk, nullable=null), default


def _tables() -> dict[str, list[tuple[sa.Column[Any], object]]]:
    """Fresh column objects each time (a column belongs to one table)."""
    return {
        "claw_tasks": [
            _col("group", _s(64), pk=True),
            _col("id", _s(64), pk=True),
            _col("seq", sa.Integer(), default=0),
            _col("state", _s(20), default="ready"),
            _col("attempt", sa.Integer(), default=0),
            _col("failures", sa.Integer(), default=0),
            _col("assigned_to", _s(64), null=True),
            _col("spec", _s(), default="{}"),
            _col("output", _s(), null=True),
            _col("error", _s(), null=True),
            _col("excluded", _s(), default="[]"),
            _col("history", _s(), default="[]"),
            _col("verdicts", _s(), default="[]"),
            _col("usage", _s(), default="{}"),
            _col("extra", _s(), default="{}"),
            _col("created_at", sa.Float(), default=0.0),
            _col("updated_at", sa.Float(), default=0.0),
        ],
        "claw_events": [
            _col("group", _s(64), pk=True),
            _col("seq", sa.Integer(), pk=True),
            _col("ts", sa.Float(), default=0.0),
            _col("kind", _s(100), default=""),
            _col("task_id", _s(64), null=True),
            _col("agent_id", _s(64), null=True),
            _col("attempt", sa.Integer(), null=True),
            _col("state", _s(20), null=True),
            _col("message", _s(), default=""),
            _col("data", _s(), default="{}"),
        ],
        "claw_agents": [
            _col("group", _s(64), pk=True),
            _col("id", _s(64), pk=True),
            _col("profile", _s(), default="{}"),
            _col("session", _s(64), default=""),
            _col("state", _s(20), default="offline"),
            _col("reliability", sa.Float(), default=1.0),
            _col("completed", sa.Integer(), default=0),
            _col("failed", sa.Integer(), default=0),
            _col("last_seen", sa.Float(), default=0.0),
            _col("mode", _s(20), default="active"),
            _col("usage", _s(), default="{}"),
            _col("stalled", sa.Integer(), default=0),
            _col("credential", _s(64), null=True),
        ],
        "claw_goals": [
            _col("group", _s(64), pk=True),
            _col("id", _s(64), pk=True),
            _col("seq", sa.Integer(), default=0),
            _col("state", _s(20), default="planning"),
            _col("spec", _s(), default="{}"),
            _col("plan", _s(), null=True),
            _col("task_ids", _s(), default="[]"),
            _col("usage", _s(), default="{}"),
            _col("planning_usage", _s(), default="{}"),
            _col("deliverable", _s(), null=True),
            _col("error", _s(), null=True),
            _col("planning_attempts", sa.Integer(), default=0),
            _col("created_at", sa.Float(), default=0.0),
            _col("updated_at", sa.Float(), default=0.0),
        ],
        "claw_tokens": [
            _col("id", _s(64), pk=True),
            _col("group", _s(64), default=""),
            _col("role", _s(20), default="agent"),
            _col("agent_id", _s(64), null=True),
            _col("note", _s(200), default=""),
            _col("secret_hash", _s(128), default=""),
            _col("nats_hash", _s(128), default=""),
            _col("created_at", sa.Float(), default=0.0),
            _col("revoked_at", sa.Float(), null=True),
        ],
    }


INDEXES: dict[str, list[str]] = {
    "claw_tasks": ["seq", "state"],
    "claw_events": ["task_id", "kind"],
    "claw_goals": ["seq"],
    "claw_tokens": ["group"],
}


def _literal(value: object) -> str:
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    present = set(inspector.get_table_names())
    for name, columns in _tables().items():
        if name not in present:
            op.create_table(name, *(column for column, _ in columns))
            for key in INDEXES.get(name, []):
                op.create_index(f"ix_{name}_{key}", name, [key])
            continue
        have = {c["name"] for c in inspector.get_columns(name)}
        for column, default in columns:
            if column.name in have:
                continue
            server_default = None if column.nullable else sa.text(_literal(default))
            with op.batch_alter_table(name) as batch:
                batch.add_column(
                    sa.Column(
                        column.name,
                        column.type,
                        nullable=column.nullable,
                        server_default=server_default,
                    )
                )
        indexed = {i["name"] for i in inspector.get_indexes(name)}
        for key in INDEXES.get(name, []):
            if f"ix_{name}_{key}" not in indexed:
                op.create_index(f"ix_{name}_{key}", name, [key])


def downgrade() -> None:
    for name in reversed(list(_tables())):
        op.drop_table(name)
