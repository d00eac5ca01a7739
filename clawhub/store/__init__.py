"""The durable store: SQLModel tables on SQLite (the default, WAL) or PostgreSQL, the
mapping between rows and the board's records, and batched writes."""

from __future__ import annotations

from .store import AgentRow, EventRow, GoalRow, Row, Store, TaskRow, TokenRow, Write

__all__ = ["AgentRow", "EventRow", "GoalRow", "Row", "Store", "TaskRow", "TokenRow", "Write"]
