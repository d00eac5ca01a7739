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
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pydantic import JsonValue

from protocols import Assignment, Progress, TaskSpec, Usage, Verdict

from ._agent import Agent
from ._context import TaskContext
from ._handlers import invoke
from ._outcome import Outcome, failure, success

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
) -> LocalRun:
    """Run the handler ``agent`` would choose for this task, with no hub and no NATS.

    Pass ``spec`` for full control; otherwise one is built from the keywords. A handler
    exception does not propagate: it becomes ``error``/``exception`` on the result.
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

    ctx = TaskContext(assignment, agent, record)
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
