"""What one model call of an ``LLMAgent`` needs around litellm: loading it lazily, the retry
policy, the answer (text, tool calls, usage), and turning litellm's errors and usage data into
the SDK's. litellm is only ever reached through the module object ``load_litellm`` returns.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import random
from dataclasses import dataclass, field
from typing import Any

from protocols import Usage

from .errors import ModelAuthError, ModelRequestError, _Retryable

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
class ToolCall:
    """One function call the model asked for."""

    id: str
    """The call's id (the tool message that answers it names it)."""
    name: str
    """The tool's name, as the model wrote it (it may name no tool)."""
    arguments: str
    """The arguments as the model wrote them: JSON text, valid or not."""


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
    tool_calls: list[ToolCall] = field(default_factory=list)
    """The tools the model asked to call (only when it was offered tools)."""


def tool_calls_of(built: Any) -> list[ToolCall]:
    """The tool calls in a (stream-built) litellm response, in order."""
    try:
        message = built.choices[0].message
    except (AttributeError, IndexError, TypeError):
        return []
    out: list[ToolCall] = []
    for i, call in enumerate(getattr(message, "tool_calls", None) or []):
        function = getattr(call, "function", None)
        out.append(
            ToolCall(
                id=str(getattr(call, "id", None) or f"call_{i}"),
                name=str(getattr(function, "name", None) or ""),
                arguments=str(getattr(function, "arguments", None) or ""),
            )
        )
    return out


def usage_of(litellm: Any, model: str, built: Any) -> tuple[Usage, bool]:
    """The usage of one built response, and whether litellm has a price for ``model``."""
    prompt = completion = 0
    raw = getattr(built, "usage", None)
    try:
        prompt = int(getattr(raw, "prompt_tokens", 0) or 0)
        completion = int(getattr(raw, "completion_tokens", 0) or 0)
    except (TypeError, ValueError):
        log.debug("%s: no usage in the stream", model, exc_info=True)
    cost = 0.0
    if built is not None:
        try:
            cost = float(litellm.completion_cost(completion_response=built, model=model))
        except Exception:
            cost = 0.0
    priced = cost > 0 or has_price(litellm, model)
    usage = Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost=max(0.0, cost),
        calls=1,
        models=[model],
    )
    return usage, priced


def has_price(litellm: Any, model: str) -> bool:
    """True when litellm's price data knows ``model`` (local models never cost)."""
    if provider_of(model) in LOCAL_PROVIDERS:
        return False
    try:
        info = litellm.get_model_info(model)
    except Exception:
        return False
    return bool(info.get("input_cost_per_token") or info.get("output_cost_per_token"))


def typical_cost(litellm: Any, model: str) -> float:
    """litellm's price of a typical task (``TYPICAL_*_TOKENS``) on ``model``; 0 if unknown."""
    try:
        prompt, completion = litellm.cost_per_token(
            model=model,
            prompt_tokens=TYPICAL_PROMPT_TOKENS,
            completion_tokens=TYPICAL_COMPLETION_TOKENS,
        )
        return round(float(prompt) + float(completion), 6)
    except Exception:
        return 0.0


def raise_for(litellm: Any, model: str, exc: Exception) -> None:
    """Turn a litellm error into ``_Retryable`` or a ``ModelError``; others pass."""
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    text = str(exc)
    lowered = text.lower()
    env = KEY_ENV.get(provider_of(model))
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
            model, f"{model}: authentication failed: {hint} ({text})", env_var=env
        ) from exc
    if isinstance(exc, litellm.RateLimitError) or status == 429:
        raise _Retryable("rate limit", text, retry_after(exc)) from exc
    if isinstance(exc, litellm.Timeout) or status == 408:
        raise _Retryable("timeout", text) from exc
    if isinstance(exc, litellm.APIConnectionError) and (status is None or status >= 500):
        raise _Retryable("connection error", text) from exc
    if status is not None and status >= 500:
        raise _Retryable(f"server error {status}", text) from exc
    if isinstance(exc, litellm.NotFoundError) or status == 404:
        raise ModelRequestError(
            model, f"{model}: model not found or not available ({text})"
        ) from exc
    if status is not None and 400 <= status < 500:
        raise ModelRequestError(model, f"{model}: the request was refused ({text})") from exc


def retry_after(exc: Exception) -> float | None:
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
