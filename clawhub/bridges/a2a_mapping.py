"""What the A2A bridge maps, without the I/O: a card to a profile, an assignment to an A2A
``Message``, a remote task's artifacts to a result, an A2A status to a progress line.

=================================  =================================================
A2A (``a2a.proto``)                Claw Hub
=================================  =================================================
``AgentCard.name``                 ``AgentProfile.name``; its slug is the default id
``AgentCard.skills[].id``          a skill (lower-cased), level ``--skill id=L`` or
                                   the default level
``AgentCard.provider``             label ``provider:<organization>``
``AgentCard.capabilities``         streaming: ``SendStreamingMessage``; else
                                   ``SendMessage`` + ``GetTask`` polling
``Message`` (role user)            the assignment: a text part (title, instructions,
                                   acceptance, feedback) and a data part (``input``,
                                   ``dependency_outputs``)
``Artifact`` parts                 the result's output (``result_output``)
=================================  =================================================
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from typing import Any

from a2a.types.a2a_pb2 import (
    AgentCard,
    Artifact,
    Message,
    Part,
    Role,
    TaskState,
    TaskStatus,
)
from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict, ParseDict
from pydantic import JsonValue

from protocols import Assignment

from ..errors import HubError

#: The path of an agent's public card under its base URL (A2A specification).
CARD_PATH = "/.well-known/agent-card.json"

#: The transports the bridge speaks (the a2a-sdk client's JSON-RPC and REST bindings).
BINDINGS = ("JSONRPC", "HTTP+JSON")

#: Remote states after which the task will not change any more.
TERMINAL = frozenset(
    {
        TaskState.TASK_STATE_COMPLETED,
        TaskState.TASK_STATE_FAILED,
        TaskState.TASK_STATE_CANCELED,
        TaskState.TASK_STATE_REJECTED,
    }
)

#: Longest question or progress line taken from a remote status message.
MAX_TEXT = 2_000


class A2ABridgeError(HubError):
    """A remote A2A agent cannot be bridged: no card at the URL, a card that is not one, or
    no interface the bridge speaks."""


class RemoteTaskError(Exception):
    """The remote agent ended the task without an answer (failed, rejected, cancelled on its
    side, auth required, or garbage); the attempt's result is an error with this text."""


def card_target(url: str) -> tuple[str, str]:
    """``(base, relative path)`` for ``A2ACardResolver``: a URL ending in ``.json`` is the card
    itself; any other is the agent's base URL and the card is at ``CARD_PATH``."""
    url = url.strip()
    if url.split("?", 1)[0].endswith(".json"):
        return url, "/"
    return url.rstrip("/"), CARD_PATH


def card_problem(card: AgentCard) -> str | None:
    """Why ``card`` cannot be bridged (``None`` when it can)."""
    if not card.name.strip():
        return "it has no name (is this an A2A agent card?)"
    bindings = {i.protocol_binding for i in card.supported_interfaces if i.url}
    if not bindings:
        return "it names no interface to call (supportedInterfaces is empty)"
    if not bindings & set(BINDINGS):
        return f"it offers only {', '.join(sorted(bindings))}; the bridge speaks {BINDINGS}"
    return None


def slug(text: str, limit: int = 64) -> str:
    """``text`` as an identifier: lower case, runs of other characters as ``-``."""
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")[:limit].strip("-_")


def card_skills(
    card: AgentCard, levels: dict[str, float], default_level: float
) -> dict[str, float]:
    """The skill profile: each card skill (its id, lower-cased) at its ``levels`` entry or
    ``default_level``, plus any ``levels`` entry the card does not name."""
    skills: dict[str, float] = {}
    for skill in card.skills:
        name = re.sub(r"[^a-z0-9_.+-]+", "-", (skill.id or skill.name).lower()).strip("-")[:64]
        if name:
            skills[name] = default_level
    skills.update({k.lower(): v for k, v in levels.items()})
    return skills


def card_labels(card: AgentCard) -> list[str]:
    """Labels from the card: ``provider:<organization>`` and ``a2a``."""
    labels = ["a2a"]
    if card.provider.organization:
        labels.append(f"provider:{card.provider.organization}"[:100])
    return labels


