"""Replicas: several hub processes on one store and one NATS, each group active on one.

Every replica runs ``Replicas.run``: every third of the lease time it says it is up, renews
the leases it holds, gives one up when it holds more than its fair share (the groups over
the replicas that are up, rounded up: so a replica that joins gets groups, and one that
leaves has its groups taken), and takes free or lapsed leases up to that share. Taking a
lease starts the group's ``Hub`` here (it loads the board from the store, as a restarted
hub does: offers in flight are offered again, running attempts stay with agents that come
back); losing it stops the hub.

Safety does not rest on timing: every write carries the lease (``Store.apply`` checks its
epoch in the same transaction), so a replica that was frozen past its lease and wakes up
cannot change anything, and steps down when its first write or renewal is refused. Timing
only keeps it quiet: a hub whose lease was last renewed more than ``SURE`` of the lease time
ago neither offers, sweeps nor publishes until it has renewed or stepped down; each renewal
wakes its scheduler, so what it held back is offered then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..store.lease import Lease, Leases
from ..store.store import Store
from .hub import Hub

log = logging.getLogger("clawhub.replica")

#: The part of the lease time after the last renewal during which a hub acts on its own.
SURE = 0.8

#: How a replica starts the hub of a group it took: (group, lease, may_act) → started hub.
StartHub = Callable[[str, Lease, Callable[[], bool]], Awaitable[Hub]]


def replica_name() -> str:
    """A replica id unique to this process: host, pid and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


@dataclass
class _Held:
    lease: Lease
    hub: Hub
    renewed: float
    """``time.monotonic()`` just before the last renewal that succeeded."""


class Replicas:
    """The groups this replica is active for, kept in ``active`` (the gateway's hubs)."""

    def __init__(
        self,
        replica_id: str,
        groups: list[str],
        store: Store,
        ttl: float,
        start_hub: StartHub,
        active: dict[str, Hub],
        gateway: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.id = replica_id
        self.groups = list(groups)
        self.ttl = ttl
        self.leases = Leases(store.engine)
        self.active = active
        self._start_hub = start_hub
        self._gateway = gateway
        self._held: dict[str, _Held] = {}
        self._task: asyncio.Task[None] | None = None
        self.steps = 0

    def sure(self, group: str) -> bool:
        """Whether this replica may act for ``group`` on its own now."""
        held = self._held.get(group)
        return held is not None and time.monotonic() < held.renewed + SURE * self.ttl

    def where(self, group: str) -> str:
        """Who is active for ``group``, in words (for a request this replica cannot serve)."""
        found = self.leases.holdings().get(group)
        if found is None or found.left <= 0:
            return f"no replica is active for group {group} right now; try again shortly"
        at = f" (gateway {found.gateway})" if found.gateway else ""
        return f"group {group} is active on replica {found.holder}{at}"

    async def start(self) -> None:
        """Take a first share of the groups, then keep at it in the background."""
        await self.step()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await self.step()
            except Exception:  # the store may be away for a moment: try again next time
                log.exception("replica %s: step failed", self.id)

    async def step(self) -> None:
        """One round: beat, renew, give up one over the share, take up to the share."""
        self.steps += 1
        gateway = self._gateway()
        await asyncio.to_thread(self.leases.beat, self.id, gateway)
        for group, held in list(self._held.items()):
            if held.hub.deposed.is_set():
                await self._drop(group, f"its write was refused: {held.hub.writer.fenced}")
                continue
            began = time.monotonic()
            try:
                ok = await asyncio.to_thread(self.leases.renew, held.lease, self.ttl)
            except Exception as exc:  # unsure: act no more once the lease would lapse
                log.warning("replica %s: renewing %s failed: %s", self.id, group, exc)
                if began > held.renewed + self.ttl:
                    await self._drop(group, "could not renew its lease in time")
                continue
            if ok:
                held.renewed = began
                # a scheduler pass that found this hub unsure offered nothing and waits for
                # a wake-up: with idle agents and no new task none would come
                held.hub.wake()
            else:
                await self._drop(group, "another replica took its lease")
        live = await asyncio.to_thread(self.leases.live, 2 * self.ttl)
        share = math.ceil(len(self.groups) / max(1, len(live)))
        if len(self._held) > share:
            group = sorted(self._held)[-1]
            await self._give_up(group, f"{len(live)} replicas up: its share is {share}")
        for group in self.groups:
            if len(self._held) >= share:
                break
            if group not in self._held:
                await self._take(group, gateway)

    async def _take(self, group: str, gateway: str | None) -> None:
        began = time.monotonic()
        lease = await asyncio.to_thread(self.leases.acquire, group, self.id, self.ttl, gateway)
        if lease is None:
            return
        try:
            hub = await self._start_hub(group, lease, lambda: self.sure(group))
        except Exception:
            log.exception("replica %s: the hub of %s would not start", self.id, group)
            await asyncio.to_thread(self.leases.release, lease)
            return
        self._held[group] = _Held(lease, hub, began)
        self.active[group] = hub
        hub.board.emit(
            "hub.active",
            message=f"replica {self.id} is active for group {group} (epoch {lease.epoch})",
            data={"replica": self.id, "epoch": lease.epoch},
        )
        log.info("replica %s: active for %s (epoch %d)", self.id, group, lease.epoch)

    async def _drop(self, group: str, why: str) -> None:
        """Step down: the lease is no longer ours (nothing of this hub is written)."""
        held = self._held.pop(group)
        self.active.pop(group, None)
        log.error("replica %s steps down from group %s: %s", self.id, group, why)
        with contextlib.suppress(Exception):
            await held.hub.stop()
        log.info("replica %s stood down from group %s; standing by", self.id, group)

    async def _give_up(self, group: str, why: str) -> None:
        """Hand a group over on purpose: stop its hub (its writes flushed), then release."""
        held = self._held.pop(group)
        self.active.pop(group, None)
        log.info("replica %s hands group %s over: %s", self.id, group, why)
        with contextlib.suppress(Exception):
            held.hub.board.emit("hub.handover", message=f"replica {self.id}: {why}")
            await held.hub.stop()
        await asyncio.to_thread(self.leases.release, held.lease)

    async def stop(self) -> None:
        """Stop every hub here and release its lease (a standby takes it at once)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for group in list(self._held):
            with contextlib.suppress(Exception):
                await self._give_up(group, "replica stopping")
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.leases.leave, self.id)

    @property
    def held(self) -> dict[str, int]:
        """The groups held here, with their epochs."""
        return {group: held.lease.epoch for group, held in self._held.items()}
