"""Matching ready tasks to participants: who may take a task, who is best, and the offer
that makes the task ``assigned``. The rules of a single match are the pure functions of
``matching``; this is the pass over the ready queue that uses them. No I/O.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable

from pydantic import JsonValue

from protocols import AttemptInfo, CandidateScore, TaskState

from ..settings import HubSettings
from .matching import Candidate, Scored, rank, reject_reason, score
from .records import AgentRecord, TaskRecord
from .sink import Offer
from .state import GroupState, Journal

#: Runs an attempt at once (``Attempts.start``): a pushed one does not wait for an accept;
#: the flag false: the caller's own event announces it.
Start = Callable[[TaskRecord, bool], None]

S = TaskState


def no_cost_limit(rec: TaskRecord) -> float | None:
    """A task with no budget over it: any participant's cost is fine."""
    return None


class Matcher:
    """Picks the participant for each ready task and turns the choice into an ``Offer``."""

    def __init__(self, state: GroupState, journal: Journal, settings: HubSettings) -> None:
        self.state = state
        self.journal = journal
        self.settings = settings
        self.cost_limit: Callable[[TaskRecord], float | None] = no_cost_limit
        """The most a participant may cost for a task (set by the goals: their budgets)."""
        self.start: Start | None = None
        """Starts a pushed attempt (set by the board: ``Attempts.start``)."""

    def next_offers(self, now: float) -> list[Offer]:
        """Match ready tasks to participants with free capacity; mark each one assigned."""
        state = self.state
        if not state.ready or now < state.recovering_until:
            return []
        for waiting in list(state.backoff.values()):
            if waiting.not_before <= now or state.ready.get(waiting.id) is not waiting:
                waiting.not_before = 0.0  # a back-off that has passed is over
                del state.backoff[waiting.id]
        offers: list[Offer] = []
        barren: set[tuple[tuple[str, float], ...]] = set()
        if state.ladder.free <= 0:
            return offers
        # ready tasks by priority, then submission order; those left ready go back
        queue, later, seen = state.queue, [], set[str]()
        while queue and state.ladder.free > 0:  # every assignment below takes one
            entry = heapq.heappop(queue)
            rec = state.ready.get(entry[2])
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
            ranked = self.rank(rec)
            if not ranked:
                if key is not None:
                    barren.add(key)
                continue
            choices = [s for s in ranked if s.agent_id not in rec.declined]
            if not choices:
                # every qualified participant declined: wait a little, then ask again
                rec.declined.clear()
                rec.not_before = now + self.settings.decline_backoff
                state.backoff[rec.id] = rec
                continue
            best = choices[0]
            why = [s.wire() for s in ranked[:3]]
            offers.append(self.assign(rec, state.agents[best.agent_id], why))
            later.pop()
        for entry in later:
            heapq.heappush(queue, entry)
        return offers

    def next_retry(self) -> float | None:
        """Earliest monotonic time a backed-off ready task may be offered again."""
        times = [r.not_before for r in self.state.backoff.values() if r.not_before > 0]
        return min(times) if times else None

    def _climb(self, rec: TaskRecord, skill: str, limit: float | None) -> list[Scored]:
        """``rank`` for a task that needs one skill: walk that skill's ladder from the top
        until the best candidate not declined and the top three are known."""
        spec = rec.spec
        ranked: list[Scored] = []
        for prefer in (True, False):
            skipped = chosen = False
            for _, agent_id in self.state.ladder.ranked(skill):
                a = self.state.agents[agent_id]
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

    def rank(self, rec: TaskRecord) -> list[Scored]:
        """The participants that may take ``rec`` now, best first."""
        agents = self.state.agents
        if rec.pinned is not None:
            agent = agents.get(rec.pinned)
            if agent is None or agent.state != "online":
                rec.pinned = None  # gone: the matcher chooses again
            elif agent.free <= 0:
                return []  # wait for the chosen participant to have room
            else:
                return rank(rec.spec, [Candidate(agent.profile, agent.load, agent.reliability)])
        limit = self.cost_limit(rec)
        if len(rec.spec.skills) == 1:
            [skill] = rec.spec.skills
            return self._climb(rec, skill, limit)
        ids = self.state.index.candidates(rec.spec.skills)
        cands = [
            Candidate(a.profile, a.load, a.reliability)
            for a in (agents[i] for i in ids)
            if a.takes_work and (limit is None or a.profile.cost <= limit)
        ]
        preferred = [c for c in cands if c.profile.id not in rec.excluded]
        ranked = rank(rec.spec, preferred)
        if not ranked and len(preferred) < len(cands):
            # only participants that failed this task before qualify: better them than never
            ranked = rank(rec.spec, cands)
        return ranked

    @staticmethod
    def qualifies(rec: TaskRecord, agent: AgentRecord) -> str | None:
        """Why ``agent`` may not take ``rec`` (hard filters, capacity aside), or None."""
        return reject_reason(rec.spec, Candidate(agent.profile, 0, agent.reliability))

    def assign(self, rec: TaskRecord, agent: AgentRecord, why: list[CandidateScore]) -> Offer:
        """A new attempt of ``rec`` for ``agent``: the task is assigned; the offer goes out.
        To a credit agent (``Register.credit``) it is pushed instead: assigned and running at
        once, unconfirmed until the agent shows it runs it (``TaskRecord.unconfirmed``)."""
        pushed = agent.credit and self.start is not None
        self.state.move(rec, S.ASSIGNED)
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
        t = rec.spec.timeouts
        accept = t.accept or self.settings.accept_timeout
        rec.pushed = pushed
        data: dict[str, JsonValue] = {"why": [w.model_dump(mode="json") for w in why]}
        if pushed and self.start is not None:
            self.start(rec, False)  # saves the record; the event below says it runs
            # its first heartbeat after it took the attempt lists it: that confirms it
            rec.unconfirmed = rec.started + accept + self.settings.heartbeat_interval
            data["pushed"] = True
        self.journal.emit(
            "task.assigned",  # pushed: assigned and running, one event (state ``running``)
            task=rec,
            agent_id=agent.id,
            message=f"{'pushed' if pushed else 'offered'} to {agent.id}",
            data=data,
        )
        if not pushed:
            self.journal.save(rec)
        return Offer(
            task=rec,
            agent_id=agent.id,
            attempt=rec.attempt,
            accept_timeout=accept,
            stall_timeout=t.stall or self.settings.stall_timeout,
            run_timeout=t.run or self.settings.run_timeout,
            dependency_outputs={d: self.state.tasks[d].output for d in rec.spec.depends_on},
            feedback=[v for v in rec.verdicts if not v.accepted][-5:],
            pushed=pushed,
            batch=pushed and agent.batches,
        )
