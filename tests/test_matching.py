"""The matcher: hard filters, scores, ranking and the skill index. Pure, no I/O."""

from __future__ import annotations

from typing import Any

import pytest

from clawhub.board.matching import (
    Candidate,
    SkillIndex,
    is_local_model,
    model_allowed,
    rank,
    reject_reason,
    score,
)
from protocols import AgentProfile, Constraints, TaskSpec


def profile(agent_id: str = "a1", **fields: Any) -> AgentProfile:
    """A profile with sensible defaults: one python skill at 0.8, capacity 2."""
    values: dict[str, Any] = {
        "id": agent_id,
        "name": agent_id,
        "skills": {"python": 0.8},
        "capacity": 2,
    }
    values.update(fields)
    return AgentProfile(**values)


def cand(agent_id: str = "a1", load: int = 0, reliability: float = 0.9, **fields: Any) -> Candidate:
    return Candidate(profile(agent_id, **fields), load, reliability)


def spec(skills: dict[str, float] | None = None, **constraints: Any) -> TaskSpec:
    return TaskSpec(
        title="t",
        skills={"python": 0.5} if skills is None else skills,
        constraints=Constraints(**constraints),
    )


# ---------------------------------------------------------------- hard filters


def test_a_qualified_candidate_passes() -> None:
    assert reject_reason(spec(), cand()) is None


def test_missing_skill_is_refused() -> None:
    reason = reject_reason(spec({"python": 0.5, "rust": 0.1}), cand())
    assert reason == "lacks skill rust"


def test_level_below_minimum_is_refused() -> None:
    reason = reject_reason(spec({"python": 0.9}), cand())
    assert reason is not None
    assert reason.startswith("skill python")


def test_level_equal_to_minimum_passes() -> None:
    assert reject_reason(spec({"python": 0.8}), cand()) is None


def test_a_task_without_skills_takes_anyone() -> None:
    assert reject_reason(spec({}), cand(skills={})) is None


@pytest.mark.parametrize(("load", "ok"), [(0, True), (1, True), (2, False), (5, False)])
def test_free_capacity_is_required(load: int, ok: bool) -> None:
    reason = reject_reason(spec(), cand(load=load, capacity=2))
    assert (reason is None) is ok
    if not ok:
        assert reason == "no free capacity"


def test_labels_must_all_be_carried() -> None:
    task = spec(labels=["gpu", "eu"])
    assert reject_reason(task, cand(labels=["gpu", "eu", "x"])) is None
    reason = reject_reason(task, cand(labels=["gpu"]))
    assert reason is not None
    assert "eu" in reason
    assert "gpu" not in reason.removeprefix("missing labels ")


@pytest.mark.parametrize(
    ("device", "allowed", "ok"),
    [
        ("laptop", [], True),
        ("laptop", ["laptop", "cloud"], True),
        ("mobile", ["laptop", "cloud"], False),
        ("cloud", ["cloud"], True),
    ],
)
def test_devices(device: str, allowed: list[str], ok: bool) -> None:
    reason = reject_reason(spec(devices=allowed), cand(device=device))
    assert (reason is None) is ok


@pytest.mark.parametrize(
    ("kind", "allowed", "ok"),
    [
        ("agent", [], True),
        ("human", [], True),
        ("human", ["agent"], False),
        ("agent", ["agent"], True),
        ("human", ["human", "agent"], True),
    ],
)
def test_kinds(kind: str, allowed: list[str], ok: bool) -> None:
    reason = reject_reason(spec(kinds=allowed), cand(kind=kind))
    assert (reason is None) is ok


@pytest.mark.parametrize(
    ("clearance", "data", "ok"),
    [
        ("public", "public", True),
        ("public", "internal", False),
        ("public", "private", False),
        ("internal", "public", True),
        ("internal", "internal", True),
        ("internal", "private", False),
        ("private", "public", True),
        ("private", "internal", True),
        ("private", "private", True),
    ],
)
def test_data_clearance(clearance: str, data: str, ok: bool) -> None:
    reason = reject_reason(spec(data=data), cand(clearance=clearance))
    assert (reason is None) is ok
    if not ok:
        assert reason is not None
        assert "clearance" in reason


