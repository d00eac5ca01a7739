"""``LLMAgent``: model-backed agents through litellm, offline.

Model answers come from litellm's own ``mock_response`` (litellm runs for real: streaming,
token counting, price data, exception classes), or, where the timing matters (slow
tokens, a model that never answers), from a tiny OpenAI-compatible HTTP server on
loopback (``tests/fake_llm.py``). Hub tests use the real nats-server and hub.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import litellm
import pytest
from fake_llm import FakeChatServer
from litellm.integrations.custom_logger import CustomLogger
from nats.aio.msg import Msg

from agents_sdk import Agent, HubClient, LLMAgent, RetryPolicy, TaskContext
from agents_sdk.llm import provider_of
from agents_sdk.testing import run_task
from clawhub.runtime import Hub
from protocols import (
    Event,
    Result,
    TaskSpec,
    TaskState,
    Timeouts,
    Usage,
    ValidationStep,
    Verdict,
    decode,
    subjects,
)

GROUP = "default"
FAST = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.05, timeout=10.0)


class PromptRecorder(CustomLogger):  # type: ignore[misc]
    """A litellm callback: the messages of every call litellm makes, as litellm saw them."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, list[dict[str, Any]]]] = []

    def log_pre_api_call(self, model: str, messages: Any, kwargs: Any) -> None:
        self.calls.append((model, list(messages)))

    @property
    def last_user(self) -> str:
        return str(self.calls[-1][1][-1]["content"])


@pytest.fixture
def prompts() -> Iterator[PromptRecorder]:
    recorder = PromptRecorder()
    litellm.callbacks.append(recorder)
    try:
        yield recorder
    finally:
        litellm.callbacks.remove(recorder)


def agent(tmp_path: Path, model: str = "openai/gpt-4o-mini", **kw: Any) -> LLMAgent:
    kw.setdefault("retry", FAST)
    return LLMAgent("writer", model=model, data_dir=tmp_path / "writer", **kw)


# -- answers, usage and cost --------------------------------------------------------------------


async def test_answer_with_usage_and_litellm_cost(tmp_path: Path, prompts: PromptRecorder) -> None:
    text = "Claw Hub routes each task to the best agent."
    run = await run_task(agent(tmp_path, mock_response=text), title="Say what Claw Hub does")
    assert run.ok, run.error
    assert run.output == text
    assert run.usage is not None
    # litellm's mock counts tokens for real: the prompt it was sent, and the answer
    [(model, sent)] = prompts.calls
    assert run.usage.prompt_tokens == litellm.token_counter(model=model, messages=sent)
    assert run.usage.completion_tokens == litellm.token_counter(model=model, text=text)
    # and prices them with its cost map (gpt-4o-mini: $0.15 / $0.60 per million tokens)
    p_cost, c_cost = litellm.cost_per_token(
        model="gpt-4o-mini",
        prompt_tokens=run.usage.prompt_tokens,
        completion_tokens=run.usage.completion_tokens,
    )
    assert run.usage.cost == pytest.approx(p_cost + c_cost)
    assert run.usage.cost > 0
    assert run.usage.calls == 1
    assert run.usage.models == ["openai/gpt-4o-mini"]
    assert run.progress[0].message == "asking openai/gpt-4o-mini"
    assert run.fractions == [1.0]
    assert run.logs == []  # gpt-4o-mini has a price: no note


@pytest.mark.parametrize(
    "model",
    ["anthropic/claude-sonnet-4-5", "openai/gpt-4o-mini", "moonshot/kimi-k2.6"],
)
async def test_every_hosted_family_is_priced(tmp_path: Path, model: str) -> None:
    run = await run_task(agent(tmp_path, model, mock_response="ok then"), title="t")
    assert run.ok, run.error
    assert run.usage is not None and run.usage.cost > 0
    assert run.usage.models == [model]


async def test_local_model_costs_zero_with_a_note(tmp_path: Path) -> None:
    local = agent(tmp_path, "ollama/llama3.2", api_base="http://127.0.0.1:1", mock_response="hi")
    run = await run_task(local, title="t")
    assert run.ok, run.error
    assert run.usage is not None
    assert run.usage.cost == 0.0
    assert run.usage.completion_tokens > 0
    assert run.logs == ["litellm has no price for ollama/llama3.2: its cost counts as 0"]


