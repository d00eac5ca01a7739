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
``import agents_sdk``. Tests pass ``mock_response=`` (litellm's own mock: a text, an
exception, or one of litellm's strings such as ``"litellm.RateLimitError"``); a list gives
one mock per model call, in order, the last one repeating.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import JsonValue

from protocols import Usage

from ._agent import Agent
from ._context import TaskContext
from ._prompt import DEFAULT_SYSTEM, build_messages, memory_query, parse_json_answer
from .errors import (
    ModelAuthError,
    ModelOutputError,
    ModelRequestError,
    ModelUnavailable,
    _Retryable,
)

__all__ = ["Answer", "LLMAgent", "RetryPolicy", "load_litellm", "provider_of"]

log = logging.getLogger("agents_sdk")

#: The environment variable holding each provider's API key.
KEY_ENV = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "moonshot": "MOONSHOT_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "groq": "GROQ_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "xai": "XAI_API_KEY",
}

#: Tokens of a "typical task", to turn litellm's prices into ``AgentProfile.cost``.
TYPICAL_PROMPT_TOKENS = 2000
TYPICAL_COMPLETION_TOKENS = 500

#: Providers whose models run on the user's machine: no key, no price.
LOCAL_PROVIDERS = {"ollama", "ollama_chat", "lm_studio", "llamafile"}

_litellm: Any = None


async def load_litellm() -> Any:
    """Import litellm in a worker thread (once), so the event loop keeps heart-beating."""
    global _litellm  # noqa: PLW0603 - a process-wide cache of one module
    if _litellm is None:
        module: Any = await asyncio.to_thread(importlib.import_module, "litellm")
        module.suppress_debug_info = True  # no "Give Feedback / Get Help" banners
        _litellm = module
    return _litellm


def provider_of(model: str) -> str:
    """The provider part of a litellm model string (``anthropic/claude-...`` → anthropic).

    A bare model name (``gpt-4o``) is looked up with litellm when it is already loaded.
    """
    if "/" in model:
        return model.split("/", 1)[0].lower()
    if _litellm is not None:
        try:
            return str(_litellm.get_llm_provider(model)[1])
        except Exception:
            return ""
    return ""


