"""The prompt an ``LLMAgent`` sends for a task, and reading JSON out of an answer. Pure."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import JsonValue

from protocols import TaskSpec, Verdict

from .memory import Note

#: Longest text one section of the prompt (the input, one dependency output) may take.
MAX_SECTION = 20_000

DEFAULT_SYSTEM = (
    "You are {name}, an agent in a Claw Group: a team of AI agents and humans coordinated "
    "by a hub. You receive one task at a time. Do exactly what the task asks, using its "
    "input and the outputs of the tasks it depends on. Meet every acceptance criterion. "
    "When earlier attempts were rejected, fix every reason given. Answer with the result "
    "itself, without preamble."
)

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n(.*?)\n?```", re.DOTALL)


def _clip(text: str, limit: int = MAX_SECTION) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 40] + f"\n… [cut: {len(text) - limit + 40} more characters]"


def render_data(value: JsonValue) -> str:
    """A value for the prompt: text as is, anything else as indented JSON."""
    if isinstance(value, str):
        return _clip(value)
    return _clip(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True))


def memory_query(spec: TaskSpec, input_text: int = 500) -> str:
    """The text to search the agent's memory with: title, instructions, start of the input."""
    parts = [spec.title, spec.instructions[:2000]]
    if spec.input is not None:
        parts.append(render_data(spec.input)[:input_text])
    return "\n".join(p for p in parts if p)


def task_prompt(
    spec: TaskSpec,
    deps: Mapping[str, JsonValue],
    feedback: Sequence[Verdict],
    notes: Sequence[Note],
) -> str:
    """The user message for one task, in Markdown sections."""
    out = [f"# Task: {spec.title}"]
    if spec.instructions.strip():
        out += ["", "## Instructions", spec.instructions.strip()]
    if spec.input is not None:
        out += ["", "## Input", render_data(spec.input)]
    if deps:
        out += ["", "## Outputs of the tasks this one depends on"]
        for task_id in sorted(deps):
            out += ["", f"### {task_id}", render_data(deps[task_id])]
    if spec.acceptance:
        out += ["", "## Acceptance criteria"]
        out += [f"- {criterion}" for criterion in spec.acceptance]
    rejected = [v for v in feedback if not v.accepted]
    if rejected:
        out += [
            "",
            "## Earlier attempts were rejected",
            "Fix every one of these problems in your answer:",
        ]
        for verdict in rejected:
            reasons = verdict.reasons.strip() or "(no reason given)"
            out.append(f"- attempt {verdict.attempt}, rejected by {verdict.by}: {reasons}")
    if notes:
        out += ["", "## From your memory (earlier work that may help)"]
        out += [f"- {_clip(n.text, 2000)}" for n in notes]
    if spec.output_schema is not None:
        schema = json.dumps(spec.output_schema, indent=2, sort_keys=True)
        out += [
            "",
            "## Output format",
            "Reply with one JSON value that matches this JSON Schema, and nothing else "
            "(no prose, no code fence):",
            schema,
        ]
    return "\n".join(out)


def build_messages(
    system: str,
    spec: TaskSpec,
    deps: Mapping[str, JsonValue],
    feedback: Sequence[Verdict],
    notes: Sequence[Note],
) -> list[dict[str, Any]]:
    """The chat messages for one task: the system prompt, then the task."""
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": task_prompt(spec, deps, feedback, notes)},
    ]


def parse_json_answer(text: str) -> JsonValue:
    """The JSON value in a model's answer: the whole text, a fenced block, or the outermost
    ``{...}``/``[...]``. Raises ``ValueError`` when there is none."""
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    for opener, closer in ("{}", "[]"):
        start, end = text.find(opener), text.rfind(closer)
        if 0 <= start < end:
            candidates.append(text[start : end + 1])
    for candidate in candidates:
        if not candidate:
            continue
        try:
            value: JsonValue = json.loads(candidate)
        except ValueError:
            continue
        return value
    preview = text.strip()[:200] or "(empty)"
    raise ValueError(f"the answer is not JSON: {preview!r}")