async def test_plain_code_agents_report_no_usage(tmp_path: Path) -> None:
    plain = Agent("plain", data_dir=tmp_path)
    plain.handler(lambda ctx: "done")
    run = await run_task(plain)
    assert run.ok and run.usage is None


async def test_any_handler_can_report_usage(tmp_path: Path) -> None:
    custom = Agent("custom", data_dir=tmp_path)

    @custom.handler
    def work(ctx: TaskContext) -> object:  # a sync handler, in a worker thread
        ctx.add_usage(
            Usage(prompt_tokens=10, completion_tokens=5, cost=0.01, calls=1, models=["my/model"])
        )
        ctx.add_usage(Usage(prompt_tokens=1, cost=0.002, calls=1, models=["other/model"]))
        return "ok"

    run = await run_task(custom)
    assert run.usage == Usage(
        prompt_tokens=11,
        completion_tokens=5,
        cost=0.012,
        calls=2,
        models=["my/model", "other/model"],
    )


async def test_json_output_when_the_task_has_a_schema(
    tmp_path: Path, prompts: PromptRecorder
) -> None:
    spec = TaskSpec(
        title="Rate it",
        output_schema={"type": "object", "required": ["score"]},
    )
    fenced = 'Here you go:\n```json\n{"score": 7, "why": "clear"}\n```'
    run = await run_task(agent(tmp_path, mock_response=fenced), spec=spec)
    assert run.ok, run.error
    assert run.output == {"score": 7, "why": "clear"}
    assert '"required": [\n    "score"\n  ]' in prompts.last_user
    assert "Reply with one JSON value" in prompts.last_user

    prose = await run_task(agent(tmp_path, mock_response="I think it is a 7."), spec=spec)
    assert not prose.ok
    assert prose.error is not None
    assert prose.error.startswith("ModelOutputError: openai/gpt-4o-mini: the answer is not JSON")
    assert prose.usage is not None and prose.usage.cost > 0  # the tokens were still spent


# -- the prompt -------------------------------------------------------------------------------


async def test_prompt_has_the_task_deps_criteria_feedback_and_memory(
    tmp_path: Path, prompts: PromptRecorder
) -> None:
    writer = agent(tmp_path, mock_response="Version two.", system="You are {name}. Be brief.")
    writer.memory.note("The team prefers British spelling in release notes.", tags=["style"])
    writer.memory.note("Unrelated: the coffee machine is broken.")
    rejected = Verdict(
        step="reviewer",
        by="reviewer-7",
        accepted=False,
        reasons="It misses the breaking change to the Register message.",
        attempt=1,
        ts=time.time(),
    )
    spec = TaskSpec(
        title="Write the release notes",
        instructions="Summarise the changes for users.",
        input={"version": "1.2.0"},
        acceptance=["mentions every breaking change", "under 200 words"],
    )
    run = await run_task(
        writer,
        spec=spec,
        deps={"changelog": {"text": "Register gained a session"}},
        feedback=[rejected],
        attempt=2,
    )
    assert run.ok, run.error
    [(_, sent)] = prompts.calls
    assert sent[0] == {"role": "system", "content": "You are writer. Be brief."}
    user = sent[1]["content"]
    for part in (
        "# Task: Write the release notes",
        "Summarise the changes for users.",
        '"version": "1.2.0"',
        "### changelog",
        "Register gained a session",
        "- mentions every breaking change",
        "- under 200 words",
        "## Earlier attempts were rejected",
        "attempt 1, rejected by reviewer-7: It misses the breaking change to the Register message.",
        "The team prefers British spelling in release notes.",
    ):
        assert part in user, part
    assert "coffee" not in user  # only the notes that match the task
    # and it remembers this task for the next one
    [note] = writer.memory.search("release notes", limit=5)[:1]
    assert note.text == "Task: Write the release notes\nAnswer: Version two."
    assert note.task_id == "local-task"


