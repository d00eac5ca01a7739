"""Replicas: a lease per group (holder, fencing epoch, expiry) and the replicas that are up.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "claw_leases",
        sa.Column("group", sa.String(64), primary_key=True, nullable=False),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("gateway", sa.String(200), nullable=True),
    )
    op.create_table(
        "claw_replicas",
        sa.Column("id", sa.String(128), primary_key=True, nullable=False),
        sa.Column("seen_at", sa.Float(), nullable=False),
        sa.Column("gateway", sa.String(200), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("claw_replicas")
    op.drop_table("claw_leases")
