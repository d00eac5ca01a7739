"""The lease watcher: lost participants, stalled and timed-out attempts, passed deadlines.
The hub calls ``sweep`` every ``sweep_interval``. No I/O."""

from __future__ import annotations

import time

from protocols import TaskState

from ..settings import HubSettings
from .attempts import Attempts
from .credit import Credit
from .delegation import Delegation
from .lifecycle import HELD
from .participants import Participants
from .state import GroupState

S = TaskState


class Watcher:
    """Judges, on each sweep, who is lost and which attempts stalled or ran out of time."""

    def __init__(
        self,
        state: GroupState,
        settings: HubSettings,
        participants: Participants,
        attempts: Attempts,
        delegation: Delegation,
        credit: Credit,
    ) -> None:
        self.state = state
        self.settings = settings
        self.participants = participants
        self.attempts = attempts
        self.delegation = delegation
        self.credit = credit
        self.last_sweep = 0.0

    def sweep(self) -> None:
        """Detect lost participants, stalled and timed-out attempts, and passed deadlines."""
        state, settings = self.state, self.settings
        now = time.monotonic()
        gap = now - self.last_sweep if self.last_sweep else 0.0
        self.last_sweep = now
        if gap > 2 * settings.sweep_interval + 0.05 or not state.bus_up:
            # the hub itself was paused (busy loop, suspended laptop) or cut off from the bus:
            # beats and progress sent meanwhile never reached it, so that time must not count;
            # a watcher that stays late still ages every timer by one interval per sweep
            pause = gap if not state.bus_up else gap - settings.sweep_interval
            for agent in state.agents.values():
                agent.last_beat += pause
            for rec in state.active.values():
                rec.last_progress += pause
                rec.started += pause
                if rec.unconfirmed:
                    rec.unconfirmed += pause
            if not state.bus_up:
                return
        if state.recovering_until and now >= state.recovering_until:
            self.attempts.release_held_over()
        limit = self.participants.lost_after()
        for agent in list(state.agents.values()):
            if agent.state == "online" and now - agent.last_beat > limit:
                self.participants.lost(
                    agent.id,
                    f"no heartbeat for {now - agent.last_beat:.1f}s "
                    f"({settings.missed_beats} missed)",
                )
        self.credit.sweep(now)  # pushed attempts never seen running go back
        for rec in list(state.active.values()):
            if rec.state is not S.RUNNING:
                continue
            holder = state.agents.get(rec.assigned_to or "")
            # people send no progress, nor does an attempt waiting on the tasks it delegated:
            # only run timeouts and deadlines apply to them
            human = holder is not None and holder.human
            if self.delegation.waiting(rec):
                rec.last_progress = now  # its stall clock starts again when the wait ends
            t = rec.spec.timeouts
            stall = t.stall or settings.stall_timeout
            run = t.run or settings.run_timeout
            if not human and now - rec.last_progress > stall:
                self.attempts.revoke(
                    rec,
                    "stalled",
                    f"no progress for {now - rec.last_progress:.1f}s (stall timeout {stall:g}s)",
                )
            elif run is not None and now - rec.started > run:
                self.attempts.revoke(rec, "timed_out", f"attempt ran past its {run:g}s run timeout")
        wall = time.time()
        for rec in list(state.deadlines.values()):
            deadline = rec.spec.deadline
            if deadline is not None and wall > deadline and not rec.state.terminal:
                if rec.state in HELD:
                    self.attempts.end_attempt(rec, "timed_out", "deadline passed", notify=True)
                self.attempts.finish(rec, S.FAILED, "deadline passed")