async def test_memory_is_off_when_asked(tmp_path: Path, prompts: PromptRecorder) -> None:
    quiet = agent(tmp_path, mock_response="x", memory_notes=0, remember=False)
    quiet.memory.note("Write the report in French.")
    run = await run_task(quiet, title="Write the report")
    assert run.ok
    assert "French" not in prompts.last_user
    assert quiet.memory.count() == 1


# -- model errors -----------------------------------------------------------------------------


async def test_rate_limit_is_retried_with_progress_then_succeeds(tmp_path: Path) -> None:
    flaky = agent(
        tmp_path, mock_response=["litellm.RateLimitError", "litellm.RateLimitError", "Done."]
    )
    run = await run_task(flaky, title="t")
    assert run.ok, run.error
    assert run.output == "Done."
    retries = [p.message or "" for p in run.progress if "retrying" in (p.message or "")]
    assert len(retries) >= 2
    assert retries[0].startswith("retrying in ")
    assert "after rate limit (call 1 of 3 failed)" in retries[0]
    assert run.usage is not None and run.usage.calls == 1  # failed calls spend no tokens


async def test_server_errors_exhaust_the_retries_then_fail_clearly(tmp_path: Path) -> None:
    down = agent(tmp_path, mock_response="litellm.InternalServerError")
    run = await run_task(down, title="t")
    assert not run.ok
    assert run.error is not None
    assert run.error.startswith(
        "ModelUnavailable: openai/gpt-4o-mini: server error 500 on every one of 3 calls"
    )
    assert sum("retrying" in (p.message or "") for p in run.progress) >= 2


async def test_a_refused_key_fails_at_once_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-wrong")
    refused = litellm.AuthenticationError(
        message="invalid x-api-key", llm_provider="anthropic", model="claude-sonnet-4-5"
    )
    claude = agent(tmp_path, "anthropic/claude-sonnet-4-5", mock_response=[refused, "never used"])
    run = await run_task(claude, title="t")
    assert not run.ok
    assert run.error is not None
    assert run.error.startswith("ModelAuthError: anthropic/claude-sonnet-4-5: authentication")
    assert "the provider refused the key in ANTHROPIC_API_KEY" in run.error
    assert not any("retrying" in (p.message or "") for p in run.progress)


@pytest.mark.parametrize(
    ("model", "variable"),
    [
        ("moonshot/kimi-k2.6", "MOONSHOT_API_KEY"),
        ("openai/gpt-4o-mini", "OPENAI_API_KEY"),
        ("anthropic/claude-sonnet-4-5", "ANTHROPIC_API_KEY"),
    ],
)
async def test_a_missing_key_fails_before_any_call(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    prompts: PromptRecorder,
    model: str,
    variable: str,
) -> None:
    monkeypatch.delenv(variable, raising=False)
    run = await run_task(agent(tmp_path, model), title="t")  # no mock: a real call would go out
    assert not run.ok
    assert run.error == (
        f"ModelAuthError: {model}: no API key: set {variable} in the agent's environment "
        "(or pass api_key=...)"
    )
    assert prompts.calls == []


async def test_an_unknown_model_fails_at_once(tmp_path: Path) -> None:
    missing = litellm.NotFoundError(
        message="model gpt-9 does not exist", llm_provider="openai", model="gpt-9"
    )
    run = await run_task(agent(tmp_path, "openai/gpt-9", mock_response=[missing, "x"]), title="t")
    assert run.error is not None
    assert run.error.startswith("ModelRequestError: openai/gpt-9: model not found")


async def test_a_model_that_never_answers_times_out_instead_of_hanging(tmp_path: Path) -> None:
    async with FakeChatServer(hang=True) as server:
        silent = agent(
            tmp_path,
            api_base=server.api_base,
            api_key="sk-test",
            retry=RetryPolicy(attempts=2, backoff=0.01, timeout=1.0),
        )
        run = await asyncio.wait_for(run_task(silent, title="t"), 30)
    assert not run.ok
    assert run.error == (
        "ModelUnavailable: openai/gpt-4o-mini: timeout on every one of 2 calls "
        "(last: no data from the model for 1s)"
    )
    assert server.connections == 2


