"""What maps to what between A2A (``a2a.proto``, v1.0) and the hub: pure functions, no I/O.

================================  =============================================================
hub                               A2A
================================  =============================================================
task id                           ``Task.id`` (the same string)
``spec.metadata["a2a.context"]``  ``Task.context_id`` (the message's, else a fresh one; a goal's
                                  own tasks: the goal id)
pending, ready, assigned          ``TASK_STATE_SUBMITTED``
running, validating               ``TASK_STATE_WORKING``
needs_human                       ``TASK_STATE_INPUT_REQUIRED``
done                              ``TASK_STATE_COMPLETED``, the output as the artifact ``output``
failed                            ``TASK_STATE_FAILED``, the reason in the status message
cancelled                         ``TASK_STATE_CANCELED``, the reason in the status message
goal planning                     ``TASK_STATE_SUBMITTED`` (the goal id is the A2A task id)
goal awaiting_approval            ``TASK_STATE_INPUT_REQUIRED``
goal running                      ``TASK_STATE_WORKING``
goal done / failed / cancelled    ``COMPLETED`` (the deliverable) / ``FAILED`` / ``CANCELED``
================================  =============================================================

A message becomes a task when its metadata names skills (``skill``: a skill id of the card,
or a list of them; ``skills``: ``{name: minimum level}``); its text parts are the task's
instructions, its data part the input (a text-only message: ``{"text": <the text>}``);
``human_review: true`` makes a human approve the result (``INPUT_REQUIRED`` until then),
``max_attempts`` caps the failed attempts. A message with no skill is a goal for the
coordinator model (its text is the goal).
"""

from __future__ import annotations

import datetime
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from a2a.types import (
    Artifact,
    Message,
    Part,
    Role,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatusUpdateEvent,
)
from a2a.types import TaskStatus as A2AStatus
from a2a.utils.errors import (
    A2AError,
    InternalError,
    InvalidParamsError,
    InvalidRequestError,
    TaskNotCancelableError,
    TaskNotFoundError,
)
from google.protobuf import json_format, struct_pb2
from pydantic import JsonValue, ValidationError

from protocols import (
    ErrorCode,
    GoalSpec,
    GoalStatus,
    ProtocolError,
    TaskSpec,
    TaskStatus,
    ValidationStep,
    describe_errors,
)
from protocols import TaskState as HubState

#: The card's skill for a goal in words (``card.GOAL_SKILL``).
GOAL_SKILL = "clawhub.goal"
#: Keys of ``TaskSpec.metadata`` the bridge keeps.
CONTEXT_KEY = "a2a.context"
MESSAGE_KEY = "a2a.message"

#: The A2A state of each hub task state.
TASK_STATES: dict[HubState, int] = {
    HubState.PENDING: TaskState.TASK_STATE_SUBMITTED,
    HubState.READY: TaskState.TASK_STATE_SUBMITTED,
    HubState.ASSIGNED: TaskState.TASK_STATE_SUBMITTED,
    HubState.RUNNING: TaskState.TASK_STATE_WORKING,
    HubState.VALIDATING: TaskState.TASK_STATE_WORKING,
    HubState.NEEDS_HUMAN: TaskState.TASK_STATE_INPUT_REQUIRED,
    HubState.DONE: TaskState.TASK_STATE_COMPLETED,
    HubState.FAILED: TaskState.TASK_STATE_FAILED,
    HubState.CANCELLED: TaskState.TASK_STATE_CANCELED,
}
#: The A2A state of each goal state.
GOAL_STATES: dict[str, int] = {
    "planning": TaskState.TASK_STATE_SUBMITTED,
    "awaiting_approval": TaskState.TASK_STATE_INPUT_REQUIRED,
    "running": TaskState.TASK_STATE_WORKING,
    "done": TaskState.TASK_STATE_COMPLETED,
    "failed": TaskState.TASK_STATE_FAILED,
    "cancelled": TaskState.TASK_STATE_CANCELED,
}
#: A2A states after which a task changes no more, and those a blocking send returns at.
FINAL = frozenset(
    {TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_FAILED, TaskState.TASK_STATE_CANCELED}
)
INTERRUPTED = frozenset({TaskState.TASK_STATE_INPUT_REQUIRED})


