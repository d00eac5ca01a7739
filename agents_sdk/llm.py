"""``LLMAgent``: an agent whose handler asks a model, through litellm, to do the task.

::

    from agents_sdk import LLMAgent

    agent = LLMAgent(
        "writer",
        id="writer-1",                       # a fixed id keeps its memory across restarts
        model="anthropic/claude-sonnet-4-5", # any litellm model string
        skills={"writing": 0.8},
    )
    agent.run("nats://127.0.0.1:PORT")

For each task it builds a prompt (title, instructions, input, dependency outputs,
acceptance criteria, the reasons earlier attempts were rejected, and the notes in its
memory that match the task), streams the model's answer while sending progress (so a
long answer never looks stalled), and returns the text, or the parsed JSON when the task
has an ``output_schema``. Tokens and cost (litellm's price data) go out with the result.

Errors follow ``RetryPolicy``: rate limits, timeouts (including ``timeout`` seconds with no
data from the model), lost connections and 5xx are retried with exponential back-off (with
progress while waiting), then fail the task with ``ModelUnavailable``; a missing or refused
API key fails at once with ``ModelAuthError`` naming the variable to set; a bad request or
unknown model fails at once with ``ModelRequestError``.

litellm is imported on first use, in a worker thread (it takes seconds), never by
``import agents_sdk``. With ``tools=``/``mcp_servers=`` each answer is a tool-calling loop
(``agents_sdk._toolloop``): every call and its outcome goes out as progress and in the
task's log, usage is summed over every model call, and ``max_steps`` and ``max_cost`` cap
it. Tests pass ``mock_response=`` (litellm's own mock: a text, an
exception, or one of litellm's strings such as ``"litellm.RateLimitError"``); a list gives
one mock per model call, in order, the last one repeating.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import JsonValue

from . import _trace
from ._agent import Agent
from ._context import TaskContext
from ._model_calls import (
    KEY_ENV,
    Answer,
    RetryPolicy,
    load_litellm,
    provider_of,
    raise_for,
    tool_calls_of,
    typical_cost,
    usage_of,
)
from ._prompt import DEFAULT_SYSTEM, build_messages, memory_query, parse_json_answer
from ._toolloop import run_tool_loop
from .errors import ModelAuthError, ModelOutputError, ModelUnavailable, _Retryable
from .mcp_tools import MCPServerSpec, ServerConfig, open_mcp_tools
from .skills import Skill, load_skills, skill_prompt
from .tools import Tool, Toolbox, as_tool, delegate_tool

__all__ = ["Answer", "LLMAgent", "RetryPolicy", "load_litellm", "provider_of"]

log = logging.getLogger("agents_sdk")


class LLMAgent(Agent):
    """An ``Agent`` whose default handler prompts ``model`` with the task (see the module doc).

    ``system`` replaces the default system prompt (``{name}`` is filled in). ``temperature``,
    ``max_tokens``, ``api_base`` (e.g. ``http://localhost:11434`` for Ollama), ``api_key``
    and ``litellm_kwargs`` go to ``litellm.acompletion``. ``memory_notes`` is how many
    matching notes of its memory go into each prompt; with ``remember`` it adds a note of
    each task it answered. ``progress_interval`` throttles the progress sent while tokens
    stream. ``cost=None`` sets the profile's cost from litellm's price for a typical task
    (2,000 prompt and 500 completion tokens) at ``start``. Other keywords go to ``Agent``.
    Skill handlers added with ``@agent.handler(skill=...)`` may call ``await agent.ask(...)``.

    ``tools`` (Python functions or ``Tool``s, ``agents_sdk.tools``) and ``mcp_servers``
    (``agents_sdk.mcp_tools``) turn each answer into a tool loop of at most ``max_steps``
    model calls, stopped too once the attempt spent ``max_cost`` USD (or the task's
    ``constraints.max_cost``); a tool call may take ``tool_timeout`` seconds. ``skills_dir``
    is a folder of skill files (``agents_sdk.skills``): their skills join the profile, and a
    task requiring one gets its instructions in the system prompt. ``delegate=True`` gives
    the model a built-in ``delegate`` tool (``ctx.delegate``, its description listing the
    group's live skills): a supervisor model then hands parts of its task to the group.
    """

    def __init__(
        self,
        name: str,
        *,
        model: str,
        skills: dict[str, float] | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        api_base: str | None = None,
        api_key: str | None = None,
        mock_response: object = None,
        retry: RetryPolicy | None = None,
        memory_notes: int = 5,
        remember: bool = True,
        progress_interval: float = 0.5,
        cost: float | None = None,
        litellm_kwargs: dict[str, Any] | None = None,
        tools: Sequence[Callable[..., Any] | Tool] | None = None,
        mcp_servers: Sequence[MCPServerSpec] | None = None,
        max_steps: int = 10,
        max_cost: float | None = None,
        tool_timeout: float = 120.0,
        skills_dir: str | os.PathLike[str] | None = None,
        delegate: bool = False,
        **agent_kwargs: Any,
    ) -> None:
        if not model or not model.strip():
            raise ValueError("LLMAgent needs a litellm model string, e.g. 'openai/gpt-4o-mini'")
        if max_steps < 1:
            raise ValueError("LLMAgent.max_steps must be at least 1")
        self.skill_files: dict[str, Skill] = load_skills(skills_dir) if skills_dir else {}
        """The skills loaded from ``skills_dir``, by name (``agents_sdk.skills``)."""
        levels = {n: s.level for n, s in self.skill_files.items()} | dict(skills or {})
        self.toolbox = Toolbox([as_tool(t) for t in tools or []], timeout=tool_timeout)
        """The Python tools (MCP servers' tools join it per task)."""
        self.mcp_servers = [ServerConfig.parse(spec) for spec in mcp_servers or []]
        listed = self.toolbox.names + [f"mcp:{m.name}" for m in self.mcp_servers]
        self.delegate = delegate
        """Whether the model gets the built-in ``delegate`` tool (``tools.delegate_tool``)."""
        if delegate:
            listed.append("delegate")
        super().__init__(
            name, skills=levels, model=model, cost=cost or 0.0, tools=listed, **agent_kwargs
        )
        self.max_steps = max_steps
        """Most model calls of one tool-using answer."""
        self.max_cost = max_cost
        """Most USD one attempt may spend before its tool loop stops (``None``: no cap; a
        task's ``constraints.max_cost`` caps it too)."""
        self.model = model
        """The litellm model string."""
        self.system = (system or DEFAULT_SYSTEM).replace("{name}", name)
        self.retry = retry or RetryPolicy()
        self.memory_notes = memory_notes
        self.remember = remember
        self.progress_interval = progress_interval
        self.completion_kwargs: dict[str, Any] = {"drop_params": True}
        """Extra keywords for every ``litellm.acompletion`` call."""
        for key, value in (
            ("temperature", temperature),
            ("max_tokens", max_tokens),
            ("api_base", api_base),
            ("api_key", api_key),
        ):
            if value is not None:
                self.completion_kwargs[key] = value
        self.completion_kwargs.update(litellm_kwargs or {})
        self._mocks: list[object] | None = None
        if isinstance(mock_response, list | tuple):
            self._mocks = list(mock_response)
        elif mock_response is not None:
            self._mocks = [mock_response]
        self._mock_calls = 0
        self._auto_cost = cost is None
        self._unpriced_noted: weakref.WeakSet[TaskContext] = weakref.WeakSet()
        self.handler(self.answer_task)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self, *args: Any, **kwargs: Any) -> None:
        """Load litellm (in a thread), price the profile, then ``Agent.start``."""
        litellm = await load_litellm()
        if self._auto_cost:
            cost = typical_cost(litellm, self.model)
            self.profile = self.profile.model_copy(update={"cost": cost})
        await super().start(*args, **kwargs)

    # -- the task handler -------------------------------------------------------------------

    async def answer_task(self, ctx: TaskContext) -> JsonValue:
        """The default handler: prompt the model with the task and return its answer."""
        notes = []
        if self.memory_notes > 0:
            query = memory_query(ctx.spec)
            notes = await asyncio.to_thread(ctx.memory.search, query, limit=self.memory_notes)
        system = self.system + skill_prompt(self.skill_files, ctx.spec.skills)
        messages = build_messages(system, ctx.spec, ctx.deps, ctx.feedback, notes)
        built_in = [delegate_tool(await ctx.group_skills())] if self.delegate else []
        if self.toolbox or self.mcp_servers or built_in:
            answer = await self.ask_with_tools(ctx, messages, tools=built_in)
        else:
            answer = await self.ask(ctx, messages)
        output: JsonValue = answer.text
        if ctx.spec.output_schema is not None:
            try:
                output = parse_json_answer(answer.text)
            except ValueError as exc:
                raise ModelOutputError(
                    self.model, f"{self.model}: {exc}; the task asks for JSON (output_schema)"
                ) from None
        if self.remember:
            text = f"Task: {ctx.spec.title}\nAnswer: {answer.text.strip()[:1500]}"
            await asyncio.to_thread(ctx.memory.note, text, tags=["task"], task_id=ctx.task_id)
        usage = answer.usage
        await ctx.progress(
            1.0, f"answered: {usage.total_tokens} tokens, ${usage.cost:.6f} ({self.model})"
        )
        return output

    async def ask_with_tools(
        self,
        ctx: TaskContext,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[Tool] = (),
        **overrides: Any,
    ) -> Answer:
        """Answer through the tool loop (``agents_sdk._toolloop``): the agent's tools, those
        of its MCP servers (opened for this call) and ``tools`` (e.g. built-in ones made for
        this task). Raises ``ToolLoopStopped`` at ``max_steps`` or the budget, and
        ``ToolServerError`` when an MCP server fails."""
        caps = [c for c in (self.max_cost, ctx.spec.constraints.max_cost) if c is not None]
        async with open_mcp_tools(self.mcp_servers, timeout=self.toolbox.timeout) as remote:
            box = Toolbox(
                [*self.toolbox.tools.values(), *remote, *tools], timeout=self.toolbox.timeout
            )
            names = ", ".join(box.names) or "(none)"
            await ctx.log(f"tools offered to {self.model}: {names}")

            async def ask(c: TaskContext, chat: Sequence[dict[str, Any]], **kw: Any) -> Answer:
                return await self.ask(c, chat, **{**overrides, **kw})

            return await run_tool_loop(
                ask,
                ctx,
                [dict(m) for m in messages],
                box,
                model=self.model,
                max_steps=self.max_steps,
                max_cost=min(caps) if caps else None,
            )

    # -- one answer, with retries -----------------------------------------------------------

    async def ask(
        self, ctx: TaskContext, messages: str | Sequence[dict[str, Any]], **overrides: Any
    ) -> Answer:
        """Ask the model, streaming, under the retry policy; counts usage on ``ctx``.

        ``messages`` is a chat message list, or a text sent as the user message after the
        system prompt. ``overrides`` go to ``litellm.acompletion`` for this call only.
        Raises ``ModelAuthError``, ``ModelRequestError`` or ``ModelUnavailable``.
        """
        if isinstance(messages, str):
            chat = [
                {"role": "system", "content": self.system},
                {"role": "user", "content": messages},
            ]
        else:
            chat = [dict(m) for m in messages]
        litellm = await load_litellm()
        kwargs = {**self.completion_kwargs, **overrides}
        policy = self.retry
        last: _Retryable | None = None
        for call in range(1, policy.attempts + 1):
            mock = self._next_mock()
            if mock is not None:
                kwargs["mock_response"] = mock
            elif "mock_response" not in kwargs:
                self._check_key(kwargs)
            if call == 1:
                await ctx.progress(None, f"asking {self.model}")
            attrs: dict[str, _trace.Attribute] = {"gen_ai.request.model": self.model}
            attrs["clawhub.call"] = call  # 1, then 2... when retried
            try:
                with _trace.span("claw.model.call", kind="client", attributes=attrs) as span:
                    got = await self._stream(litellm, ctx, chat, kwargs)
                    _trace.note(
                        span,
                        gen_ai__usage__input_tokens=got.usage.prompt_tokens,
                        gen_ai__usage__output_tokens=got.usage.completion_tokens,
                        clawhub__cost=got.usage.cost,
                        clawhub__tool_calls=len(got.tool_calls),
                    )
            except _Retryable as exc:
                last = exc
            else:
                ctx.add_usage(got.usage)
                if not got.priced and ctx not in self._unpriced_noted:
                    self._unpriced_noted.add(ctx)  # once per attempt, not per tool step
                    await ctx.log(f"litellm has no price for {self.model}: its cost counts as 0")
                return Answer(got.text, got.usage, call, got.priced, got.tool_calls)
            if call < policy.attempts:
                delay = policy.delay(call, last.retry_after)
                log.info("%s: %s; retrying in %.1fs", self.model, last, delay)
                await self._wait(ctx, delay, last.why, call)
        assert last is not None
        raise ModelUnavailable(
            self.model,
            f"{self.model}: {last.why} on every one of {policy.attempts} calls "
            f"(last: {last.detail})",
            calls=policy.attempts,
        )

    def _next_mock(self) -> object:
        if not self._mocks:
            return None
        mock = self._mocks[min(self._mock_calls, len(self._mocks) - 1)]
        self._mock_calls += 1
        return mock

    def _check_key(self, kwargs: dict[str, Any]) -> None:
        """Fail before calling when the provider's key is plainly missing.

        Skipped with an ``api_base`` (a proxy or local server may need no key).
        """
        provider = provider_of(self.model)
        env = KEY_ENV.get(provider)
        if env is None or kwargs.get("api_key") or kwargs.get("api_base") or os.environ.get(env):
            return
        raise ModelAuthError(
            self.model,
            f"{self.model}: no API key: set {env} in the agent's environment (or pass api_key=...)",
            env_var=env,
        )

    async def _wait(self, ctx: TaskContext, delay: float, why: str, call: int) -> None:
        """Sleep ``delay`` seconds, sending progress often enough that the hub sees life."""
        loop = asyncio.get_running_loop()
        end = loop.time() + delay
        step = max(0.2, min(5.0, ctx.stall_timeout / 3))
        await ctx.progress(
            None,
            f"retrying in {delay:.1f}s after {why} (call {call} of {self.retry.attempts} failed)",
        )
        while (left := end - loop.time()) > 0:
            await asyncio.sleep(min(step, left))
            left = end - loop.time()
            if left > 0.05:
                await ctx.progress(None, f"retrying in {left:.1f}s after {why}")

    # -- one streamed call ------------------------------------------------------------------

    async def _stream(
        self, litellm: Any, ctx: TaskContext, chat: list[dict[str, Any]], kwargs: dict[str, Any]
    ) -> Answer:
        """One model call: the text, the tool calls, the usage, whether litellm prices it."""
        loop = asyncio.get_running_loop()
        timeout = self.retry.timeout
        chunks: list[Any] = []
        parts: list[str] = []
        size = 0
        last_progress = loop.time()
        try:
            async with asyncio.timeout(timeout) as idle:
                stream = await litellm.acompletion(
                    model=self.model,
                    messages=chat,
                    stream=True,
                    stream_options={"include_usage": True},
                    timeout=timeout,
                    max_retries=0,
                    num_retries=0,
                    **kwargs,
                )
                async for chunk in stream:
                    idle.reschedule(loop.time() + timeout)
                    chunks.append(chunk)
                    choices = getattr(chunk, "choices", None) or []
                    delta = getattr(choices[0].delta, "content", None) if choices else None
                    if delta:
                        parts.append(delta)
                        size += len(delta)
                    now = loop.time()
                    if now - last_progress >= self.progress_interval:
                        last_progress = now
                        await ctx.progress(None, f"{self.model}: {size} characters so far")
        except TimeoutError:
            raise _Retryable("timeout", f"no data from the model for {timeout:g}s") from None
        except Exception as exc:
            raise_for(litellm, self.model, exc)
            raise
        built: Any = None
        try:
            built = litellm.stream_chunk_builder(chunks, messages=chat)
        except Exception:
            log.debug("%s: the stream did not build a response", self.model, exc_info=True)
        usage, priced = usage_of(litellm, self.model, built)
        return Answer("".join(parts), usage, 1, priced, tool_calls_of(built))