def test_retry_policy_backs_off_exponentially_within_bounds() -> None:
    policy = RetryPolicy(backoff=1.0, multiplier=2.0, max_backoff=5.0, jitter=0.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    assert policy.delay(1, retry_after=3.0) == 3.0
    assert policy.delay(1, retry_after=60.0) == 5.0
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


def test_provider_of_model_strings() -> None:
    assert provider_of("anthropic/claude-sonnet-4-5") == "anthropic"
    assert provider_of("ollama/llama3.2") == "ollama"
    assert provider_of("moonshot/kimi-k2.6") == "moonshot"
    assert provider_of("gpt-4o-mini") == "openai"  # litellm is loaded here


def test_building_an_llm_agent_does_not_load_litellm() -> None:
    code = (
        "import sys\n"
        "from agents_sdk import LLMAgent\n"
        "LLMAgent('w', model='openai/gpt-4o-mini', mock_response='x')\n"
        "print('litellm' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "False", out.stderr


# -- on a real hub ----------------------------------------------------------------------------


async def _results(client: HubClient, into: list[Result]) -> Any:
    """Listen to the results agents deliver on the bus (next to the hub, which answers)."""

    async def on_result(msg: Msg) -> None:
        into.append(decode(msg.data, Result))

    return await client.nc.subscribe(subjects.hub_result(GROUP, subjects.ANY), cb=on_result)


async def _progress(client: HubClient, into: list[Event]) -> Any:
    async def on_event(msg: Msg) -> None:
        event = decode(msg.data, Event)
        if event.kind == "task.progress":
            into.append(event)

    return await client.nc.subscribe(subjects.all_events(GROUP), cb=on_event)


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[HubClient]:
    async with HubClient(hub.url) as c:
        yield c


async def test_llm_agent_completes_a_task_on_a_hub(
    hub: Hub, client: HubClient, tmp_path: Path
) -> None:
    text = "A hub, a bus and a store walk into a bar."
    writer = LLMAgent(
        "writer",
        id="writer-1",
        model="openai/gpt-4o-mini",
        skills={"writing": 0.9},
        mock_response=text,
        progress_interval=0,  # every streamed chunk is a progress message
        data_dir=tmp_path / "writer-1",
    )
    results: list[Result] = []
    progress: list[Event] = []
    subs = [await _results(client, results), await _progress(client, progress)]
    await client.nc.flush()
    await writer.start(hub.url)
    try:
        [info] = [a for a in await client.agents() if a.profile.id == "writer-1"]
        assert info.profile.model == "openai/gpt-4o-mini"
        assert info.profile.cost > 0  # priced from litellm for a typical task
        [tid] = await client.submit([TaskSpec(title="Tell a joke", skills={"writing": 0.5})])
        status = await client.wait(tid, timeout=30)
    finally:
        await writer.stop()
        for sub in subs:
            await sub.unsubscribe()
    assert status.state is TaskState.DONE, status.error
    assert status.output == text
    [result] = [r for r in results if r.task_id == tid]
    assert result.usage is not None
    assert result.usage.cost > 0 and result.usage.completion_tokens > 0
    assert result.usage.models == ["openai/gpt-4o-mini"]
    assert status.usage == result.usage  # the hub keeps it with the task and the agent
    known = {a.profile.id: a for a in await client.agents(include_gone=True)}
    assert known["writer-1"].usage == result.usage
    streamed = [
        e.message for e in progress if e.task_id == tid and "characters so far" in (e.message or "")
    ]
    assert len(streamed) >= 3
    assert writer.memory.search("joke")[0].task_id == tid


async def test_streaming_tokens_keep_a_slow_answer_from_stalling(
    hub: Hub, client: HubClient, tmp_path: Path
) -> None:
    """The answer takes 3x the stall timeout, but tokens keep arriving: no stall.

    (With ``progress_interval`` above the stall timeout, the same task stalls.)"""
    tokens = [f" word{i}" for i in range(12)]
    async with FakeChatServer(tokens=tokens, delay=0.2) as server:
        slow = LLMAgent(
            "slow",
            id="slow-1",
            model="openai/gpt-4o-mini",
            skills={"writing": 0.9},
            api_base=server.api_base,
            api_key="sk-test",
            progress_interval=0.1,
            data_dir=tmp_path / "slow-1",
        )
        await slow.start(hub.url)
        try:
            spec = TaskSpec(
                title="Write slowly", skills={"writing": 0.5}, timeouts=Timeouts(stall=0.8)
            )
            [tid] = await client.submit([spec])
            status = await client.wait(tid, timeout=30)
        finally:
            await slow.stop()
    assert status.state is TaskState.DONE, status.error
    assert status.output == "".join(tokens)
    assert [h.outcome for h in status.history] == ["done"]  # one attempt, never stalled
    assert server.requests[0]["stream"] is True


async def test_a_failing_model_fails_the_attempt_on_a_hub(
    hub: Hub, client: HubClient, tmp_path: Path
) -> None:
    down = LLMAgent(
        "down",
        id="down-1",
        model="openai/gpt-4o-mini",
        skills={"writing": 0.9},
        mock_response="litellm.RateLimitError",
        retry=RetryPolicy(attempts=2, backoff=0.01),
        data_dir=tmp_path / "down-1",
    )
    await down.start(hub.url)
    try:
        spec = TaskSpec(title="t", skills={"writing": 0.5}, max_attempts=1)
        [tid] = await client.submit([spec])
        status = await client.wait(tid, timeout=30)
    finally:
        await down.stop()
    assert status.state is TaskState.FAILED
    assert status.history[0].outcome == "error"
    assert "ModelUnavailable: openai/gpt-4o-mini: rate limit on every one of 2 calls" in (
        status.error or ""
    )


async def _wait_state(client: HubClient, task_id: str, state: TaskState) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        current = (await client.task(task_id)).state
        if current is state:
            return
        assert not current.terminal, current
        await asyncio.sleep(0.05)
    pytest.fail(f"{task_id} never reached {state.value}")


async def test_a_rejected_answer_is_reworked_with_the_reasons_in_the_prompt(
    hub: Hub, client: HubClient, tmp_path: Path, prompts: PromptRecorder
) -> None:
    """A human rejects the first answer on the hub; the rework prompt carries the reason,
    and the hub sums the usage of both attempts into the task."""
    writer = LLMAgent(
        "writer",
        id="writer-2",
        model="openai/gpt-4o-mini",
        skills={"writing": 0.9},
        mock_response=["Draft one.", "Draft two, with the Register change."],
        memory_notes=0,
        data_dir=tmp_path / "writer-2",
    )
    results: list[Result] = []
    sub = await _results(client, results)
    await writer.start(hub.url)
    try:
        spec = TaskSpec(
            title="Write the release notes",
            skills={"writing": 0.5},
            validation=[ValidationStep(kind="human")],
            rework="any",
        )
        [tid] = await client.submit([spec])
        await _wait_state(client, tid, TaskState.NEEDS_HUMAN)
        reason = "It does not mention the breaking change to Register."
        await client.decide(tid, False, reason, by="alice")
        await _wait_state(client, tid, TaskState.NEEDS_HUMAN)
        status = await client.decide(tid, True, "good", by="alice")
        status = await client.wait(tid, timeout=30)
    finally:
        await writer.stop()
        await sub.unsubscribe()
    assert status.state is TaskState.DONE, status.error
    assert status.output == "Draft two, with the Register change."
    first, second = (str(messages[-1]["content"]) for _, messages in prompts.calls)
    assert "rejected" not in first
    assert "## Earlier attempts were rejected" in second
    assert f"attempt 1, rejected by alice: {reason}" in second
    # the hub summed what both attempts spent
    mine = [r.usage for r in results if r.task_id == tid and r.usage is not None]
    assert len(mine) == 2
    assert status.usage.calls == 2
    assert status.usage.cost == pytest.approx(mine[0].cost + mine[1].cost)
    assert status.usage.completion_tokens == sum(u.completion_tokens for u in mine)