@pytest.mark.parametrize(
    ("model", "ok"),
    [
        (None, True),
        ("ollama/llama3", True),
        ("ollama_chat/qwen", True),
        ("anthropic/claude-sonnet-4", False),
        ("gpt-4o", False),
        ("moonshot/kimi-k2.6", False),
    ],
)
def test_local_only(model: str | None, ok: bool) -> None:
    reason = reject_reason(spec(local_only=True), cand(model=model))
    assert (reason is None) is ok
    assert is_local_model(model) is ok
    # without the constraint every model is fine
    assert reject_reason(spec(), cand(model=model)) is None


@pytest.mark.parametrize(
    ("model", "allowed", "ok"),
    [
        ("anthropic/claude", [], True),
        (None, [], True),
        ("anthropic/claude", ["anthropic/"], True),
        ("openai/gpt-4o", ["anthropic/"], False),
        ("gpt-4o-mini", ["gpt-4o"], True),
        (None, ["anthropic/"], False),
        (None, ["none"], True),
        (None, ["anthropic/", "none"], True),
        ("anthropic/claude", ["none"], False),
        ("ollama/llama3", ["none", "ollama/"], True),
        # "none" is a keyword, not a prefix of model strings
        ("none-such/model", ["none"], False),
    ],
)
def test_models_prefixes(model: str | None, allowed: list[str], ok: bool) -> None:
    assert model_allowed(model, allowed) is ok
    reason = reject_reason(spec(models=allowed), cand(model=model))
    assert (reason is None) is ok


def test_pinned_agents() -> None:
    task = spec(agents=["a2", "a3"])
    assert reject_reason(task, cand("a2")) is None
    assert reject_reason(task, cand("a1")) == "not among the pinned agents"


def test_exclude_agents() -> None:
    task = spec(exclude_agents=["a1"])
    assert reject_reason(task, cand("a1")) == "excluded by the task"
    assert reject_reason(task, cand("a2")) is None


@pytest.mark.parametrize(("cost", "ok"), [(0.0, True), (1.0, True), (1.01, False), (50.0, False)])
def test_max_cost(cost: float, ok: bool) -> None:
    reason = reject_reason(spec(max_cost=1.0), cand(cost=cost))
    assert (reason is None) is ok


def test_no_max_cost_takes_any_cost() -> None:
    assert reject_reason(spec(), cand(cost=1e6)) is None


def test_rank_drops_every_refused_candidate() -> None:
    task = spec({"python": 0.5}, labels=["gpu"], max_cost=2.0)
    cands = [
        cand("ok", labels=["gpu"]),
        cand("nolabel"),
        cand("pricey", labels=["gpu"], cost=3.0),
        cand("weak", labels=["gpu"], skills={"python": 0.1}),
        cand("full", labels=["gpu"], load=2),
    ]
    assert [s.agent_id for s in rank(task, cands)] == ["ok"]


# ---------------------------------------------------------------- scores


def _best(task: TaskSpec, *cands: Candidate) -> str:
    return rank(task, cands)[0].agent_id


def test_higher_skill_wins() -> None:
    task = spec({"python": 0.5})
    assert _best(task, cand("a1", skills={"python": 0.6}), cand("z9", skills={"python": 0.9})) == (
        "z9"
    )


def test_lower_load_wins() -> None:
    task = spec()
    assert _best(task, cand("a1", load=1, capacity=2), cand("z9", load=0, capacity=2)) == "z9"


def test_higher_reliability_wins() -> None:
    task = spec()
    assert _best(task, cand("a1", reliability=0.3), cand("z9", reliability=0.95)) == "z9"


