"""Matching tasks to participants: pure functions, no I/O.

First the hard filters (skills and minimum levels, free capacity, constraints), then a
score. Candidates come from ``SkillIndex`` so a match never looks at participants that
lack a required skill.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from protocols import CLEARANCE_RANK, AgentProfile, CandidateScore, TaskSpec
from protocols._base import trusted

#: litellm provider prefixes whose models run on the participant's own machine.
LOCAL_MODEL_PREFIXES = ("ollama/", "ollama_chat/", "lm_studio/", "llamafile/", "local/")

WEIGHT_SKILL = 0.5
WEIGHT_LOAD = 0.2
WEIGHT_RELIABILITY = 0.2
WEIGHT_COST = 0.1


@dataclass(frozen=True, slots=True)
class Candidate:
    """What the matcher needs to know of one participant."""

    profile: AgentProfile
    load: int
    reliability: float


def is_local_model(model: str | None) -> bool:
    """Plain code (no model) and local model servers keep data on the machine."""
    return model is None or model.startswith(LOCAL_MODEL_PREFIXES)


def model_allowed(model: str | None, allowed: list[str]) -> bool:
    """True when ``model`` starts with one of the ``allowed`` prefixes (``none`` = plain code)."""
    if not allowed:
        return True
    if model is None:
        return "none" in allowed
    return any(model.startswith(prefix) for prefix in allowed if prefix != "none")


def reject_reason(spec: TaskSpec, cand: Candidate) -> str | None:
    """Why ``cand`` may not take ``spec`` (a hard filter failed), or None if it may."""
    p = cand.profile
    for skill, minimum in spec.skills.items():
        level = p.skills.get(skill)
        if level is None:
            return f"lacks skill {skill}"
        if level < minimum:
            return f"skill {skill} {level:.2f} < {minimum:.2f}"
    if cand.load >= p.capacity:
        return "no free capacity"
    c = spec.constraints
    if c.agents and p.id not in c.agents:
        return "not among the pinned agents"
    if p.id in c.exclude_agents:
        return "excluded by the task"
    if c.kinds and p.kind not in c.kinds:
        return f"kind {p.kind} not allowed"
    if c.devices and p.device not in c.devices:
        return f"device {p.device} not allowed"
    missing = [label for label in c.labels if label not in p.labels]
    if missing:
        return f"missing labels {', '.join(missing)}"
    if CLEARANCE_RANK[p.clearance] < CLEARANCE_RANK[c.data]:
        return f"clearance {p.clearance} below {c.data} data"
    if c.local_only and not is_local_model(p.model):
        return f"model {p.model} is not local"
    if not model_allowed(p.model, c.models):
        return f"model {p.model} not allowed"
    if c.max_cost is not None and p.cost > c.max_cost:
        return f"cost {p.cost} above {c.max_cost}"
    return None


class Scored(NamedTuple):
    """A candidate's score and its parts: plain floats, cheap to make by the hundred."""

    score: float
    agent_id: str
    skill: float
    load: float
    reliability: float
    cost: float

    def wire(self) -> CandidateScore:
        """The wire form, kept in an attempt's ``why``."""
        return trusted(  # plain floats and a registered participant's id: no validation
            CandidateScore,
            {
                "agent_id": self.agent_id,
                "score": round(self.score, 6),
                "skill": round(self.skill, 6),
                "load": round(self.load, 6),
                "reliability": round(self.reliability, 6),
                "cost": round(self.cost, 6),
            },
        )


def _total(skill: float, load: float, reliability: float, cheap: float) -> float:
    """The weighted score (one expression, so that ``Ladder`` and ``score`` agree exactly)."""
    return (
        WEIGHT_SKILL * skill
        + WEIGHT_LOAD * load
        + WEIGHT_RELIABILITY * reliability
        + WEIGHT_COST * cheap
    )


def score(spec: TaskSpec, cand: Candidate) -> Scored:
    """Score a candidate that passed the hard filters; higher is better."""
    p = cand.profile
    skill = sum(p.skills[s] for s in spec.skills) / len(spec.skills) if spec.skills else 0.5
    load = 1.0 - cand.load / p.capacity
    cheap = 1.0 / (1.0 + p.cost)
    total = _total(skill, load, cand.reliability, cheap)
    return Scored(total, p.id, skill, load, cand.reliability, cheap)