def hub_states(a2a_state: int) -> list[HubState]:
    """The hub states an A2A state filter stands for (``ListTasks.status``)."""
    return [s for s, a in TASK_STATES.items() if a == a2a_state]


# -- a message in ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    """What an A2A message asks for: a task (``task``) or a goal (``goal``)."""

    context_id: str
    task: TaskSpec | None = None
    goal: GoalSpec | None = None


def _invalid(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID, message)


def struct_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A protobuf ``Struct`` as a plain dict."""
    return dict(json_format.MessageToDict(struct))


def _skills(meta: Mapping[str, Any]) -> dict[str, float]:
    skills: dict[str, float] = {}
    named = meta.get("skill")
    if named is not None:
        names = [named] if isinstance(named, str) else named
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise _invalid("metadata.skill must be a skill id of the card (or a list of them)")
        skills.update(dict.fromkeys(names, 0.0))
    levels = meta.get("skills")
    if levels is not None:
        if not isinstance(levels, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in levels.values()
        ):
            raise _invalid('metadata.skills must be {"<skill>": <minimum level 0..1>, ...}')
        skills.update({str(k): float(v) for k, v in levels.items()})
    return skills


def read_message(message: Message, request_meta: Mapping[str, Any]) -> Submission:
    """The task or goal an A2A message asks for; ``ProtocolError`` (``invalid``) saying
    what is wrong."""
    meta = {**request_meta, **struct_dict(message.metadata)}
    texts: list[str] = []
    data: list[JsonValue] = []
    for part in message.parts:
        kind = part.WhichOneof("content")
        if kind == "text":
            texts.append(part.text)
        elif kind == "data":
            data.append(json_format.MessageToDict(part.data))
        else:
            raise ProtocolError(
                ErrorCode.INVALID,
                f"a {kind or 'empty'} part is not supported: send text and data parts",
            )
    text = "\n".join(t for t in texts if t)
    context = message.context_id or f"ctx-{uuid.uuid4().hex[:12]}"
    tags = {CONTEXT_KEY: context, MESSAGE_KEY: message.message_id, "source": "a2a"}
    skills = _skills(meta)
    as_goal = skills.pop(GOAL_SKILL, None) is not None
    if as_goal and skills:
        raise _invalid(f"{GOAL_SKILL} is a goal for the coordinator: name no other skill")
    title = meta.get("title")
    if title is not None and not isinstance(title, str):
        raise _invalid("metadata.title must be a string")
    priority = meta.get("priority", 0)
    if not isinstance(priority, int | float) or isinstance(priority, bool):
        raise _invalid("metadata.priority must be a number")
    review = meta.get("human_review", False)
    if not isinstance(review, bool):
        raise _invalid("metadata.human_review must be true or false")
    attempts = meta.get("max_attempts", 3)
    if not isinstance(attempts, int | float) or isinstance(attempts, bool) or attempts % 1:
        raise _invalid("metadata.max_attempts must be a whole number (1..100)")
    try:
        if not skills:
            if not text:
                raise _invalid(
                    "a message without metadata.skill is a goal for the coordinator: "
                    "it needs a text part"
                )
            goal = GoalSpec(id=f"g-{secrets.token_hex(6)}", text=text, metadata=tags)
            return Submission(context, goal=goal)
        value: JsonValue = data[0] if len(data) == 1 else data if data else {"text": text}
        first_line = (text.strip().splitlines() or ["A2A message"])[0]
        spec = TaskSpec(
            id=f"t-{secrets.token_hex(6)}",  # chosen here: the stream follows it from the start
            title=(title or first_line)[:300] or "A2A message",
            instructions=text,
            input=value,
            skills=skills,
            priority=int(priority),
            max_attempts=int(attempts),
            validation=[ValidationStep(kind="human")] if review else [],
            metadata=tags,
        )
    except ValidationError as exc:
        raise _invalid(f"the message is not a valid task: {describe_errors(exc)}") from None
    return Submission(context, task=spec)


# -- a task out -----------------------------------------------------------------------------


def _timestamp(ts: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC)


def agent_message(text: str, task_id: str, context_id: str) -> Message:
    """A message from the group (the status message of a task)."""
    return Message(
        message_id=f"{task_id}-{uuid.uuid4().hex[:8]}",
        context_id=context_id,
        task_id=task_id,
        role=Role.ROLE_AGENT,
        parts=[Part(text=text)],
    )


def output_part(value: JsonValue) -> Part:
    """A JSON value as a part: text for a string, data for anything else."""
    if isinstance(value, str):
        return Part(text=value)
    return Part(data=json_format.ParseDict(value, struct_pb2.Value()))


def context_of(status: TaskStatus) -> str:
    """The A2A context of a task: the one its message gave, else its goal, else its id."""
    return status.spec.metadata.get(CONTEXT_KEY) or status.spec.goal or status.id


def task_note(s: TaskStatus) -> str:
    """One line on where a task is, for the status message."""
    state = s.state
    if state is HubState.PENDING:
        return f"waiting for {', '.join(s.spec.depends_on)}"
    if state is HubState.READY:
        wanted = ", ".join(f"{k} >= {v:g}" for k, v in s.spec.skills.items()) or "any skill"
        last = s.history[-1] if s.history else None
        before = f"attempt {last.attempt} {last.outcome} on {last.agent_id}; " if last else ""
        return f"{before}waiting for a participant with {wanted}"
    if state is HubState.ASSIGNED:
        return f"offered to {s.assigned_to} (attempt {s.attempt})"
    if state is HubState.RUNNING:
        return s.progress_message or f"running on {s.assigned_to} (attempt {s.attempt})"
    if state is HubState.VALIDATING:
        return f"validating the result of attempt {s.attempt}"
    if state is HubState.NEEDS_HUMAN:
        return "waiting for a human to approve or reject the result (clawhub decide)"
    if state is HubState.DONE:
        by = s.history[-1].agent_id if s.history else "the group"
        return f"done by {by} (attempt {s.attempt})"
    return s.error or state.value


def output_artifact(task_id: str, value: JsonValue, name: str = "output") -> Artifact:
    """The accepted output of a task (or a goal's deliverable) as an artifact."""
    return Artifact(artifact_id=f"{task_id}-{name}", name=name, parts=[output_part(value)])


def _history(s: TaskStatus, context: str) -> list[Message]:
    parts = [Part(text=s.spec.instructions)] if s.spec.instructions else []
    if s.spec.input is not None:
        parts.append(output_part(s.spec.input))
    if not parts:
        parts = [Part(text=s.spec.title)]
    message_id = s.spec.metadata.get(MESSAGE_KEY) or f"{s.id}-request"
    return [
        Message(
            message_id=message_id,
            context_id=context,
            task_id=s.id,
            role=Role.ROLE_USER,
            parts=parts,
        )
    ]


def task_status(s: TaskStatus) -> A2AStatus:
    """The A2A status of a hub task."""
    return A2AStatus(
        state=TASK_STATES[s.state],  # type: ignore[arg-type]
        message=agent_message(task_note(s), s.id, context_of(s)),
        timestamp=_timestamp(s.updated_at),
    )


def _task_meta(s: TaskStatus) -> dict[str, Any]:
    return {
        "clawhub": {
            "state": s.state.value,
            "attempt": s.attempt,
            "assigned_to": s.assigned_to,
            "progress": s.progress,
            "skills": dict(s.spec.skills),
            "goal": s.spec.goal,
        }
    }


def to_task(s: TaskStatus, history: bool = True, artifacts: bool = True) -> Task:
    """A hub task as an A2A ``Task``."""
    context = context_of(s)
    done = s.state is HubState.DONE and artifacts
    return Task(
        id=s.id,
        context_id=context,
        status=task_status(s),
        artifacts=[output_artifact(s.id, s.output)] if done else [],
        history=_history(s, context) if history else [],
        metadata=_task_meta(s),
    )


def goal_note(g: GoalStatus) -> str:
    """One line on where a goal is."""
    if g.state == "planning":
        return "the coordinator model is planning the goal"
    if g.state == "awaiting_approval":
        return "the plan waits for a human's approval (clawhub goal approve)"
    if g.state == "running":
        return f"{g.tasks_done}/{g.tasks_total} tasks done"
    if g.state == "done":
        return f"done: {g.tasks_done}/{g.tasks_total} tasks"
    return g.error or g.state


def goal_context(g: GoalStatus) -> str:
    """The A2A context of a goal."""
    return g.spec.metadata.get(CONTEXT_KEY) or g.id


def goal_status(g: GoalStatus) -> A2AStatus:
    """The A2A status of a goal."""
    return A2AStatus(
        state=GOAL_STATES[g.state],  # type: ignore[arg-type]
        message=agent_message(goal_note(g), g.id, goal_context(g)),
        timestamp=_timestamp(g.updated_at),
    )


def goal_to_task(g: GoalStatus, history: bool = True, artifacts: bool = True) -> Task:
    """A goal as an A2A ``Task`` (its id is the goal id)."""
    context = goal_context(g)
    message = Message(
        message_id=g.spec.metadata.get(MESSAGE_KEY) or f"{g.id}-request",
        context_id=context,
        task_id=g.id,
        role=Role.ROLE_USER,
        parts=[Part(text=g.spec.text)],
    )
    done = g.state == "done" and artifacts
    return Task(
        id=g.id,
        context_id=context,
        status=goal_status(g),
        artifacts=[output_artifact(g.id, g.deliverable, "deliverable")] if done else [],
        history=[message] if history else [],
        metadata={
            "clawhub": {
                "goal_state": g.state,
                "task_ids": list(g.task_ids),
                "tasks_done": g.tasks_done,
                "tasks_total": g.tasks_total,
            }
        },
    )


def as_submitted(task: Task) -> Task:
    """``task`` as it was when submitted (the first event of a stream)."""
    first = Task()
    first.CopyFrom(task)
    first.status.state = TaskState.TASK_STATE_SUBMITTED
    first.status.message.parts[0].text = "submitted"
    del first.artifacts[:]
    return first


def status_update(task: Task, final: bool = False) -> TaskStatusUpdateEvent:
    """The status of ``task`` as a stream event."""
    meta = {"final": True} if final else {}
    return TaskStatusUpdateEvent(
        task_id=task.id, context_id=task.context_id, status=task.status, metadata=meta
    )


def artifact_update(task: Task) -> TaskArtifactUpdateEvent:
    """The artifact of a finished ``task`` as a stream event."""
    return TaskArtifactUpdateEvent(
        task_id=task.id,
        context_id=task.context_id,
        artifact=task.artifacts[0],
        append=False,
        last_chunk=True,
    )


# -- refusals -------------------------------------------------------------------------------


def a2a_error(code: ErrorCode, message: str, cancel: bool = False) -> A2AError:
    """A hub refusal as the A2A error a client understands (our code in its data)."""
    text = f"{code.value}: {message}"
    data = {"clawhub_code": code.value}
    if code is ErrorCode.UNKNOWN_TASK:
        return TaskNotFoundError(text, data)
    if code is ErrorCode.CONFLICT and cancel:
        return TaskNotCancelableError(text, data)
    if code in (ErrorCode.INVALID, ErrorCode.MALFORMED, ErrorCode.OVERSIZE):
        return InvalidParamsError(text, data)
    if code in (ErrorCode.INTERNAL, ErrorCode.UNAVAILABLE):
        return InternalError(text, data)
    return InvalidRequestError(text, data)


#: The hub's code for each A2A error reason (for the record of a refusal the SDK answered).
REASON_CODES: dict[str, ErrorCode] = {
    "INVALID_REQUEST": ErrorCode.MALFORMED,
    "INVALID_PARAMS": ErrorCode.INVALID,
    "METHOD_NOT_FOUND": ErrorCode.UNKNOWN_TYPE,
    "TASK_NOT_FOUND": ErrorCode.UNKNOWN_TASK,
    "TASK_NOT_CANCELABLE": ErrorCode.CONFLICT,
    "VERSION_NOT_SUPPORTED": ErrorCode.INVALID,
    "UNSUPPORTED_OPERATION": ErrorCode.INVALID,
    "PUSH_NOTIFICATION_NOT_SUPPORTED": ErrorCode.INVALID,
    "CONTENT_TYPE_NOT_SUPPORTED": ErrorCode.INVALID,
    "INTERNAL_ERROR": ErrorCode.INTERNAL,
}
#: The hub's code for each JSON-RPC error code.
RPC_CODES: dict[int, ErrorCode] = {
    -32700: ErrorCode.MALFORMED,
    -32600: ErrorCode.MALFORMED,
    -32601: ErrorCode.UNKNOWN_TYPE,
    -32602: ErrorCode.INVALID,
    -32603: ErrorCode.INTERNAL,
    -32001: ErrorCode.UNKNOWN_TASK,
    -32002: ErrorCode.CONFLICT,
}
