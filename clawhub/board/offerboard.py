"""The first layer of the board: its state, the events and writes it hands the hub, and the
matching of ready tasks to participants (offers). No I/O.

The hub feeds the board messages and clock ticks; the board answers with replies and tells
the hub what to write, publish and cancel through a ``Sink``. Keeping the rules synchronous
and free of the bus makes each one testable on its own and every change atomic in the loop.
"""

from __future__ import annotations

import heapq
import time

from pydantic import JsonValue

from protocols import (
    AttemptInfo,
    CandidateScore,
    Event,
    ProtocolError,
    TaskState,
)

from ..settings import HubSettings
from ..store.store import EVENTS, Write, dumps
from .lifecycle import HELD, transition
from .matching import Candidate, Ladder, Scored, SkillIndex, rank, reject_reason, score
from .records import AgentRecord, AgentTable, TaskRecord
from .sink import Offer, Sink

S = TaskState


class OfferBoard:
    """State of one Claw Group, its events and writes, and matching. No I/O."""

    def __init__(self, group: str, settings: HubSettings, sink: Sink, hub_id: str) -> None:
        self.group = group
        self.settings = settings
        self.sink = sink
        self.hub_id = hub_id
        self.tasks: dict[str, TaskRecord] = {}
        self.ladder = Ladder()
        self.agents: dict[str, AgentRecord] = AgentTable(self._rerank)
        self.index = SkillIndex()
        self._ready: dict[str, TaskRecord] = {}
        self._queue: list[tuple[int, int, str]] = []
        """``(-priority, seq, id)`` of ready tasks, a heap; entries of tasks no longer
        ready are dropped when they come up."""
        self._backoff: dict[str, TaskRecord] = {}
        """Ready tasks that every candidate declined, waiting for ``not_before``."""
        self._active: dict[str, TaskRecord] = {}
        self._deadlines: dict[str, TaskRecord] = {}
        self._event_seq = 0
        self._task_seq = 0
        self._last_sweep = 0.0
        self.bus_up = True
        """False while the hub is cut off from NATS: nobody is judged lost meanwhile."""

    # ------------------------------------------------------------------ events and writes

    def emit(
        self,
        kind: str,
        *,
        task: TaskRecord | None = None,
        task_id: str | None = None,
        agent_id: str | None = None,
        attempt: int | None = None,
        message: str = "",
        data: dict[str, JsonValue] | None = None,
        store: bool = True,
    ) -> Event:
        """Publish an event and, unless ``store`` is false, append it to the event log."""
        seq = 0
        if store:
            self._event_seq += 1
            seq = self._event_seq
        event = Event(
            seq=seq,
            ts=time.time(),
            kind=kind,
            task_id=task.id if task else task_id,
            agent_id=agent_id,
            attempt=attempt if attempt is not None else (task.attempt if task else None),
            state=task.state.value if task else None,
            message=message,
            data=data or {},
        )
        if store:
            self.sink.write(
                Write(
                    EVENTS,
                    {
                        "group": self.group,
                        "seq": seq,
                        "ts": event.ts,
                        "kind": kind,
                        "task_id": event.task_id,
                        "agent_id": agent_id,
                        "attempt": event.attempt,
                        "state": event.state,
                        "message": message,
                        "data": dumps(event.data) if event.data else "{}",
                    },
                )
            )
        self.sink.publish(event)
        return event

    def refused(self, subject: str, error: ProtocolError, agent_id: str | None = None) -> None:
        """Record a refused message in the event log (bad input is never silent)."""
        self.emit(
            "message.refused",
            agent_id=agent_id,
            message=error.message,
            data={"subject": subject, "code": error.code.value},
        )

    def _save(self, rec: TaskRecord) -> None:
        rec.updated_at = time.time()
        self.sink.write(rec.write(self.group))

    def _save_agent(self, agent: AgentRecord) -> None:
        self.sink.write(agent.write(self.group))

    def _enqueue(self, rec: TaskRecord) -> None:
        """Add a ready task to the matcher's queue."""
        if rec.id not in self._ready:
            heapq.heappush(self._queue, (-rec.spec.priority, rec.seq, rec.id))
        self._ready[rec.id] = rec

    def _move(self, rec: TaskRecord, dst: TaskState) -> None:
        rec.state = transition(rec.id, rec.state, dst)
        if dst is S.READY:
            self._enqueue(rec)
            self.sink.wake()
        else:
            self._ready.pop(rec.id, None)
        if dst in HELD:
            self._active[rec.id] = rec
        else:
            self._active.pop(rec.id, None)
        if dst.terminal:
            self._deadlines.pop(rec.id, None)

    # ------------------------------------------------------------------ matching and offers

    def next_offers(self, now: float) -> list[Offer]:
        """Match ready tasks to participants with free capacity; mark each one assigned."""
        if not self._ready:
            return []
        for waiting in list(self._backoff.values()):
            if waiting.not_before <= now or self._ready.get(waiting.id) is not waiting:
                waiting.not_before = 0.0  # a back-off that has passed is over
                del self._backoff[waiting.id]
        offers: list[Offer] = []
        barren: set[tuple[tuple[str, float], ...]] = set()
        if self.ladder.free <= 0:
            return offers
        # ready tasks by priority, then submission order; those left ready go back
        queue, later, seen = self._queue, [], set[str]()
        while queue and self.ladder.free > 0:  # every assignment below takes one
            entry = heapq.heappop(queue)
            rec = self._ready.get(entry[2])
            if rec is None or entry[2] in seen:
                continue  # no longer ready, or a second entry of a task met already
            seen.add(entry[2])
            later.append(entry)
            if rec.not_before > now:
                continue
            # tasks that need the same skills as one that found nobody free find nobody too
            plain = not (rec.excluded or rec.declined or rec.pinned)
            key = rec.match_key if plain and not rec.spec.goal else None
            if key is not None and key in barren:
                continue
            ranked = self._rank(rec)
            if not ranked:
                if key is not None:
                    barren.add(key)
                continue
            choices = [s for s in ranked if s.agent_id not in rec.declined]
            if not choices:
                # every qualified participant declined: wait a little, then ask again
                rec.declined.clear()
                rec.not_before = now + self.settings.decline_backoff
                self._backoff[rec.id] = rec
                continue
            best = choices[0]
            why = [s.wire() for s in ranked[:3]]
            offers.append(self._assign(rec, self.agents[best.agent_id], why))
            later.pop()
        for entry in later:
            heapq.heappush(queue, entry)
        return offers

    def next_retry(self) -> float | None:
        """Earliest monotonic time a backed-off ready task may be offered again."""
        times = [r.not_before for r in self._backoff.values() if r.not_before > 0]
        return min(times) if times else None

    def _rerank(self, agent: AgentRecord) -> None:
        online = agent.state == "online"
        self.ladder.update(agent.profile, agent.load, agent.reliability, online, agent.takes_work)

    def _climb(self, rec: TaskRecord, skill: str, limit: float | None) -> list[Scored]:
        """``_rank`` for a task that needs one skill: walk that skill's ladder from the top
        until the best candidate not declined and the top three are known."""
        spec = rec.spec
        ranked: list[Scored] = []
        for prefer in (True, False):
            skipped = chosen = False
            for _, agent_id in self.ladder.ranked(skill):
                a = self.agents[agent_id]
                if limit is not None and a.profile.cost > limit:
                    continue
                if prefer and agent_id in rec.excluded:
                    skipped = True
                    continue
                cand = Candidate(a.profile, a.load, a.reliability)
                if reject_reason(spec, cand) is not None:
                    continue
                ranked.append(score(spec, cand))
                chosen = chosen or agent_id not in rec.declined
                if chosen and len(ranked) >= 3:
                    break
            if ranked or not skipped:
                break
            # only participants that failed this task before qualify: better them than never
        return ranked

    def _rank(self, rec: TaskRecord) -> list[Scored]:
        if rec.pinned is not None:
            agent = self.agents.get(rec.pinned)
            if agent is None or agent.state != "online":
                rec.pinned = None  # gone: the matcher chooses again
            elif agent.free <= 0:
                return []  # wait for the chosen participant to have room
            else:
                return rank(rec.spec, [Candidate(agent.profile, agent.load, agent.reliability)])
        limit = self._cost_limit(rec)
        if len(rec.spec.skills) == 1:
            [skill] = rec.spec.skills
            return self._climb(rec, skill, limit)
        ids = self.index.candidates(rec.spec.skills)
        cands = [
            Candidate(a.profile, a.load, a.reliability)
            for a in (self.agents[i] for i in ids)
            if a.takes_work and (limit is None or a.profile.cost <= limit)
        ]
        preferred = [c for c in cands if c.profile.id not in rec.excluded]
        ranked = rank(rec.spec, preferred)
        if not ranked and len(preferred) < len(cands):
            # only participants that failed this task before qualify: better them than never
            ranked = rank(rec.spec, cands)
        return ranked

    def _cost_limit(self, rec: TaskRecord) -> float | None:
        """Most a participant may cost for this task (a goal's remaining budget)."""
        return None

    def qualifies(self, rec: TaskRecord, agent: AgentRecord) -> str | None:
        """Why ``agent`` may not take ``rec`` (hard filters, capacity aside), or None."""
        return reject_reason(rec.spec, Candidate(agent.profile, 0, agent.reliability))

    def _assign(self, rec: TaskRecord, agent: AgentRecord, why: list[CandidateScore]) -> Offer:
        self._move(rec, S.ASSIGNED)
        rec.pinned = None
        rec.attempt += 1
        rec.assigned_to = agent.id
        agent.held[rec.id] = rec.attempt
        now = time.time()
        rec.history.append(
            AttemptInfo(
                attempt=rec.attempt, agent_id=agent.id, outcome="offered", offered_at=now, why=why
            )
        )
        self.emit(
            "task.assigned",
            task=rec,
            agent_id=agent.id,
            message=f"offered to {agent.id}",
            data={"why": [w.model_dump(mode="json") for w in why]},
        )
        self._save(rec)
        t = rec.spec.timeouts
        return Offer(
            task=rec,
            agent_id=agent.id,
            attempt=rec.attempt,
            accept_timeout=t.accept or self.settings.accept_timeout,
            stall_timeout=t.stall or self.settings.stall_timeout,
            run_timeout=t.run or self.settings.run_timeout,
            dependency_outputs={d: self.tasks[d].output for d in rec.spec.depends_on},
            feedback=[v for v in rec.verdicts if not v.accepted][-5:],
        )

    def _current(self, task_id: str, attempt: int, agent_id: str) -> TaskRecord | None:
        rec = self.tasks.get(task_id)
        if (
            rec is None
            or rec.attempt != attempt
            or rec.assigned_to != agent_id
            or rec.state not in HELD
        ):
            return None
        return rec
