"""Leases: which replica is active for a group, with a fencing epoch.

One row per group in ``claw_leases``: the holder (a replica id), its epoch and the time the
lease lapses (the database's clock, so replicas on different machines agree). A replica
takes a free or lapsed lease with one atomic upsert, which adds one to the epoch when the
holder changes; it renews it before it lapses; every batch it writes checks, in the same
transaction, that the row still names it with its epoch (``check_fence``), so a deposed
replica that wakes up cannot change anything: its write fails with ``Fenced``. On
PostgreSQL the check holds the lease row until the commit, so a takeover waits for a write
in flight and then loads what it wrote.

``claw_replicas`` holds the replicas that are up (each beats every third of the lease
time), so each can take its fair share of the groups.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from ..errors import Fenced
from .tables import LEASES, REPLICAS


@dataclass(frozen=True, slots=True)
class Lease:
    """A group's lease as its holder took it."""

    group: str
    holder: str
    epoch: int


@dataclass(frozen=True, slots=True)
class Holding:
    """A group's lease as the table says: who holds it, and for how many more seconds."""

    group: str
    holder: str
    epoch: int
    left: float
    gateway: str | None


def _now(engine: Engine | Connection) -> str:
    """The database's clock in seconds since the epoch, as SQL."""
    if engine.dialect.name == "postgresql":
        return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
    return "((julianday('now') - 2440587.5) * 86400.0)"


def check_fence(conn: Connection, lease: Lease) -> None:
    """In a write's transaction: ``Fenced`` unless ``lease`` still holds its group."""
    found = conn.execute(
        text(
            f'UPDATE {LEASES} SET epoch = epoch WHERE "group" = :g AND holder = :h AND epoch = :e'
        ),
        {"g": lease.group, "h": lease.holder, "e": lease.epoch},
    )
    if found.rowcount != 1:
        raise Fenced(
            f"replica {lease.holder} no longer holds group {lease.group} (epoch "
            f"{lease.epoch}): another replica took over; this write is refused"
        )


class Leases:
    """The lease and replica tables of one store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._now = _now(engine)

    def acquire(self, group: str, holder: str, ttl: float, gateway: str | None) -> Lease | None:
        """Take ``group``'s lease if it is free, lapsed or already ours (then renewed);
        ``None`` if another replica holds it."""
        now = self._now
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    f'INSERT INTO {LEASES} ("group", holder, epoch, expires_at, gateway) '
                    f"VALUES (:g, :h, 1, {now} + :ttl, :gw) "
                    f'ON CONFLICT ("group") DO UPDATE SET holder = excluded.holder, '
                    f"epoch = CASE WHEN {LEASES}.holder = excluded.holder "
                    f"THEN {LEASES}.epoch ELSE {LEASES}.epoch + 1 END, "
                    "expires_at = excluded.expires_at, gateway = excluded.gateway "
                    f"WHERE {LEASES}.holder = excluded.holder OR {LEASES}.expires_at < {now}"
                ),
                {"g": group, "h": holder, "ttl": ttl, "gw": gateway},
            )
            row = conn.execute(
                text(f'SELECT holder, epoch FROM {LEASES} WHERE "group" = :g'), {"g": group}
            ).one()
        return Lease(group, holder, int(row.epoch)) if row.holder == holder else None

    def renew(self, lease: Lease, ttl: float) -> bool:
        """Push the lapse ``ttl`` seconds ahead; false when the lease is no longer ours."""
        with self.engine.begin() as conn:
            done = conn.execute(
                text(
                    f"UPDATE {LEASES} SET expires_at = {self._now} + :ttl "
                    'WHERE "group" = :g AND holder = :h AND epoch = :e'
                ),
                {"g": lease.group, "h": lease.holder, "e": lease.epoch, "ttl": ttl},
            )
        return done.rowcount == 1

    def release(self, lease: Lease) -> None:
        """Give the lease up now (another replica may take it at once)."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    f"UPDATE {LEASES} SET expires_at = 0 "
                    'WHERE "group" = :g AND holder = :h AND epoch = :e'
                ),
                {"g": lease.group, "h": lease.holder, "e": lease.epoch},
            )

    def holdings(self) -> dict[str, Holding]:
        """Every group's lease, by group."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f'SELECT "group", holder, epoch, expires_at - {self._now} AS left_s, '
                    f"gateway FROM {LEASES}"
                )
            ).all()
        return {
            r.group: Holding(r.group, r.holder, int(r.epoch), float(r.left_s), r.gateway)
            for r in rows
        }

    def beat(self, replica: str, gateway: str | None) -> None:
        """Say that ``replica`` is up."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO {REPLICAS} (id, seen_at, gateway) VALUES (:r, {self._now}, :gw) "
                    "ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, "
                    "gateway = excluded.gateway"
                ),
                {"r": replica, "gw": gateway},
            )

    def live(self, within: float) -> list[str]:
        """The replicas seen in the last ``within`` seconds, by id."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(f"SELECT id FROM {REPLICAS} WHERE seen_at > {self._now} - :w ORDER BY id"),
                {"w": within},
            ).all()
        return [r.id for r in rows]

    def leave(self, replica: str) -> None:
        """``replica`` is going away (its leases are released separately)."""
        with self.engine.begin() as conn:
            conn.execute(text(f"DELETE FROM {REPLICAS} WHERE id = :r"), {"r": replica})
