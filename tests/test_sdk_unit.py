"""Unit tests of the agent SDK that need no hub and no NATS server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import nats.errors
import pytest
from pydantic import ValidationError

import agents_sdk
from agents_sdk import (
    Agent,
    AgentIdConflict,
    HubUnavailable,
    RequestRefused,
    RequestTimeout,
    SDKError,
    TaskContext,
    WaitTimeout,
)
from agents_sdk._bus import refused, request
from agents_sdk.testing import run_task
from protocols import (
    Assignment,
    ClawHubError,
    ErrorCode,
    ErrorReply,
    GetTask,
    Ok,
    ProtocolError,
    TaskSpec,
    encode,
    is_identifier,
)


def offer(skills: dict[str, float] | None = None) -> Assignment:
    spec = TaskSpec(id="t1", title="t", skills=skills or {})
    return Assignment(task_id="t1", attempt=1, spec=spec, stall_timeout=30)


# -- profile ----------------------------------------------------------------------------------


def test_profile_defaults_and_generated_id() -> None:
    agent = Agent("My Coder!", skills={"Python": 0.9, "REVIEW": 0.6}, capacity=2, labels=["gpu"])
    assert agent.profile.skills == {"python": 0.9, "review": 0.6}
    assert agent.id.startswith("my-coder-")
    assert len(agent.id) == len("my-coder-") + 6
    assert is_identifier(agent.id)
    assert agent.profile.capacity == 2
    assert agent.profile.labels == ["gpu"]
    assert agent.profile.name == "My Coder!"
    assert agent.profile.sdk == f"agents_sdk/{agents_sdk.__version__}"
    assert Agent("My Coder!").id != agent.id


def test_profile_id_for_odd_names() -> None:
    for name in ["ünïcode ✨", "---", "x" * 150, "_a b_"]:
        agent_id = Agent(name).id
        assert is_identifier(agent_id), agent_id


def test_profile_explicit_id_and_validation() -> None:
    assert Agent("a", id="fixed-1").id == "fixed-1"
    with pytest.raises(ValidationError):
        Agent("a", id="bad id")
    with pytest.raises(ValidationError):
        Agent("a", skills={"python": 2.0})
    with pytest.raises(ValueError):
        Agent("a", group="no.dots")


def test_session_is_identifier() -> None:
    assert is_identifier(Agent("a").session)


# -- handler selection ------------------------------------------------------------------------


def test_handler_selection() -> None:
    agent = Agent("a")

    @agent.handler
    async def default(ctx: TaskContext) -> object:
        return "default"

    @agent.handler(skill="Review")
    def review(ctx: TaskContext) -> object:
        return "review"

    @agent.handler(skill="docs")
    def docs(ctx: TaskContext) -> object:
        return "docs"

    assert default.__name__ == "default"  # the decorator returns the function itself
    chosen = agent.select_handler(offer({"review": 0.5}))
    assert chosen is not None and chosen.func is review
    chosen = agent.select_handler(offer({"docs": 0.1, "review": 0.5}))
    assert chosen is not None and chosen.func is review  # first registered wins
    chosen = agent.select_handler(offer({"python": 0.5}))
    assert chosen is not None and chosen.func is default
    chosen = agent.select_handler(offer())
    assert chosen is not None and chosen.func is default


def test_no_default_handler_declines() -> None:
    agent = Agent("a")

    @agent.handler(skill="review")
    def review(ctx: TaskContext) -> object:
        return None

    assert agent.select_handler(offer({"python": 0.5})) is None
    answer, job = agent._jobs.consider(offer({"python": 0.5}))
    assert job is None
    assert answer.type == "claw.v1.task.decline"
    assert "no handler" in getattr(answer, "reason", "")


def test_duplicate_handlers_refused() -> None:
    agent = Agent("a")
    agent.handler(lambda ctx: None)
    with pytest.raises(ValueError):
        agent.handler(lambda ctx: None)
    agent.handler(skill="x")(lambda ctx: None)
    with pytest.raises(ValueError):
        agent.handler(skill="X")(lambda ctx: None)


async def test_capacity_declines_busy() -> None:
    agent = Agent("a", capacity=1)
    agent.handler(lambda ctx: None)
    first, job = agent._jobs.consider(offer())
    assert first.type == "claw.v1.task.accept" and job is not None
    again, none = agent._jobs.consider(offer())  # the same attempt again: accepted, no new job
    assert again.type == "claw.v1.task.accept" and none is None
    other = Assignment(task_id="t2", attempt=1, spec=TaskSpec(title="t"), stall_timeout=30)
    busy, _ = agent._jobs.consider(other)
    assert busy.type == "claw.v1.task.decline"
    assert getattr(busy, "reason", "") == "busy"
    assert [r.task_id for r in agent.running] == ["t1"]


# -- testing.run_task -------------------------------------------------------------------------


async def test_run_task_async_handler_records_progress() -> None:
    agent = Agent("a", skills={"math": 1.0})

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        assert ctx.task_id == "local-task" and ctx.attempt == 1
        assert ctx.agent is agent
        await ctx.progress(0.5, "half")
        await ctx.log("thinking")
        await ctx.progress(1.0)
        data = ctx.input
        assert isinstance(data, dict)
        a, b = data["a"], data["b"]
        assert isinstance(a, int) and isinstance(b, int)
        return {
            "sum": a + b,
            "dep": ctx.deps["up"],
            "i": ctx.instructions,
        }

    run = await run_task(agent, input={"a": 1, "b": 2}, deps={"up": "x"}, instructions="add")
    assert run.ok and run.error is None
    assert run.output == {"sum": 3, "dep": "x", "i": "add"}
    assert run.handler is not None and run.handler.endswith("work")
    assert run.fractions == [0.5, 1.0]
    assert run.logs == ["thinking"]
    assert [p.log for p in run.progress] == [False, True, False]
    assert all(p.agent_id == agent.id for p in run.progress)


async def test_run_task_sync_handler_progress_from_thread() -> None:
    agent = Agent("a")

    @agent.handler
    def work(ctx: TaskContext) -> object:
        for i in range(1, 5):
            ctx.progress_nowait(i / 4, f"step {i}")
        ctx.log_nowait("done")
        return (1, 2)  # tuples become lists, as on the wire

    run = await run_task(agent, title="sync")
    assert run.ok, run.error
    assert run.output == [1, 2]
    assert run.fractions == [0.25, 0.5, 0.75, 1.0]
    assert run.logs == ["done"]


async def test_run_task_exception_becomes_error() -> None:
    agent = Agent("a")

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        await ctx.progress(0.1)
        raise KeyError("missing")

    run = await run_task(agent)
    assert not run.ok
    assert run.error == "KeyError: 'missing'"
    assert isinstance(run.exception, KeyError)
    assert run.fractions == [0.1]


async def test_run_task_non_json_output() -> None:
    agent = Agent("a")
    agent.handler(lambda ctx: {"s": {1, 2}})
    run = await run_task(agent)
    assert not run.ok
    assert run.error is not None and "not JSON-serialisable" in run.error


async def test_run_task_pydantic_output_and_skill_handler() -> None:
    agent = Agent("a")

    @agent.handler(skill="review")
    async def review(ctx: TaskContext) -> object:
        return TaskSpec(title="x")

    run = await run_task(agent, skills={"review": 0.5})
    assert run.ok and isinstance(run.output, dict) and run.output["title"] == "x"
    missing = await run_task(agent, skills={"python": 0.5})
    assert not missing.ok and missing.handler is None
    assert missing.error is not None and "no handler" in missing.error


async def test_progress_validates_fraction() -> None:
    agent = Agent("a")

    @agent.handler
    async def work(ctx: TaskContext) -> object:
        await ctx.progress(1.5)
        return None

    run = await run_task(agent)
    assert not run.ok and run.error is not None and run.error.startswith("ValueError")


# -- errors -----------------------------------------------------------------------------------


def test_error_tree() -> None:
    assert issubclass(SDKError, ClawHubError)
    for cls in (HubUnavailable, RequestTimeout, RequestRefused, WaitTimeout):
        assert issubclass(cls, SDKError)
    assert issubclass(AgentIdConflict, RequestRefused)
    assert issubclass(WaitTimeout, TimeoutError)
    err = refused(ErrorReply(code=ErrorCode.WRONG_SESSION, message="taken"))
    assert isinstance(err, AgentIdConflict) and err.code == ErrorCode.WRONG_SESSION
    err = refused(ErrorReply(code=ErrorCode.UNKNOWN_TASK, message="nope"))
    assert type(err) is RequestRefused and err.message == "nope"
    assert "unknown_task" in str(err)


class _FakeMsg:
    def __init__(self, data: bytes) -> None:
        self.data = data


class _FakeNC:
    """Just enough of a nats ``Client`` for ``_bus.request``."""

    def __init__(self, outcome: object) -> None:
        self.outcome = outcome

    async def request(
        self,
        subject: str,
        payload: bytes,
        timeout: float,
    ) -> _FakeMsg:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        assert isinstance(self.outcome, bytes)
        return _FakeMsg(self.outcome)


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (nats.errors.NoRespondersError(), HubUnavailable),
        (nats.errors.TimeoutError(), RequestTimeout),
        (nats.errors.ConnectionClosedError(), HubUnavailable),
        (encode(ErrorReply(code=ErrorCode.INVALID, message="x")), RequestRefused),
        (encode(ErrorReply(code=ErrorCode.WRONG_SESSION, message="x")), AgentIdConflict),
        (encode(GetTask(task_id="x")), ProtocolError),
        (b"not json", ProtocolError),
    ],
)
async def test_request_error_mapping(outcome: object, expected: type[Exception]) -> None:
    nc = _FakeNC(outcome)
    with pytest.raises(expected):
        await request(nc, "subject", Ok(), Ok, 0.1)  # type: ignore[arg-type]


async def test_request_success() -> None:
    reply = await request(_FakeNC(encode(Ok(message="hi"))), "s", Ok(), Ok, 0.1)  # type: ignore[arg-type]
    assert reply.message == "hi"


async def test_start_without_server_raises_hub_unavailable() -> None:
    agent = Agent("a")
    started = time.monotonic()
    with pytest.raises(HubUnavailable):
        await agent.start("nats://127.0.0.1:1", timeout=1.0)
    assert time.monotonic() - started < 5
    await asyncio.sleep(0)


# -- layering ---------------------------------------------------------------------------------


def test_import_stays_light() -> None:
    code = (
        "import sys, agents_sdk, agents_sdk.testing\n"
        "heavy = {'fastapi', 'sqlmodel', 'sqlalchemy', 'textual', 'litellm', 'typer', 'rich',"
        " 'clawhub'}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == ""


def test_public_api() -> None:
    for name in agents_sdk.__all__:
        assert hasattr(agents_sdk, name), name
