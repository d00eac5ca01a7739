"""Run an agent's handler without a hub, like httpx's ``MockTransport``.

::

    from agents_sdk.testing import run_task

    async def test_coder() -> None:
        run = await run_task(agent, input={"n": 2}, skills={"python": 0.5})
        assert run.ok and run.output == 4
        assert run.progress[-1].fraction == 1.0

``run_task`` picks the handler exactly as the real agent does and hands it a real
``TaskContext``; only ``progress``/``log`` record into the ``LocalRun`` instead of being
published. The output goes through the same JSON check as a real result, and the usage a
handler reports (``ctx.add_usage``; every ``LLMAgent`` call) lands in ``LocalRun.usage``.

An ``LLMAgent`` runs offline with litellm's ``mock_response``::

    agent = LLMAgent("w", model="openai/gpt-4o-mini", mock_response="Hi!", data_dir=tmp_path)
    run = await run_task(agent, title="greet")
    assert run.output == "Hi!" and run.usage.cost > 0

``feedback`` hands the handler earlier rejections, as the hub does for a reworked task.

A handler that delegates (``ctx.delegate``) gets its children's outputs from ``children``,
a function of the child's ``TaskSpec`` (sync or async) standing in for the group; it may
raise to make that child fail (``DelegationFailed``). Every child asked for lands in
``LocalRun.children``::

    run = await run_task(editor, input={"topics": ["a"]}, children=lambda s: {"text": s.title})
    assert [c.title for c in run.children] == ["write about a"]
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pydantic import JsonValue

from protocols import (
    AgentInfo,
    Assignment,
    Child,
    Delegated,
    Progress,
    TaskSpec,
    TaskState,
    TaskStatus,
    Usage,
    Verdict,
)

from ._agent import Agent
from ._context import TaskContext
from ._handlers import invoke
from ._outcome import Outcome, describe_error, failure, success
from .errors import SDKError

#: Stands in for the group when a handler delegates: a child's spec → its output.
Children = Callable[[TaskSpec], JsonValue | Awaitable[JsonValue]]

__all__ = ["LocalRun", "run_task"]


@dataclass
class LocalRun:
    """What one local run of a handler produced."""

    spec: TaskSpec
    """The task that was run."""
    handler: str | None = None
    """Name of the handler chosen (``None``: no handler fits; see ``error``)."""
    ok: bool = False
    """True when the handler returned JSON-serialisable data."""
    output: JsonValue = None
    """The output, as the hub would receive it (plain JSON data)."""
    error: str | None = None
    """``"ExceptionType: message"`` when it failed, as in a failed ``Result``."""
    exception: BaseException | None = None
    """The exception the handler raised, if any."""
    progress: list[Progress] = field(default_factory=list)
    """Every progress and log message, in order."""
    duration: float = 0.0
    """Seconds the handler ran."""
    usage: Usage | None = None
    """Model usage the handler reported (``None``: none, as for plain code)."""
    children: list[TaskSpec] = field(default_factory=list)
    """Every task the handler delegated, in order (ids filled in: ``<task>-c1``...)."""

    @property
    def logs(self) -> list[str]:
        """The log lines (``ctx.log``)."""
        return [p.message or "" for p in self.progress if p.log]

    @property
    def fractions(self) -> list[float]:
        """The progress fractions reported, in order."""
        return [p.fraction for p in self.progress if p.fraction is not None]


async def run_task(
    agent: Agent,
    *,
    input: JsonValue = None,
    skills: dict[str, float] | None = None,
    instructions: str = "",
    deps: dict[str, JsonValue] | None = None,
    title: str = "local task",
    spec: TaskSpec | None = None,
    task_id: str = "local-task",
    attempt: int = 1,
    stall_timeout: float = 300.0,
    feedback: list[Verdict] | None = None,
    children: Children | None = None,
) -> LocalRun:
    """Run the handler ``agent`` would choose for this task, with no hub and no NATS.

    Pass ``spec`` for full control; otherwise one is built from the keywords. A handler
    exception does not propagate: it becomes ``error``/``exception`` on the result.
    ``children`` answers the handler's ``ctx.delegate`` calls (without it they raise).
    """
    if spec is None:
        spec = TaskSpec(
            id=task_id, title=title, instructions=instructions, input=input, skills=skills or {}
        )
    assignment = Assignment(
        task_id=spec.id or task_id,
        attempt=attempt,
        spec=spec,
        dependency_outputs=deps or {},
        stall_timeout=stall_timeout,
        feedback=feedback or [],
    )
    run = LocalRun(spec=spec)
    handler = agent.select_handler(assignment)
    if handler is None:
        run.error = f"no handler for task {assignment.task_id}"
        return run
    run.handler = handler.name

    async def record(message: Progress) -> None:
        run.progress.append(message)

    group = _LocalGroup(assignment.task_id, children, run) if children is not None else None
    ctx = TaskContext(assignment, agent, record, hub=group)
    started = time.monotonic()
    outcome: Outcome
    try:
        outcome = success(await invoke(handler, ctx))
    except Exception as exc:
        run.exception = exc
        outcome = failure(exc)
    run.duration = time.monotonic() - started
    await ctx._flush()
    run.ok, run.output, run.error = outcome.ok, outcome.output, outcome.error
    run.usage = ctx.usage
    return run


class _LocalGroup:
    """``HubCalls`` in process: each child's output comes from the ``children`` function."""

    def __init__(self, task_id: str, children: Children, run: LocalRun) -> None:
        self.task_id = task_id
        self.children = children
        self.run = run
        self.statuses: dict[str, TaskStatus] = {}

    async def delegate(self, task_id: str, attempt: int, children: list[Child]) -> Delegated:
        ids = []
        for child in children:
            child_id = f"{task_id}-c{len(self.run.children) + 1}"
            spec = child.spec.model_copy(update={"id": child_id, "parent": task_id})
            self.run.children.append(spec)
            now = time.time()
            status = TaskStatus(
                id=child_id, spec=spec, state=TaskState.RUNNING, attempt=1, failures=0,
                created_at=now, updated_at=now,
            )  # fmt: skip
            try:
                answer = self.children(spec)
                output = await answer if inspect.isawaitable(answer) else answer
            except Exception as exc:
                status = status.model_copy(
                    update={"state": TaskState.FAILED, "error": describe_error(exc)}
                )
            else:
                status = status.model_copy(update={"state": TaskState.DONE, "output": output})
            self.statuses[child_id] = status
            ids.append(child_id)
        return Delegated(task_id=task_id, attempt=attempt, ids=ids, reused=[False] * len(ids))

    async def agents(self) -> list[AgentInfo]:
        return []  # no group here: the ``children`` function stands in for it

    async def task(self, task_id: str) -> TaskStatus:
        status = self.statuses.get(task_id)
        if status is None:
            raise SDKError(f"no delegated task {task_id}")
        return status
