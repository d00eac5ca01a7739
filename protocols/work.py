"""Doing the work: assignment, accept/decline, progress, result, cancel."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, JsonValue

from ._base import Identifier, Level, Timestamp, WireModel
from .control import ErrorReply
from .review import Verdict
from .tasks import TaskSpec, TaskState
from .usage import Usage


class Assignment(WireModel):
    """Hub → agent (on ``agent_inbox``): one attempt of a task, offered or pushed.

    An *offer* (``pushed`` false, a request) wants ``Accept`` or ``Decline`` as its reply; no
    reply within the accept timeout counts as a decline. A *pushed* assignment (``pushed``
    true, a plain publish, only to an agent that registered with ``credit``) is running
    already: the agent runs it, or publishes ``Decline`` on ``hub_decline``; an attempt the
    agent neither lists in a heartbeat, nor reports progress or a result for, within the
    accept timeout plus one heartbeat interval counts as unanswered. The attempt number is a
    fencing token: every progress and result message must carry it, and the hub refuses
    those of a revoked attempt.
    """

    type: Literal["claw.v1.task.assigned"] = "claw.v1.task.assigned"
    task_id: Identifier = Field(description="Task id.")
    attempt: int = Field(ge=1, description="Attempt number (fencing token).")
    spec: TaskSpec = Field(description="What to do.")
    dependency_outputs: dict[str, JsonValue] = Field(
        default_factory=dict, description="Outputs of the tasks this one depends on, by id."
    )
    stall_timeout: float = Field(gt=0, description="Report progress at least this often (s).")
    run_timeout: float | None = Field(default=None, description="Hard limit for this attempt.")
    feedback: list[Verdict] = Field(
        default_factory=list,
        description="Rejections of earlier attempts, with their reasons: what to fix.",
    )
    pushed: bool = Field(
        default=False,
        description="True: sent on credit, no answer expected; the attempt runs already. "
        "Run it, or publish `Decline` on `hub_decline` when it cannot be taken.",
    )


#: Most assignments one ``Assignments`` message may carry.
MAX_ASSIGNMENT_BATCH = 100


class Assignments(WireModel):
    """Hub → agent (publish on ``agent_inbox``, only to an agent that registered with
    ``credit`` and ``batches``): several pushed ``Assignment`` messages at once, each running
    already and each to be taken exactly as if it had come alone (run it, or ``Decline`` it
    on ``hub_decline``); the batch only saves messages."""

    type: Literal["claw.v1.task.assignments"] = "claw.v1.task.assignments"
    assignments: list[Assignment] = Field(
        min_length=1,
        max_length=MAX_ASSIGNMENT_BATCH,
        description="The pushed assignments (each with `pushed` true), in any order.",
    )


class Accept(WireModel):
    """Agent → hub (reply to ``Assignment``): I take this attempt."""

    type: Literal["claw.v1.task.accept"] = "claw.v1.task.accept"
    task_id: Identifier = Field(description="Task id.")
    attempt: int = Field(ge=1, description="Attempt number being accepted.")
    agent_id: Identifier = Field(description="Sender.")


class Decline(WireModel):
    """Agent → hub (reply to an offered ``Assignment``, or a publish on ``hub_decline`` for a
    pushed one): not this one; the hub tries the next candidate."""

    type: Literal["claw.v1.task.decline"] = "claw.v1.task.decline"
    task_id: Identifier = Field(description="Task id.")
    attempt: int = Field(ge=1, description="Attempt number being declined.")
    agent_id: Identifier = Field(description="Sender.")
    reason: str = Field(default="", max_length=1000, description="Why (busy, unable...).")


class Progress(WireModel):
    """Agent → hub (publish on ``hub_progress``): the attempt is alive and moving.

    Any progress or log line resets the attempt's stall timer.
    """

    type: Literal["claw.v1.task.progress"] = "claw.v1.task.progress"
    task_id: Identifier = Field(description="Task id.")
    attempt: int = Field(ge=1, description="Attempt number.")
    agent_id: Identifier = Field(description="Sender.")
    fraction: Level | None = Field(default=None, description="Done so far, 0..1, if known.")
    message: str | None = Field(default=None, max_length=10_000, description="Status or log line.")
    log: bool = Field(default=False, description="True for a log line rather than a status.")
    ts: Timestamp = Field(description="When it was sent.")


class Result(WireModel):
    """Agent → hub (request on ``hub_result``): the attempt finished (well or not)."""

    type: Literal["claw.v1.task.result"] = "claw.v1.task.result"
    task_id: Identifier = Field(description="Task id.")
    attempt: int = Field(ge=1, description="Attempt number (fencing token).")
    agent_id: Identifier = Field(description="Sender.")
    session: Identifier = Field(description="Sender's session.")
    ok: bool = Field(default=True, description="False when the handler raised.")
    output: JsonValue = Field(default=None, description="The output (any JSON).")
    error: str | None = Field(default=None, max_length=100_000, description="Error text if not ok.")
    duration: float | None = Field(default=None, ge=0, description="Seconds the handler ran.")
    usage: Usage | None = Field(
        default=None, description="Model tokens and cost this attempt spent (LLM agents)."
    )


class ResultAck(WireModel):
    """Hub → agent (reply to ``Result``): the result was taken for this attempt.

    ``accepted`` says whether the output passed validation (false also for ``ok=false``
    results); ``state`` says where the task went (done, or ready again for a retry, or
    failed). A result of a revoked attempt gets ``ErrorReply`` (``stale_attempt``) instead.
    """

    type: Literal["claw.v1.task.result_ack"] = "claw.v1.task.result_ack"
    task_id: Identifier = Field(description="Task id.")
    attempt: int = Field(ge=1, description="Attempt number the result carried.")
    accepted: bool = Field(description="True when the output passed validation.")
    state: TaskState = Field(description="The task's state after the result.")
    reason: str = Field(default="", description="Why it was refused or rejected.")
    duplicate: bool = Field(default=False, description="The same result had arrived before.")


#: Most results one ``Results`` message may carry.
MAX_RESULT_BATCH = 100


class Results(WireModel):
    """Agent → hub (request on ``hub_results``): several ``Result`` messages of one agent at
    once, acknowledged together by ``ResultAcks``. Each result is taken (or refused) on its
    own, exactly as if it had come alone; the batch only saves messages. Every result must
    name ``agent_id``, or the whole batch is refused (``forbidden``)."""

    type: Literal["claw.v1.task.results"] = "claw.v1.task.results"
    agent_id: Identifier = Field(description="Sender: the agent all the results are from.")
    results: list[Result] = Field(
        min_length=1, max_length=MAX_RESULT_BATCH, description="The results, in any order."
    )


class ResultAcks(WireModel):
    """Hub → agent (reply to ``Results``): one answer per result, in the same order: its
    ``ResultAck``, or the ``ErrorReply`` it alone would have got (``stale_attempt``...)."""

    type: Literal["claw.v1.task.result_acks"] = "claw.v1.task.result_acks"
    acks: list[Annotated[ResultAck | ErrorReply, Field(discriminator="type")]] = Field(
        description="Per result, in order."
    )


class Cancel(WireModel):
    """Hub → agent (publish on ``agent_inbox``): stop this attempt; it is no longer yours."""

    type: Literal["claw.v1.task.cancel"] = "claw.v1.task.cancel"
    task_id: Identifier = Field(description="Task id.")
    attempt: int = Field(ge=1, description="Attempt number to stop.")
    reason: str = Field(default="", description="Why (stalled, cancelled, lost...).")
    ts: Timestamp = Field(description="When it was sent.")


#: Most children one ``Delegate`` request may carry.
MAX_DELEGATE_BATCH = 20


class Child(WireModel):
    """One task a running attempt hands to the group (in ``Delegate.children``)."""

    key: Identifier = Field(
        description="The sender's name for this child within its attempt (the SDK numbers "
        "them `d1`, `d2`...): the same key sent again by the same attempt names the same "
        "child, so a retried request never makes a second one."
    )
    spec: TaskSpec = Field(
        description="What the child is to do. Leave `id`, `parent` and `goal` out: the hub "
        "sets them (the id is `<parent>-c<n>`), caps the deadline at the parent's and keeps "
        "the parent's data sensitivity."
    )


class Delegate(WireModel):
    """Agent → hub (request on ``hub_delegate``): the holder of a running attempt hands part
    of its work to the group as child tasks, matched like any other task.

    Fenced like a result: only the participant holding ``attempt`` of ``task_id`` right now,
    from the session that holds it, may delegate; anything else is refused (``stale_attempt``,
    ``not_holder``, ``wrong_session``) and recorded. A child an earlier attempt of the same
    task delegated with the same spec, and that has not failed, is handed back instead of a
    new one (its result is not computed twice).
    """

    type: Literal["claw.v1.task.delegate"] = "claw.v1.task.delegate"
    task_id: Identifier = Field(description="The parent task.")
    attempt: int = Field(ge=1, description="The parent's attempt that delegates (fencing).")
    agent_id: Identifier = Field(description="Sender: the attempt's holder.")
    session: Identifier = Field(description="Sender's session.")
    children: list[Child] = Field(
        min_length=1, max_length=MAX_DELEGATE_BATCH, description="The child tasks."
    )


class Delegated(WireModel):
    """Hub → agent (reply to ``Delegate``): the children's task ids, in the order asked.

    Wait for them by reading their status (``api.task``): the parent's attempt is not judged
    stalled while a child it delegated is open, and its slot is lent meanwhile (the hub may
    offer a child to the parent's own participant)."""

    type: Literal["claw.v1.task.delegated"] = "claw.v1.task.delegated"
    task_id: Identifier = Field(description="The parent task.")
    attempt: int = Field(ge=1, description="The parent's attempt.")
    ids: list[Identifier] = Field(description="The child task ids, one per child asked.")
    reused: list[bool] = Field(
        description="Per child: true when it is a child of an earlier attempt, handed back "
        "(maybe already done) instead of a new task."
    )
