"""The request/reply contract of every subject: what is sent and what comes back.

One table serves the hub (how to decode a request), the gateway (typed REST routes, one per
verb) and the AsyncAPI export. Pure data, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from . import subjects
from .agents import AgentInfo, Deregister, Heartbeat, Register, RegisterAck
from .control import (
    AgentList,
    CancelTask,
    EventList,
    GetTask,
    ListAgents,
    ListEvents,
    ListTasks,
    Ok,
    SubmitTasks,
    Submitted,
    TaskList,
)
from .goals import CancelGoal, DecidePlan, GetGoal, GoalList, GoalStatus, ListGoals, SubmitGoal
from .human import (
    ClaimTask,
    DecideTask,
    GetGroup,
    GroupInfo,
    PostChat,
    ReassignTask,
    SetAgentMode,
)
from .tasks import TaskStatus
from .work import Decline, Delegate, Delegated, Progress, Result, ResultAck, ResultAcks, Results


@dataclass(frozen=True, slots=True)
class Call:
    """One subject's contract: the request model and the reply model (None: publish only)."""

    request: type[BaseModel]
    reply: type[BaseModel] | None
    summary: str


#: ``claw.<group>.api.<verb>``: client → hub requests, by verb (``subjects.API_VERBS``).
API: dict[str, Call] = {
    subjects.API_SUBMIT: Call(SubmitTasks, Submitted, "Submit tasks (a task graph) at once."),
    subjects.API_AGENTS: Call(ListAgents, AgentList, "List the participants."),
    subjects.API_TASKS: Call(ListTasks, TaskList, "List tasks, oldest first."),
    subjects.API_TASK: Call(GetTask, TaskStatus, "One task's status."),
    subjects.API_CANCEL: Call(CancelTask, TaskStatus, "Cancel a task (humans and admins)."),
    subjects.API_EVENTS: Call(ListEvents, EventList, "Read the stored event log."),
    subjects.API_DECIDE: Call(
        DecideTask,
        TaskStatus,
        "Approve or reject a result waiting for a human (humans and admins).",
    ),
    subjects.API_REASSIGN: Call(
        ReassignTask, TaskStatus, "Take a task back and offer it again (humans and admins)."
    ),
    subjects.API_CLAIM: Call(ClaimTask, TaskStatus, "A participant takes a ready task."),
    subjects.API_AGENT_MODE: Call(
        SetAgentMode, AgentInfo, "Pause, resume or drain a participant (humans and admins)."
    ),
    subjects.API_CHAT: Call(PostChat, Ok, "Post a line in the group's shared channel."),
    subjects.API_GROUP: Call(GetGroup, GroupInfo, "The group at a glance."),
    subjects.API_GOAL_SUBMIT: Call(SubmitGoal, GoalStatus, "Plan and run a goal."),
    subjects.API_GOALS: Call(ListGoals, GoalList, "List goals, oldest first."),
    subjects.API_GOAL: Call(GetGoal, GoalStatus, "One goal's status."),
    subjects.API_GOAL_DECIDE: Call(
        DecidePlan, GoalStatus, "Approve or reject a goal's plan (humans and admins)."
    ),
    subjects.API_GOAL_CANCEL: Call(
        CancelGoal, GoalStatus, "Stop a goal and its open tasks (humans and admins)."
    ),
}

#: ``claw.<group>.hub.<name>``: agent → hub messages, by name.
AGENT_CALLS: dict[str, Call] = {
    "register": Call(Register, RegisterAck, "Join the group (or re-join after a reconnect)."),
    "heartbeat": Call(Heartbeat, None, "I am alive, and this is what I run."),
    "deregister": Call(Deregister, Ok, "Leaving on purpose; revoke what I hold."),
    "progress": Call(Progress, None, "Progress or a log line of an attempt."),
    "result": Call(Result, ResultAck, "The attempt finished (well or not)."),
    "results": Call(Results, ResultAcks, "Several attempts finished: their results at once."),
    "delegate": Call(Delegate, Delegated, "Hand part of a running attempt to the group."),
    "decline": Call(Decline, None, "A credit agent cannot take an assignment pushed to it."),
}