@dataclass(frozen=True)
class RetryPolicy:
    """How an ``LLMAgent`` treats failing model calls."""

    attempts: int = 4
    """Model calls at most for one answer (the first plus the retries)."""
    backoff: float = 1.0
    """Seconds before the first retry; each next wait is ``multiplier`` times longer."""
    multiplier: float = 2.0
    max_backoff: float = 30.0
    """Longest wait between calls (a ``retry-after`` from the provider is capped by it)."""
    jitter: float = 0.1
    """Each wait is scaled by a random factor within ``1 ± jitter``."""
    timeout: float = 120.0
    """Seconds a call may go without any data from the model (connect or next token)."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if self.timeout <= 0 or self.backoff < 0 or self.max_backoff < 0:
            raise ValueError("RetryPolicy times must be positive")

    def delay(self, failed_calls: int, retry_after: float | None = None) -> float:
        """Seconds to wait after ``failed_calls`` calls failed in a row."""
        wait = self.backoff * self.multiplier ** (failed_calls - 1)
        if retry_after is not None:
            wait = max(wait, retry_after)
        wait = min(wait, self.max_backoff)
        return wait * random.uniform(1 - self.jitter, 1 + self.jitter)


@dataclass(frozen=True)
class Answer:
    """What one ``LLMAgent.ask`` produced."""

    text: str
    """The model's answer."""
    usage: Usage
    """Tokens and cost of the successful call."""
    calls: int
    """Model calls made, failed ones included."""
    priced: bool
    """False when litellm has no price for the model (cost is then 0)."""


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
        **agent_kwargs: Any,
    ) -> None:
        if not model or not model.strip():
            raise ValueError("LLMAgent needs a litellm model string, e.g. 'openai/gpt-4o-mini'")
        super().__init__(name, skills=skills, model=model, cost=cost or 0.0, **agent_kwargs)
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
        self.handler(self.answer_task)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self, *args: Any, **kwargs: Any) -> None:
        """Load litellm (in a thread), price the profile, then ``Agent.start``."""
        litellm = await load_litellm()
        if self._auto_cost:
            cost = self._typical_cost(litellm)
            self.profile = self.profile.model_copy(update={"cost": cost})
        await super().start(*args, **kwargs)

    def _typical_cost(self, litellm: Any) -> float:
        try:
            prompt, completion = litellm.cost_per_token(
                model=self.model,
                prompt_tokens=TYPICAL_PROMPT_TOKENS,
                completion_tokens=TYPICAL_COMPLETION_TOKENS,
            )
            return round(float(prompt) + float(completion), 6)
        except Exception:
            return 0.0

    # -- the task handler -------------------------------------------------------------------

    async def answer_task(self, ctx: TaskContext) -> JsonValue:
        """The default handler: prompt the model with the task and return its answer."""
        notes = []
        if self.memory_notes > 0:
            query = memory_query(ctx.spec)
            notes = await asyncio.to_thread(ctx.memory.search, query, limit=self.memory_notes)
        messages = build_messages(self.system, ctx.spec, ctx.deps, ctx.feedback, notes)
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
            try:
                text, usage, priced = await self._stream(litellm, ctx, chat, kwargs)
            except _Retryable as exc:
                last = exc
            else:
                ctx.add_usage(usage)
                if not priced:
                    await ctx.log(f"litellm has no price for {self.model}: its cost counts as 0")
                return Answer(text=text, usage=usage, calls=call, priced=priced)
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
    ) -> tuple[str, Usage, bool]:
        """One model call: the text, its usage, and whether litellm has a price for it."""
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
            self._raise_for(litellm, exc)
            raise
        usage, priced = self._usage(litellm, chunks, chat)
        return "".join(parts), usage, priced

    def _usage(
        self, litellm: Any, chunks: list[Any], chat: list[dict[str, Any]]
    ) -> tuple[Usage, bool]:
        prompt = completion = 0
        built: Any = None
        try:
            built = litellm.stream_chunk_builder(chunks, messages=chat)
            raw = getattr(built, "usage", None)
            prompt = int(getattr(raw, "prompt_tokens", 0) or 0)
            completion = int(getattr(raw, "completion_tokens", 0) or 0)
        except Exception:
            log.debug("%s: no usage in the stream", self.model, exc_info=True)
        cost = 0.0
        if built is not None:
            try:
                cost = float(litellm.completion_cost(completion_response=built, model=self.model))
            except Exception:
                cost = 0.0
        priced = cost > 0 or self._has_price(litellm)
        usage = Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost=max(0.0, cost),
            calls=1,
            models=[self.model],
        )
        return usage, priced

    def _has_price(self, litellm: Any) -> bool:
        if provider_of(self.model) in LOCAL_PROVIDERS:
            return False
        try:
            info = litellm.get_model_info(self.model)
        except Exception:
            return False
        return bool(info.get("input_cost_per_token") or info.get("output_cost_per_token"))

    def _raise_for(self, litellm: Any, exc: Exception) -> None:
        """Turn a litellm error into ``_Retryable`` or a ``ModelError``; others pass."""
        status = getattr(exc, "status_code", None)
        status = status if isinstance(status, int) else None
        text = str(exc)
        lowered = text.lower()
        provider = provider_of(self.model)
        env = KEY_ENV.get(provider)
        auth_classes = (litellm.AuthenticationError, litellm.PermissionDeniedError)
        missing_key = "missing credentials" in lowered or (
            "api key" in lowered and ("missing" in lowered or "no key" in lowered)
        )
        if isinstance(exc, auth_classes) or status in (401, 403) or missing_key:
            if env is None:
                hint = "check the provider's API key"
            elif os.environ.get(env):
                hint = f"the provider refused the key in {env}"
            else:
                hint = f"set {env} in the agent's environment"
            raise ModelAuthError(
                self.model, f"{self.model}: authentication failed: {hint} ({text})", env_var=env
            ) from exc
        if isinstance(exc, litellm.RateLimitError) or status == 429:
            raise _Retryable("rate limit", text, _retry_after(exc)) from exc
        if isinstance(exc, litellm.Timeout) or status == 408:
            raise _Retryable("timeout", text) from exc
        if isinstance(exc, litellm.APIConnectionError) and (status is None or status >= 500):
            raise _Retryable("connection error", text) from exc
        if status is not None and status >= 500:
            raise _Retryable(f"server error {status}", text) from exc
        if isinstance(exc, litellm.NotFoundError) or status == 404:
            raise ModelRequestError(
                self.model, f"{self.model}: model not found or not available ({text})"
            ) from exc
        if status is not None and 400 <= status < 500:
            raise ModelRequestError(
                self.model, f"{self.model}: the request was refused ({text})"
            ) from exc


def _retry_after(exc: Exception) -> float | None:
    """A numeric ``retry-after`` header of the provider's response, if any."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        value = headers.get("retry-after")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