def assignment_message(assignment: Assignment) -> Message:
    """The first ``Message`` of the remote task: the assignment in words and as data."""
    spec = assignment.spec
    lines = [spec.title]
    if spec.instructions:
        lines += ["", spec.instructions]
    if spec.acceptance:
        lines += ["", "Acceptance criteria:", *(f"- {c}" for c in spec.acceptance)]
    for verdict in assignment.feedback:
        lines += ["", f"An earlier attempt was rejected: {verdict.reasons}"]
    data: dict[str, Any] = {"input": spec.input}
    if assignment.dependency_outputs:
        data["dependency_outputs"] = dict(assignment.dependency_outputs)
    parts = [Part(text="\n".join(lines)), _data_part(data)]
    return Message(
        role=Role.ROLE_USER,
        message_id=str(uuid.uuid4()),
        parts=parts,
        metadata={"clawhub_task": assignment.task_id, "clawhub_attempt": assignment.attempt},
    )


def reply_message(text: str, sender: str, task_id: str, context_id: str) -> Message:
    """A human's answer to INPUT_REQUIRED: the next message of the same remote task."""
    return Message(
        role=Role.ROLE_USER,
        message_id=str(uuid.uuid4()),
        task_id=task_id,
        context_id=context_id,
        parts=[Part(text=text)],
        metadata={"clawhub_sender": sender},
    )


def _data_part(data: object) -> Part:
    return Part(data=ParseDict(json.loads(json.dumps(data)), struct_pb2.Value()))


def part_json(part: Part) -> dict[str, JsonValue]:
    """One part as JSON: ``{"text": ...}``, ``{"data": ...}``, ``{"url": ..., ...}``."""
    which = part.WhichOneof("content")
    if which == "text":
        return {"text": part.text}
    if which == "data":
        value = MessageToDict(part.data)
        return {"data": _integral(value)}
    if which == "url":
        return {"url": part.url, "media_type": part.media_type, "filename": part.filename}
    if which == "raw":
        return {"raw_bytes": len(part.raw), "media_type": part.media_type}
    return {}


def _integral(value: Any) -> Any:
    """``google.protobuf.Value`` keeps numbers as doubles: whole ones back to ints."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    return value


def message_text(message: Message) -> str:
    """The text parts of a message, joined (cut to ``MAX_TEXT``)."""
    text = "\n".join(p.text for p in message.parts if p.WhichOneof("content") == "text")
    return text[:MAX_TEXT]


def result_output(artifacts: Iterable[Artifact], answer: Message | None = None) -> JsonValue:
    """The result of a completed remote task.

    Exactly one data part in all the artifacts (and an answer message) is the output as it
    is; anything else is ``{"text": <every text part, joined>, "artifacts": [{"name",
    "parts"}]}``."""
    found = [(a.name, list(a.parts)) for a in artifacts]
    if answer is not None and answer.parts:
        found.append(("message", list(answer.parts)))
    parts = [p for _, ps in found for p in ps]
    if len(parts) == 1 and parts[0].WhichOneof("content") == "data":
        return part_json(parts[0])["data"]
    text = "".join(p.text for p in parts if p.WhichOneof("content") == "text")
    listed: list[JsonValue] = [
        {"name": name, "parts": [part_json(p) for p in ps]} for name, ps in found
    ]
    return {"text": text, "artifacts": listed}


def merge_artifact(artifacts: dict[str, Artifact], update: Artifact, append: bool) -> None:
    """Apply a ``TaskArtifactUpdateEvent``: a new artifact, or chunks appended to one."""
    known = artifacts.get(update.artifact_id)
    if known is not None and append:
        known.parts.extend(update.parts)
        return
    copy = Artifact()
    copy.CopyFrom(update)
    artifacts[update.artifact_id or str(len(artifacts))] = copy


def state_name(state: int) -> str:
    """``TASK_STATE_WORKING`` → ``working``."""
    return str(TaskState.Name(state)).removeprefix("TASK_STATE_").lower()


def status_line(status: TaskStatus) -> str:
    """A progress line for a remote status: ``a2a working: <its message>``."""
    text = message_text(status.message) if status.HasField("message") else ""
    return f"a2a {state_name(status.state)}" + (f": {text}" if text else "")
