"""The coordinator model: plans goals into task graphs and judges results, through litellm.

Any litellm model string works (default ``moonshot/kimi-k2.6``). litellm is imported on the
first model call, never at start-up. With no API key for the model's provider, planning and
judging say which key is missing; everything else in the hub works.

Tests and offline demos pass ``mock_responses``: each call hands the next one to litellm's
own ``mock_response`` (the real litellm code path, with no network).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from protocols import GoalSpec, Plan, TaskSpec, Usage, ValidationStep, describe_errors

from ..errors import ModelUnavailable
from ..settings import HubSettings

log = logging.getLogger("clawhub.coordinator")

#: litellm provider prefix → the environment variables one of which must be set.
PROVIDER_KEYS: dict[str, tuple[str, ...]] = {
    "moonshot": ("MOONSHOT_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "openai": ("OPENAI_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "groq": ("GROQ_API_KEY",),
    "mistral": ("MISTRAL_API_KEY",),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "openrouter": ("OPENROUTER_API_KEY",),
    "together_ai": ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY"),
    "xai": ("XAI_API_KEY",),
    "ollama": (),
    "ollama_chat": (),
    "lm_studio": (),
}
#: Bare model names litellm maps to a provider.
BARE_PREFIXES: dict[str, str] = {
    "gpt-": "openai",
    "o1": "openai",
    "o3": "openai",
    "claude": "anthropic",
}


def missing_key(model: str) -> str | None:
    """The API key variable ``model`` needs and the environment lacks, else None."""
    provider = model.split("/", 1)[0] if "/" in model else None
    if provider is None:
        provider = next((p for pre, p in BARE_PREFIXES.items() if model.startswith(pre)), None)
    keys = PROVIDER_KEYS.get(provider or "")
    if not keys or any(os.environ.get(k) for k in keys):
        return None
    return " or ".join(keys)


@dataclass(frozen=True)
class Reply:
    """One model answer: its text and what it cost."""

    text: str
    usage: Usage


def extract_json(text: str) -> Any:
    """The JSON value in a model's answer (code fences and prose around it are dropped)."""
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    try:
        return json.loads(body)
    except ValueError:
        pass
    start = body.find("{")
    end = body.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("the answer holds no JSON object")
    try:
        return json.loads(body[start : end + 1])
    except ValueError as exc:
        raise ValueError(f"the answer is not valid JSON: {exc}") from None


def parse_verdict(text: str) -> tuple[bool, str]:
    """``(accept, reasons)`` from a judge's answer; ``ValueError`` saying what is wrong."""
    value = extract_json(text)
    if not isinstance(value, dict):
        raise ValueError("the verdict must be a JSON object")
    accept = value.get("accept")
    if not isinstance(accept, bool):
        raise ValueError('the verdict needs "accept": true or false')
    reasons = value.get("reasons", "")
    if not isinstance(reasons, str):
        raise ValueError('"reasons" must be a string')
    return accept, reasons


def parse_plan(text: str) -> Plan:
    """A ``Plan`` from a planner's answer; ``ValueError`` saying what is wrong."""
    value = extract_json(text)
    if isinstance(value, list):
        value = {"tasks": value}
    try:
        return Plan.model_validate(value)
    except ValidationError as exc:
        problems = describe_errors(exc, limit=8)
        raise ValueError(f"the plan does not match the schema: {problems}") from None


JUDGE_SYSTEM = (
    "You are the judge of a Claw Group, a team of AI agents and humans. Decide whether the "
    "output below fulfils the task and its acceptance criteria. Answer with ONLY a JSON "
    'object: {"accept": true or false, "reasons": "short, concrete reasons"}.'
)

PLAN_SYSTEM = (
    "You are the coordinator of a Claw Group, a team of AI agents and humans. Decompose the "
    "goal into a small graph of tasks that the group's participants can do. Answer with ONLY "
    'a JSON object: {"tasks": [{"id": "short-id", "title": "...", "instructions": "...", '
    '"skills": {"skill": minimum_level_0_to_1}, "depends_on": ["id", ...], '
    '"acceptance": ["criterion", ...]}, ...], "deliverable": "id of the final task", '
    '"rationale": "..."}. Ids: letters, digits, - and _ only, at most 40 characters. Use '
    "only the skills listed. The last task consolidates the outputs of the others into the "
    "goal's deliverable and depends, directly or not, on every other task. No other fields."
)