def test_cheaper_wins_when_otherwise_equal() -> None:
    task = spec()
    assert _best(task, cand("a1", cost=2.0), cand("z9", cost=0.1)) == "z9"


def test_prefer_cheap_puts_the_cheapest_qualified_first() -> None:
    expert = cand("expert", skills={"python": 1.0}, cost=0.5)
    cheap = cand("cheap", skills={"python": 0.6}, cost=0.01)
    broke = cand("broke", skills={"python": 0.1}, cost=0.0)  # unqualified, cheapest
    quality = spec({"python": 0.5})
    assert [s.agent_id for s in rank(quality, [expert, cheap, broke])] == ["expert", "cheap"]
    frugal = quality.model_copy(update={"prefer_cheap": True})
    assert [s.agent_id for s in rank(frugal, [expert, cheap, broke])] == ["cheap", "expert"]


def test_score_parts() -> None:
    s = score(spec({"python": 0.5}), cand("a1", load=1, reliability=0.5, capacity=4, cost=1.0))
    assert s.agent_id == "a1"
    assert s.skill == pytest.approx(0.8)
    assert s.load == pytest.approx(0.75)
    assert s.reliability == pytest.approx(0.5)
    assert s.cost == pytest.approx(0.5)
    assert s.score == pytest.approx(0.5 * 0.8 + 0.2 * 0.75 + 0.2 * 0.5 + 0.1 * 0.5)


def test_skill_part_averages_required_skills() -> None:
    task = spec({"python": 0.1, "sql": 0.1})
    s = score(task, cand(skills={"python": 0.8, "sql": 0.4, "rust": 1.0}))
    assert s.skill == pytest.approx(0.6)


def test_rank_is_best_first_and_ties_by_id() -> None:
    task = spec()
    cands = [
        cand("c"),
        cand("a"),
        cand("b"),
        cand("best", skills={"python": 1.0}),
        cand("worst", reliability=0.1),
    ]
    ranked = rank(task, cands)
    assert [s.agent_id for s in ranked] == ["best", "a", "b", "c", "worst"]
    scores = [s.score for s in ranked]
    assert scores == sorted(scores, reverse=True)


def test_rank_of_nobody_is_empty() -> None:
    assert rank(spec(), []) == []
    assert rank(spec({"rust": 0.1}), [cand()]) == []


# ---------------------------------------------------------------- the skill index


def test_index_intersects_skills() -> None:
    index = SkillIndex()
    index.add(profile("py", skills={"python": 0.5}))
    index.add(profile("sql", skills={"sql": 0.5}))
    index.add(profile("both", skills={"python": 0.2, "sql": 0.9}))
    assert index.candidates(["python"]) == {"py", "both"}
    assert index.candidates(["sql"]) == {"sql", "both"}
    assert index.candidates(["python", "sql"]) == {"both"}
    assert index.candidates(["python", "sql", "rust"]) == set()
    assert index.candidates(["rust"]) == set()
    assert index.candidates([]) == {"py", "sql", "both"}
    assert len(index) == 3


def test_index_remove_and_re_add() -> None:
    index = SkillIndex()
    index.add(profile("a", skills={"python": 0.5, "sql": 0.5}))
    index.add(profile("b", skills={"python": 0.5}))
    index.remove("a")
    assert index.candidates(["python"]) == {"b"}
    assert index.candidates(["sql"]) == set()
    assert len(index) == 1
    index.remove("a")  # twice is harmless
    index.remove("never-there")
    assert len(index) == 1
    index.add(profile("a", skills={"sql": 0.5}))
    assert index.candidates(["sql"]) == {"a"}
    assert index.candidates(["python"]) == {"b"}


def test_index_add_replaces_the_old_profile() -> None:
    index = SkillIndex()
    index.add(profile("a", skills={"python": 0.5}))
    index.add(profile("a", skills={"rust": 0.5}))
    assert index.candidates(["python"]) == set()
    assert index.candidates(["rust"]) == {"a"}
    assert len(index) == 1