def rank(spec: TaskSpec, candidates: Iterable[Candidate]) -> list[Scored]:
    """Scores of every candidate that passes the hard filters, best first (ties by id)."""
    scored = [score(spec, c) for c in candidates if reject_reason(spec, c) is None]
    if spec.prefer_cheap:  # the cheapest qualified participant first, then the best
        scored.sort(key=lambda s: (-s.cost, -s.score, s.agent_id))
    else:
        scored.sort(key=lambda s: (-s.score, s.agent_id))
    return scored


class SkillIndex:
    """Skill name → ids of participants that have it, so candidates are found without a scan."""

    def __init__(self) -> None:
        self._by_skill: dict[str, set[str]] = {}
        self._skills_of: dict[str, tuple[str, ...]] = {}

    def add(self, profile: AgentProfile) -> None:
        """Index a participant (replacing an earlier profile with the same id)."""
        self.remove(profile.id)
        self._skills_of[profile.id] = tuple(profile.skills)
        for skill in profile.skills:
            self._by_skill.setdefault(skill, set()).add(profile.id)

    def remove(self, agent_id: str) -> None:
        """Forget a participant."""
        for skill in self._skills_of.pop(agent_id, ()):
            ids = self._by_skill[skill]
            ids.discard(agent_id)
            if not ids:
                del self._by_skill[skill]

    def candidates(self, skills: Iterable[str]) -> set[str]:
        """Ids of participants that have every one of ``skills`` (any level)."""
        wanted = list(skills)
        if not wanted:
            return set(self._skills_of)
        sets = [self._by_skill.get(s, set()) for s in wanted]
        sets.sort(key=len)
        out = set(sets[0])
        for other in sets[1:]:
            out &= other
            if not out:
                break
        return out

    def __len__(self) -> int:
        return len(self._skills_of)


class Ladder:
    """For each skill, the participants that take work now, best first for a task that
    needs that one skill.

    Such a task scores a participant by the participant alone (its level in the skill, its
    load, reliability and cost), so keeping each skill's participants sorted by that score
    puts the best match at the top: matching a one-skill task looks at a few participants,
    however many are registered. ``update`` is called whenever one of those inputs changes.
    Also counts the free capacity of every online participant (paused ones too: a task
    may be pinned to one).
    """

    def __init__(self) -> None:
        self._rungs: dict[str, list[tuple[float, str]]] = {}
        self._entries: dict[str, list[tuple[str, tuple[float, str]]]] = {}
        self._free: dict[str, int] = {}
        self.free = 0
        """Free capacity of every online participant."""

    def update(
        self, profile: AgentProfile, load: int, reliability: float, online: bool, takes: bool
    ) -> None:
        """Re-rank a participant (``takes``: online, active and with free capacity)."""
        self.remove(profile.id)
        free = profile.capacity - load
        if online and free > 0:
            self._free[profile.id] = free
            self.free += free
        if not takes:
            return
        load_part = 1.0 - load / profile.capacity
        cheap = 1.0 / (1.0 + profile.cost)
        entries = []
        for skill, level in profile.skills.items():
            entry = (-_total(level, load_part, reliability, cheap), profile.id)
            insort(self._rungs.setdefault(skill, []), entry)
            entries.append((skill, entry))
        self._entries[profile.id] = entries

    def remove(self, agent_id: str) -> None:
        """Take a participant off every rung."""
        self.free -= self._free.pop(agent_id, 0)
        for skill, entry in self._entries.pop(agent_id, ()):
            rung = self._rungs[skill]
            i = bisect_left(rung, entry)
            if i < len(rung) and rung[i] == entry:
                del rung[i]

    def ranked(self, skill: str) -> list[tuple[float, str]]:
        """``(-score, agent id)`` of the participants with ``skill`` that take work, best
        first (ties by id, as ``rank``). Do not change the board while iterating."""
        return self._rungs.get(skill, [])