class Coordinator:
    """Calls the coordinator model. One per hub; safe to share between tasks."""

    def __init__(
        self, settings: HubSettings, *, mock_responses: Iterable[str | Exception] | None = None
    ) -> None:
        self.settings = settings
        self.model = settings.coordinator_model
        self._mocks: deque[str | Exception] | None = (
            deque(mock_responses) if mock_responses is not None else None
        )
        self._litellm: Any = None

    def status(self, model: str | None = None) -> tuple[bool, str]:
        """``(ready, note)``: can ``model`` (default: the coordinator's) be called?"""
        model = model or self.model
        if self._mocks is not None:
            return True, f"{model} (mock responses)"
        key = missing_key(model)
        if key:
            return False, (
                f"planning and judging with {model} are off: set {key}, or choose another "
                "model with CLAWHUB_COORDINATOR_MODEL (any litellm model string)"
            )
        return True, model

    async def _lib(self) -> Any:
        if self._litellm is None:
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            # importing litellm takes a while: keep the event loop serving meanwhile
            self._litellm = await asyncio.to_thread(importlib.import_module, "litellm")
        return self._litellm

    async def complete(self, messages: list[dict[str, str]], model: str | None = None) -> Reply:
        """One chat completion; raises ``ModelUnavailable`` or the provider's error."""
        model = model or self.model
        kwargs: dict[str, Any] = {}
        if self._mocks is not None:
            mock = self._mocks.popleft() if len(self._mocks) > 1 else self._mocks[0]
            kwargs["mock_response"] = mock
        else:
            ready, note = self.status(model)
            if not ready:
                raise ModelUnavailable(note)
        litellm = await self._lib()
        response = await asyncio.wait_for(
            litellm.acompletion(model=model, messages=messages, **kwargs),
            self.settings.model_timeout,
        )
        text = response.choices[0].message.content or ""
        raw = getattr(response, "usage", None)
        try:
            cost = float(litellm.completion_cost(completion_response=response) or 0.0)
        except Exception:  # no price known for this model (local ones, say)
            cost = 0.0
        usage = Usage(
            prompt_tokens=int(getattr(raw, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(raw, "completion_tokens", 0) or 0),
            cost=cost,
            calls=1,
            models=[model],
        )
        return Reply(text=text, usage=usage)

    async def judge(
        self, spec: TaskSpec, output: Any, step: ValidationStep
    ) -> tuple[bool | None, str, str, Usage]:
        """``(accept or None, reasons, by, usage)``. A malformed answer is asked again, up to
        ``judge_tries`` calls; None when none was usable (a human decides then)."""
        model = step.model or self.model
        by = f"model:{model}"
        criteria = "\n".join(f"- {c}" for c in spec.acceptance) or "- (none given)"
        prompt = (
            f"Task: {spec.title}\n\nInstructions:\n{spec.instructions or '(none)'}\n\n"
            f"Acceptance criteria:\n{criteria}\n"
            + (f"\nExtra criteria for this check: {step.criteria}\n" if step.criteria else "")
            + f"\nInput:\n{json.dumps(spec.input, ensure_ascii=False)[:20_000]}\n"
            f"\nOutput to judge:\n{json.dumps(output, ensure_ascii=False)[:50_000]}\n"
        )
        messages = [
            {"role": "system", "content": JUDGE_SYSTEM},
            {"role": "user", "content": prompt},
        ]
        usage = Usage()
        problem = "no answer"
        for _ in range(self.settings.judge_tries):
            try:
                reply = await self.complete(messages, model)
            except ModelUnavailable as exc:
                return None, str(exc), by, usage
            except Exception as exc:  # provider errors, timeouts: try again, then a human
                problem = f"{type(exc).__name__}: {exc}"[:2000]
                log.warning("judge call to %s failed: %s", model, problem)
                continue
            usage = usage.plus(reply.usage)
            try:
                accept, reasons = parse_verdict(reply.text)
            except ValueError as exc:
                problem = f"malformed verdict ({exc}): {reply.text[:500]!r}"
                messages += [
                    {"role": "assistant", "content": reply.text},
                    {
                        "role": "user",
                        "content": f"That is not a usable verdict: {exc}. Answer again with "
                        'ONLY {"accept": true|false, "reasons": "..."}.',
                    },
                ]
                continue
            return accept, reasons, by, usage
        return None, f"{self.settings.judge_tries} tries, last: {problem}", by, usage

    async def plan(
        self, goal: GoalSpec, skills: dict[str, float], feedback: str, previous: str
    ) -> tuple[Plan | None, str, Usage, str]:
        """``(plan or None, problem, usage, raw answer)`` for one planning call; ``feedback``
        and ``previous`` carry the errors and the answer of the last call, if any. Raises
        ``ModelUnavailable`` (no key) and the provider's errors."""
        model = goal.model or self.model
        listed = ", ".join(f"{s} (up to {lvl:.1f})" for s, lvl in sorted(skills.items()))
        prompt = (
            f"Goal:\n{goal.text}\n\nSkills in the group: {listed or '(none yet)'}\n"
            f"At most {goal.max_tasks} tasks."
        )
        messages = [
            {"role": "system", "content": PLAN_SYSTEM},
            {"role": "user", "content": prompt},
        ]
        if feedback:
            messages += [
                {"role": "assistant", "content": previous},
                {
                    "role": "user",
                    "content": f"That plan cannot be used: {feedback}\nAnswer again with "
                    "the whole corrected plan as ONLY the JSON object.",
                },
            ]
        reply = await self.complete(messages, model)
        try:
            return parse_plan(reply.text), "", reply.usage, reply.text
        except ValueError as exc:
            return None, str(exc), reply.usage, reply.text
