"""A fixed Claw Group for the TUI's snapshot tests: no hub, no clock, no random ids."""

from __future__ import annotations

from protocols import (
    AgentInfo,
    AgentProfile,
    AttemptInfo,
    CandidateScore,
    Event,
    GoalSpec,
    GoalStatus,
    Plan,
    TaskRef,
    TaskSpec,
    TaskState,
    TaskStatus,
    Usage,
    ValidationStep,
    Verdict,
)
from tui import GroupModel, WorkItem
from tui.model import utc_clock

RUNNERS_UP = (("writer-2", 0.74), ("kimi-cloud", 0.66), ("coder-1", 0.58))

#: "Now" in the picture: 2025-01-01 12:00:00 UTC.
NOW = 1_735_732_800.0


def _agent(
    id: str,
    name: str,
    *,
    kind: str = "agent",
    model: str | None = None,
    device: str = "laptop",
    skills: dict[str, float],
    load: int = 0,
    capacity: int = 1,
    state: str = "online",
    seen: float = 1.0,
    reliability: float = 1.0,
    done: int = 0,
    failed: int = 0,
    mode: str = "active",
    running: list[str] | None = None,
) -> AgentInfo:
    return AgentInfo.model_validate(
        {
            "profile": AgentProfile.model_validate(
                {
                    "id": id,
                    "name": name,
                    "kind": kind,
                    "skills": skills,
                    "model": model,
                    "device": device,
                    "capacity": capacity,
                }
            ),
            "state": state,
            "load": load,
            "reliability": reliability,
            "last_seen": NOW - seen,
            "running": [TaskRef(task_id=t, attempt=1) for t in running or []],
            "completed": done,
            "failed": failed,
            "mode": mode,
        }
    )


def _why(*scores: tuple[str, float]) -> list[CandidateScore]:
    return [
        CandidateScore(agent_id=a, score=s, skill=s, load=1.0, reliability=1.0, cost=1.0)
        for a, s in scores
    ]


def _task(
    id: str,
    title: str,
    state: TaskState,
    *,
    skills: dict[str, float],
    created: float,
    history: list[AttemptInfo] | None = None,
    holder: str | None = None,
    human: bool = False,
    **extra: object,
) -> TaskStatus:
    spec = TaskSpec(
        id=id,
        title=title,
        skills=skills,
        validation=[ValidationStep(kind="human")] if human else [],
        instructions=str(extra.pop("instructions", "")),
        input=extra.pop("input", None),  # type: ignore[arg-type]
    )
    history = history or []
    return TaskStatus.model_validate(
        {
            "id": id,
            "spec": spec,
            "state": state,
            "attempt": len(history),
            "failures": sum(1 for h in history if h.outcome in ("stalled", "lost", "rejected")),
            "assigned_to": holder,
            "created_at": NOW - created,
            "updated_at": NOW - created / 2,
            "history": history,
            **extra,
        }
    )


def _attempt(
    n: int, agent: str, outcome: str, start: float, took: float, reason: str = ""
) -> AttemptInfo:
    ended = None if outcome in ("running", "offered") else NOW - start + took
    return AttemptInfo.model_validate(
        {
            "attempt": n,
            "agent_id": agent,
            "outcome": outcome,
            "reason": reason,
            "offered_at": NOW - start,
            "started_at": NOW - start + 0.1,
            "ended_at": ended,
            "why": _why((agent, 0.91), *[(a, s) for a, s in RUNNERS_UP if a != agent][:2]),
        }
    )