def test_index_never_returns_an_agent_lacking_a_skill() -> None:
    skills = ["python", "sql", "rust", "go"]
    profiles = []
    for n in range(40):
        mine = {s: 0.5 for i, s in enumerate(skills) if (n >> i) & 1}
        profiles.append(profile(f"a{n}", skills=mine))
    index = SkillIndex()
    for p in profiles:
        index.add(p)
    for n in range(0, 40, 3):
        index.remove(f"a{n}")
    by_id = {p.id: p for p in profiles if int(p.id[1:]) % 3 != 0}
    for mask in range(16):
        wanted = [s for i, s in enumerate(skills) if (mask >> i) & 1]
        got = index.candidates(wanted)
        expected = {i for i, p in by_id.items() if all(s in p.skills for s in wanted)}
        assert got == expected


# -- the ladder: one-skill tasks ranked from the top, as a full scan would ---------------------


def test_ladder_ranks_one_skill_tasks_exactly_as_a_full_scan() -> None:
    """Random boards: the board's ladder walk (``_rank`` of a one-skill task) returns the
    same top candidates, in the same order, as ranking every participant, and the same
    first choice not declined; loads, reliabilities, modes and exclusions vary."""
    import random
    from pathlib import Path
    from tempfile import mkdtemp

    from clawhub.board import Board
    from clawhub.board.records import TaskRecord
    from clawhub.settings import HubSettings
    from protocols import Register, TaskState

    class Sink:
        def write(self, row: object) -> None: ...
        def publish(self, event: object) -> None: ...
        def send_cancel(self, agent_id: str, message: object) -> None: ...
        def wake(self) -> None: ...

    rnd = random.Random(3)
    skills = ["a", "b", "c", "d"]
    for case in range(150):
        settings = HubSettings(nats_url="nats://x", data_dir=Path(mkdtemp()))
        board = Board("default", settings, Sink(), "hub")  # type: ignore[arg-type]
        for i in range(rnd.randint(1, 40)):
            p = profile(
                f"x{i}",
                skills={s: rnd.choice([0.2, 0.5, 0.5, 0.9]) for s in rnd.sample(skills, 2)},
                capacity=rnd.randint(1, 3),
                cost=rnd.choice([0.0, 0.0, 1.0]),
            )
            board.register(Register(profile=p, session="s"))
            agent = board.agents[p.id]
            for j in range(rnd.randint(0, p.capacity)):
                agent.held[f"h{i}-{j}"] = 1
            agent.reliability = rnd.choice([0.5, 0.9, 0.9, 1.0])
            agent.mode = rnd.choice(["active", "active", "paused"])
            agent.state = rnd.choice(["online", "online", "online", "lost"])
        skill = rnd.choice(skills)
        task = TaskSpec(id=f"t{case}", title="t", skills={skill: rnd.choice([0.0, 0.5])})
        rec = TaskRecord(
            id=task.id or "", seq=1, spec=task, state=TaskState.READY, created_at=0, updated_at=0
        )
        ids = list(board.agents)
        rec.excluded = set(rnd.sample(ids, rnd.randint(0, min(3, len(ids)))))
        rec.declined = set(rnd.sample(ids, rnd.randint(0, min(3, len(ids)))))
        everyone = [
            Candidate(a.profile, a.load, a.reliability)
            for a in board.agents.values()
            if a.takes_work and skill in a.profile.skills
        ]
        full = rank(task, [c for c in everyone if c.profile.id not in rec.excluded])
        if not full:
            full = rank(task, everyone)
        walked = board.matcher.rank(rec)
        assert walked == full[: len(walked)], case
        assert walked[:3] == full[:3], case
        first = [s.agent_id for s in full if s.agent_id not in rec.declined][:1]
        assert [s.agent_id for s in walked if s.agent_id not in rec.declined][:1] == first, case
        assert board.state.ladder.free == sum(
            a.free for a in board.agents.values() if a.state == "online" and a.free > 0
        )
