"""What maps to what between a Synadia-protocol agent and a Claw Hub participant. Pure.

=========================================  =============================================
Synadia Agent Protocol v0.3                Claw Hub
=========================================  =============================================
a logical agent: one prompt subject        one participant (``participant_id``)
``agents.prompt.{agent}.{owner}.{name}``   id ``{agent}-{owner}-{name}``, name the subject
``metadata.skills`` (``--skills-from        ``AgentProfile.skills`` (``parse_skills``)
metadata``), or ``--skill`` flags
``metadata.model``                         ``AgentProfile.model``
``metadata.agent`` / ``owner``             labels ``nats-agents``, ``harness:{agent}``,
                                           ``owner:{owner}``
an ``Assignment``                          one prompt: the task as Markdown (``envelope``)
                                           plus a ``clawhub`` field (§5.6 extra)
``response`` chunks                        ``ctx.progress`` (the stall timer); their text
                                           is the result (``task_output``)
``status`` chunks (ack, keep-alive)        not progress: a hung model still sends them
a ``query`` chunk (§7)                     answered with ``QUERY_REPLY``, logged
an error frame, garbage, a lost stream     a failed attempt with the reason
=========================================  =============================================
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import JsonValue, ValidationError

from agents_sdk._prompt import parse_json_answer, task_prompt
from protocols import AgentProfile, Assignment, is_identifier

SkillsFrom = Literal["metadata", "flag"]

#: The metadata key a Synadia-protocol agent may declare its skills in.
SKILLS_KEY = "skills"
#: The metadata key naming the model an agent runs on.
MODEL_KEY = "model"
#: The level of a skill an agent names without one (``skills: "python,review"``).
DEFAULT_LEVEL = 0.5
#: What the bridge answers a mid-stream question (§7): nobody is on the line.
QUERY_REPLY = (
    "No one can answer questions during a Claw Hub task: proceed with your best judgement "
    "and say in your answer what you assumed."
)

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def participant_id(agent: str, owner: str, name: str) -> str:
    """The participant id of a logical agent: ``{agent}-{owner}-{name}``, made a valid
    identifier (one NATS subject token, at most 64 characters; a longer one keeps its
    start and gets a hash of the whole, so two agents never share an id)."""
    raw = "-".join(part for part in (agent, owner, name) if part)
    slug = _UNSAFE.sub("-", raw).strip("-_") or "agent"
    if len(slug) > 64 or not is_identifier(slug):
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        slug = (slug[:55].strip("-_") or "agent") + "-" + digest
    return slug


def subject_name(prompt_subject: str) -> str:
    """``agent.owner.name`` of a default prompt subject (``agents.prompt.a.o.n``), else the
    subject itself: what filters match and what the participant is called."""
    parts = prompt_subject.split(".")
    if len(parts) == 5 and parts[:2] == ["agents", "prompt"]:
        return ".".join(parts[2:])
    return prompt_subject


def matches(patterns: Sequence[str], agent: str, owner: str, name: str) -> bool:
    """True when no ``patterns`` are given or one matches. A pattern with a dot is a glob on
    ``agent.owner.name`` (``cc.*.*``, ``*.alice.*``); one without, a glob on the name."""
    if not patterns:
        return True
    full = f"{agent}.{owner}.{name}"
    for pattern in patterns:
        target = full if "." in pattern else name
        if fnmatch.fnmatchcase(target, pattern):
            return True
    return False


def parse_skills(text: str) -> tuple[dict[str, float], list[str]]:
    """Skills an agent declares in its metadata, and the problems found.

    Either a JSON object (``{"python": 0.9}``) or a list ``python=0.9,review`` (a name
    without a level is ``DEFAULT_LEVEL``). A bad entry is left out and reported; the rest
    stand."""
    problems: list[str] = []
    entries: list[tuple[str, object]] = []
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            raw = json.loads(stripped)
        except ValueError as exc:
            return {}, [f"skills metadata is not JSON: {exc}"]
        if not isinstance(raw, dict):
            return {}, ["skills metadata is not a JSON object"]
        entries = [(str(k), v) for k, v in raw.items()]
    else:
        for item in (i.strip() for i in stripped.split(",")):
            if item:
                label, sep, given = item.partition("=")
                entries.append((label, given if sep else DEFAULT_LEVEL))
    skills: dict[str, float] = {}
    for skill, level in entries:
        key = skill.strip().lower()
        try:
            value = float(level)  # type: ignore[arg-type]  # any JSON value may come
        except (TypeError, ValueError):
            problems.append(f"skill {skill!r}: level {level!r} is not a number")
            continue
        try:  # the profile's own rules: a skill name, a level within 0..1
            AgentProfile(id="check", name="check", skills={key: value})
        except ValidationError:
            problems.append(
                f"skill {skill!r}={value}: use a skill name (lower case, digits, . _ + -) "
                "and a level within 0..1"
            )
            continue
        skills[key] = value
    return skills, problems


def profile_skills(
    metadata: Mapping[str, str], skills_from: SkillsFrom, flags: Mapping[str, float]
) -> tuple[dict[str, float], list[str]]:
    """The skills of the participant: from ``metadata.skills`` (``metadata``; the flags
    fill in when the agent declares none) or from the flags alone (``flag``)."""
    if skills_from == "flag" or SKILLS_KEY not in metadata:
        return dict(flags), []
    skills, problems = parse_skills(metadata[SKILLS_KEY])
    return (skills or dict(flags)), problems


def labels(agent: str, owner: str) -> list[str]:
    """Labels a task can require (``Constraints.labels``) to go to such an agent."""
    return ["nats-agents", f"harness:{agent}", f"owner:{owner}"]


def envelope_fields(assignment: Assignment) -> tuple[str, dict[str, JsonValue]]:
    """The prompt text of an assignment (the task in Markdown sections, as an ``LLMAgent``
    gets it) and the ``clawhub`` extra field (§5.6: agents tolerate unknown fields; one
    that knows Claw Hub reads the task from it)."""
    spec = assignment.spec
    text = task_prompt(spec, assignment.dependency_outputs, assignment.feedback, [])
    extra: dict[str, JsonValue] = {
        "task_id": assignment.task_id,
        "attempt": assignment.attempt,
        "title": spec.title,
        "skills": dict(spec.skills),
        "input": spec.input,
        "stall_timeout": assignment.stall_timeout,
    }
    return text, extra


def task_output(text: str, output_schema: object | None) -> JsonValue:
    """The result of a finished stream: ``{"text": ...}``, or, when the task asks for output
    that matches a JSON Schema, the JSON value in the answer (``ValueError`` if none)."""
    if output_schema is not None:
        return parse_json_answer(text)
    return {"text": text}


def preview(text: str, limit: int = 120) -> str:
    """One line of the stream so far, for a progress message."""
    line = " ".join(text.split())
    return line if len(line) <= limit else "…" + line[-(limit - 1) :]