def sample_model() -> GroupModel:
    """Six agents (one human: Ann, this TUI's user), nine tasks in every state, events,
    chat, one work item, a goal awaiting plan approval and one whose planning failed."""
    model = GroupModel("demo", "ann", clock=lambda: NOW, clock_text=utc_clock)
    model.status = "connected to nats://127.0.0.1:4222"
    model.connected = True
    model.set_agents(
        [
            _agent(
                "ann",
                "Ann",
                kind="human",
                skills={"review": 0.9, "writing": 0.7},
                capacity=3,
                load=1,
                seen=0.4,
                done=4,
                running=["t-polish"],
            ),
            _agent(
                "coder-1",
                "coder-1",
                model="anthropic/claude-sonnet-4-5",
                skills={"python": 0.9, "review": 0.6},
                load=1,
                capacity=2,
                done=12,
                failed=1,
                reliability=0.93,
                running=["t-api"],
            ),
            _agent(
                "writer-2",
                "writer-2",
                model="openai/gpt-4o",
                device="cloud",
                skills={"writing": 0.8},
                done=7,
                seen=0.8,
            ),
            _agent(
                "kimi-cloud",
                "kimi-cloud",
                model="moonshot/kimi-k2.6",
                device="cloud",
                skills={"research": 0.9, "writing": 0.6},
                mode="paused",
                done=3,
            ),
            _agent(
                "hung-model",
                "hung-model",
                model="ollama/llama3",
                device="server",
                skills={"python": 0.5},
                reliability=0.5,
                failed=1,
                seen=1.5,
            ),
            _agent(
                "flaky-laptop",
                "flaky-laptop",
                model="ollama/qwen2.5",
                skills={"research": 0.7},
                state="lost",
                seen=95.0,
                reliability=0.5,
                failed=1,
            ),
        ]
    )
    model.set_tasks(
        [
            _task(
                "t-report",
                "Write the quarterly report",
                TaskState.NEEDS_HUMAN,
                skills={"writing": 0.7},
                created=300.0,
                human=True,
                history=[_attempt(1, "writer-2", "done", 290.0, 41.5)],
                output={"report": "Revenue grew 12% on the quarter.", "pages": 3},
            ),
            _task(
                "t-api",
                "Implement the /orders endpoint",
                TaskState.RUNNING,
                skills={"python": 0.8},
                created=240.0,
                holder="coder-1",
                history=[
                    _attempt(
                        1,
                        "hung-model",
                        "stalled",
                        230.0,
                        60.0,
                        "no progress for 60.0s (stall timeout 60s)",
                    ),
                    _attempt(2, "coder-1", "running", 160.0, 0.0),
                ],
                progress=0.6,
                progress_message="tests pass locally",
            ),
            _task(
                "t-polish",
                "Polish the release notes",
                TaskState.RUNNING,
                skills={"writing": 0.6},
                created=120.0,
                holder="ann",
                history=[_attempt(1, "ann", "running", 100.0, 0.0)],
            ),
            _task(
                "t-bench",
                "Benchmark the matcher",
                TaskState.READY,
                skills={"python": 0.7},
                created=60.0,
            ),
            _task(
                "t-deploy",
                "Deploy to staging",
                TaskState.PENDING,
                skills={"ops": 0.5},
                created=50.0,
            ),
            _task(
                "t-research",
                "Survey agent frameworks",
                TaskState.DONE,
                skills={"research": 0.8},
                created=900.0,
                history=[
                    _attempt(1, "flaky-laptop", "lost", 880.0, 12.0, "connection closed"),
                    _attempt(2, "kimi-cloud", "done", 860.0, 75.2),
                ],
                output={"frameworks": ["a", "b", "c"]},
            ),
            _task(
                "t-spec",
                "Draft the API spec",
                TaskState.DONE,
                skills={"writing": 0.6},
                created=800.0,
                human=True,
                history=[
                    _attempt(
                        1, "writer-2", "rejected", 790.0, 30.0, "rejected by ann: needs error codes"
                    ),
                    _attempt(2, "coder-1", "done", 700.0, 44.0),
                ],
                verdicts=[
                    Verdict(
                        step="human",
                        by="ann",
                        accepted=False,
                        reasons="needs error codes",
                        attempt=1,
                        ts=NOW - 750.0,
                    ),
                    Verdict(
                        step="human",
                        by="ann",
                        accepted=True,
                        reasons="good",
                        attempt=2,
                        ts=NOW - 640.0,
                    ),
                ],
                output="openapi: 3.1.0 ...",
                usage=Usage(
                    prompt_tokens=1200,
                    completion_tokens=800,
                    cost=0.0123,
                    calls=2,
                    models=["openai/gpt-4o"],
                ),
            ),
            _task(
                "t-legacy",
                "Port the legacy importer",
                TaskState.FAILED,
                skills={"cobol": 0.9},
                created=1200.0,
                error="no participant has the skill cobol",
            ),
            _task(
                "t-old",
                "Old idea",
                TaskState.CANCELLED,
                skills={},
                created=1500.0,
                error="cancelled by ann: not needed",
            ),
        ]
    )
    model.tasks["t-polish"].spec.instructions = "Tighten the wording; keep it under 200 words."
    model.work["t-polish"] = WorkItem(
        task_id="t-polish",
        attempt=1,
        spec=model.tasks["t-polish"].spec,
        received=NOW - 100.0,
        dependency_outputs={"t-spec": "openapi: 3.1.0 ..."},
    )
    model.set_goals(
        [
            GoalStatus(
                id="g-launch",
                spec=GoalSpec(
                    id="g-launch", text="Launch the beta: docs, API, deploy", approve_plan=True
                ),
                state="awaiting_approval",
                plan=Plan(tasks=[TaskSpec(id="p1", title="Docs")]),
                tasks_total=1,
                created_at=NOW - 30.0,
                updated_at=NOW - 20.0,
            ),
            GoalStatus(
                id="g-party",
                spec=GoalSpec(id="g-party", text="Plan the launch party"),
                state="failed",
                planning_attempts=1,
                error=(
                    "cannot plan goal g-party: planning and judging with moonshot/kimi-k2.6 "
                    "are off: set MOONSHOT_API_KEY, or choose another model with "
                    "CLAWHUB_COORDINATOR_MODEL (any litellm model string)"
                ),
                created_at=NOW - 10.0,
                updated_at=NOW - 9.0,
            ),
        ]
    )
    kinds = [
        (880.0, "task.assigned", "t-research", "flaky-laptop", "offered (score 0.91)"),
        (868.0, "agent.lost", None, "flaky-laptop", "connection closed"),
        (868.0, "task.retry", "t-research", None, "retry (1/3 failed): connection closed"),
        (290.0, "task.assigned", "t-report", "writer-2", "offered (score 0.91)"),
        (248.0, "task.log", "t-report", "writer-2", "drafted 3 pages"),
        (170.0, "task.revoked", "t-api", "hung-model", "no progress for 60.0s"),
        (160.0, "task.assigned", "t-api", "coder-1", "offered (score 0.91)"),
        (100.0, "task.assigned", "t-polish", "ann", "offered (score 0.91)"),
        (40.0, "chat.message", None, "coder-1", "endpoint is half done, tests next"),
        (25.0, "chat.message", "t-report", "ann", "reading the report now"),
    ]
    for seq, (ago, kind, task_id, agent_id, message) in enumerate(kinds, start=1):
        model.add_event(
            Event(
                seq=seq,
                ts=NOW - ago,
                kind=kind,
                task_id=task_id,
                agent_id=agent_id,
                message=message,
            )
        )
    return model
