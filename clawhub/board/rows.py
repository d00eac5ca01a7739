"""What the board asks the store to keep: rows as plain values, named by table. No I/O.

The board never builds a database row: it hands the hub a ``Write`` (a table name and its
values) or a ``Later`` (a record whose values are read when the writer takes its batch),
and ``clawhub.store`` maps them onto its tables.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter

TASKS = "claw_tasks"
EVENTS = "claw_events"
AGENTS = "claw_agents"
TOKENS = "claw_tokens"
GOALS = "claw_goals"


@dataclass(frozen=True, slots=True)
class Write:
    """One row to write, as plain values (cheaper to build than a SQLModel instance)."""

    table: str
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Later:
    """A row of a record whose values are read when the writer takes its batch: then the
    record's latest state, serialised once however often it was saved in that batch."""

    table: str
    key: tuple[str, str]
    """(group, id): the row's primary key."""
    build: Callable[[], dict[str, Any]]

    @property
    def values(self) -> dict[str, Any]:
        """The record's values now."""
        return self.build()


#: What the board hands the hub to write.
Change = Write | Later


def resolve(batch: Sequence[Any]) -> list[Any]:
    """``batch`` with each ``Later`` read (the last one of each key; the earlier ones would
    be overwritten by it). Call it where the records live (the hub's loop), not in the
    writer thread."""
    seen: set[tuple[str, str, str]] = set()
    out: list[Any] = []
    for row in reversed(batch):
        if isinstance(row, Later):
            key = (row.table, *row.key)
            if key in seen:
                continue
            seen.add(key)
            out.append(Write(row.table, row.build()))
        else:
            out.append(row)
    out.reverse()
    return out


_JSON: TypeAdapter[Any] = TypeAdapter(Any)


def dumps(value: Any) -> str:
    """Compact JSON for a text column (pydantic's Rust encoder: 2-3x the standard library's
    speed on the hub's small documents; the same text but for float exponents, ``1e-7``)."""
    return _JSON.dump_json(value).decode()
