"""The store's tables (SQLModel). Their names come from the board's ``rows`` module, which
names what the board asks to keep."""

from __future__ import annotations

from sqlmodel import Field, SQLModel

from ..board.rows import AGENTS, EVENTS, GOALS, TASKS, TOKENS

LEASES = "claw_leases"
REPLICAS = "claw_replicas"


class TaskRow(SQLModel, table=True):
    """One task, as last written."""

    __tablename__ = TASKS

    group: str = Field(primary_key=True, max_length=64)
    id: str = Field(primary_key=True, max_length=64)
    seq: int = Field(index=True, description="Submission order.")
    state: str = Field(index=True, max_length=20)
    attempt: int = 0
    failures: int = 0
    assigned_to: str | None = Field(default=None, max_length=64)
    spec: str = Field(description="TaskSpec as JSON.")
    output: str | None = Field(default=None, description="Output as JSON.")
    error: str | None = None
    excluded: str = Field(default="[]", description="Excluded participant ids (JSON list).")
    history: str = Field(default="[]", description="AttemptInfo list as JSON.")
    verdicts: str = Field(default="[]", description="Verdict list as JSON.")
    usage: str = Field(default="{}", description="Usage as JSON.")
    extra: str = Field(default="{}", description="Validation step, review task, pin (JSON).")
    created_at: float = 0.0
    updated_at: float = 0.0


class EventRow(SQLModel, table=True):
    """The append-only event log."""

    __tablename__ = EVENTS

    group: str = Field(primary_key=True, max_length=64)
    seq: int = Field(primary_key=True)
    ts: float
    kind: str = Field(index=True, max_length=100)
    task_id: str | None = Field(default=None, index=True, max_length=64)
    agent_id: str | None = Field(default=None, max_length=64)
    attempt: int | None = None
    state: str | None = Field(default=None, max_length=20)
    message: str = ""
    data: str = Field(default="{}", description="Details as JSON.")


class AgentRow(SQLModel, table=True):
    """One participant, as last seen."""

    __tablename__ = AGENTS

    group: str = Field(primary_key=True, max_length=64)
    id: str = Field(primary_key=True, max_length=64)
    profile: str = Field(description="AgentProfile as JSON.")
    session: str = Field(max_length=64)
    state: str = Field(max_length=20)
    reliability: float = 1.0
    completed: int = 0
    failed: int = 0
    last_seen: float = 0.0
    mode: str = Field(default="active", max_length=20)
    usage: str = Field(default="{}", description="Usage as JSON.")
    stalled: int = 0
    credential: str | None = Field(
        default=None, max_length=64, description="Token id that registered it (identity on)."
    )


class GoalRow(SQLModel, table=True):
    """One goal, as last written."""

    __tablename__ = GOALS

    group: str = Field(primary_key=True, max_length=64)
    id: str = Field(primary_key=True, max_length=64)
    seq: int = Field(index=True, description="Submission order.")
    state: str = Field(max_length=20)
    spec: str = Field(description="GoalSpec as JSON.")
    plan: str | None = Field(default=None, description="Plan as JSON.")
    task_ids: str = Field(default="[]", description="Board task ids (JSON list).")
    usage: str = Field(default="{}", description="Usage as JSON.")
    planning_usage: str = Field(default="{}", description="Usage of planning calls as JSON.")
    deliverable: str | None = Field(default=None, description="Final output as JSON.")
    error: str | None = None
    planning_attempts: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0


class TokenRow(SQLModel, table=True):
    """An access token: its id, group and role, and hashes of its secret (never the secret).

    ``secret_hash`` (SHA-256; the secret is 192 random bits) checks REST and WebSocket calls;
    ``nats_hash`` (bcrypt) goes into the embedded nats-server's configuration."""

    __tablename__ = TOKENS

    id: str = Field(primary_key=True, max_length=64)
    group: str = Field(index=True, max_length=64)
    role: str = Field(max_length=20)
    agent_id: str | None = Field(default=None, max_length=64)
    note: str = Field(default="", max_length=200)
    secret_hash: str = Field(max_length=128)
    nats_hash: str = Field(max_length=128)
    created_at: float = 0.0
    revoked_at: float | None = None


class LeaseRow(SQLModel, table=True):
    """Which replica is active for a group: the holder, its fencing epoch (one more at each
    takeover) and when the lease lapses unless renewed (seconds, the database's clock)."""

    __tablename__ = LEASES

    group: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=128)
    epoch: int = 0
    expires_at: float = 0.0
    gateway: str | None = Field(default=None, max_length=200, description="Holder's gateway.")


class ReplicaRow(SQLModel, table=True):
    """A hub replica that is up: seen within the lease time (the database's clock)."""

    __tablename__ = REPLICAS

    id: str = Field(primary_key=True, max_length=128)
    seen_at: float = 0.0
    gateway: str | None = Field(default=None, max_length=200)
