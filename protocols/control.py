"""Client ↔ hub requests: submit, list, get, cancel; and the error reply."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ._base import MAX_INT, Identifier, WireModel
from .agents import AgentInfo
from .errors import ErrorCode
from .events import Event
from .tasks import TaskSpec, TaskState, TaskStatus


class SubmitTasks(WireModel):
    """Client → hub (request on ``api_submit``): add tasks, or a whole task graph, at once.

    ``depends_on`` may name tasks in the same batch or already known to the hub. The batch is
    checked whole: if one spec is refused, none is added.
    """

    type: Literal["claw.v1.api.submit"] = "claw.v1.api.submit"
    tasks: list[TaskSpec] = Field(min_length=1, max_length=10_000, description="The tasks.")


class Submitted(WireModel):
    """Hub → client: the ids of the submitted tasks, in order."""

    type: Literal["claw.v1.api.submitted"] = "claw.v1.api.submitted"
    ids: list[Identifier] = Field(description="Task ids, in the order submitted.")


class ListAgents(WireModel):
    """Client → hub (request on ``api_agents``)."""

    type: Literal["claw.v1.api.list_agents"] = "claw.v1.api.list_agents"
    include_gone: bool = Field(default=False, description="Also list lost and departed agents.")


class AgentList(WireModel):
    """Hub → client: participants."""

    type: Literal["claw.v1.api.agent_list"] = "claw.v1.api.agent_list"
    agents: list[AgentInfo] = Field(description="The participants.")


class ListTasks(WireModel):
    """Client → hub (request on ``api_tasks``)."""

    type: Literal["claw.v1.api.list_tasks"] = "claw.v1.api.list_tasks"
    states: list[TaskState] = Field(default_factory=list, description="Filter; empty = all.")
    limit: int = Field(default=1000, ge=1, le=100_000, description="Most tasks returned.")


class TaskList(WireModel):
    """Hub → client: tasks, oldest first."""

    type: Literal["claw.v1.api.task_list"] = "claw.v1.api.task_list"
    tasks: list[TaskStatus] = Field(description="The tasks.")


class GetTask(WireModel):
    """Client → hub (request on ``api_task``): one task's status."""

    type: Literal["claw.v1.api.get_task"] = "claw.v1.api.get_task"
    task_id: Identifier = Field(description="Task id.")


class CancelTask(WireModel):
    """Client → hub (request on ``api_cancel``): cancel a task that has not finished."""

    type: Literal["claw.v1.api.cancel_task"] = "claw.v1.api.cancel_task"
    task_id: Identifier = Field(description="Task id.")
    reason: str = Field(default="", max_length=1000, description="Why.")
    by: Identifier | None = Field(default=None, description="Who cancels (for the record).")


class ListEvents(WireModel):
    """Client → hub (request on ``api_events``): read the stored event log."""

    type: Literal["claw.v1.api.list_events"] = "claw.v1.api.list_events"
    task_id: Identifier | None = Field(default=None, description="Only this task's events.")
    kind: str | None = Field(
        default=None, max_length=100, description="Only kinds starting with this (`task.`)."
    )
    after: int = Field(default=0, ge=0, le=MAX_INT, description="Only events with a larger `seq`.")
    limit: int = Field(default=1000, ge=1, le=10_000, description="Most events returned.")


class EventList(WireModel):
    """Hub → client: stored events, oldest first."""

    type: Literal["claw.v1.api.event_list"] = "claw.v1.api.event_list"
    events: list[Event] = Field(description="The events.")


class ErrorReply(WireModel):
    """Hub → requester: the request was refused; nothing was applied."""

    type: Literal["claw.v1.error"] = "claw.v1.error"
    code: ErrorCode = Field(description="Machine-readable reason.")
    message: str = Field(description="Human-readable reason.")


class Ok(WireModel):
    """Hub → requester: done, nothing more to say."""

    type: Literal["claw.v1.ok"] = "claw.v1.ok"
    message: str = Field(default="", description="Optional note.")
