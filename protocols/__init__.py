"""Claw Hub wire protocol: pydantic models, subject names, JSON Schema export.

A leaf package: it imports pydantic and the standard library only, and does no I/O.

What only the hub and the schema export use (the API contract table, the AsyncAPI and JSON
Schema export, ``build_models``) loads the first time one of its names is read, so an agent
(``import agents_sdk``) does not load it.
"""

import importlib
from typing import TYPE_CHECKING

from . import subjects
from ._base import (
    CLEARANCE_RANK,
    ID_PATTERN,
    MAX_INT,
    MIN_INT,
    Clearance,
    Device,
    Kind,
    WireModel,
    is_identifier,
)
from .agents import (
    AgentInfo,
    AgentMode,
    AgentProfile,
    AgentState,
    Deregister,
    Heartbeat,
    Register,
    RegisterAck,
    TaskRef,
)
from .auth import ROLES, Role, split_token
from .codec import (
    MAX_DEPTH,
    MESSAGE_TYPES,
    decode,
    decode_any,
    decode_object,
    describe_errors,
    encode,
    load_object,
    refuse_edges,
    type_name,
)
from .control import (
    AgentList,
    CancelTask,
    ErrorReply,
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
from .errors import ClawHubError, ErrorCode, ProtocolError
from .events import Event, attempt_runs
from .gateway import WsAnswer, WsOffer, WsPush, WsRequest, WsResponse
from .goals import (
    GOAL_TERMINAL,
    CancelGoal,
    DecidePlan,
    GetGoal,
    GoalList,
    GoalSpec,
    GoalState,
    GoalStatus,
    ListGoals,
    Plan,
    SubmitGoal,
)
from .human import (
    ClaimTask,
    DecideTask,
    GetGroup,
    GroupInfo,
    PostChat,
    ReassignTask,
    SetAgentMode,
)
from .review import ValidationKind, ValidationStep, Verdict
from .tasks import (
    AttemptInfo,
    AttemptOutcome,
    CandidateScore,
    Constraints,
    TaskSpec,
    TaskState,
    TaskStatus,
    Timeouts,
)
from .usage import Usage
from .work import (
    MAX_ASSIGNMENT_BATCH,
    MAX_DELEGATE_BATCH,
    MAX_RESULT_BATCH,
    Accept,
    Assignment,
    Assignments,
    Cancel,
    Child,
    Decline,
    Delegate,
    Delegated,
    Progress,
    Result,
    ResultAck,
    ResultAcks,
    Results,
)

if TYPE_CHECKING:  # loaded on first use, by __getattr__ below
    from .api import AGENT_CALLS, API, Call
    from .asyncapi import asyncapi
    from .build import build_models
    from .schema import message_schemas, render

#: The public names whose modules load the first time the name is read: name -> module.
_LAZY: dict[str, str] = {
    "AGENT_CALLS": "api",
    "API": "api",
    "Call": "api",
    "asyncapi": "asyncapi",
    "build_models": "build",
    "message_schemas": "schema",
    "render": "schema",
}

__all__ = [
    "AGENT_CALLS",
    "API",
    "CLEARANCE_RANK",
    "GOAL_TERMINAL",
    "ID_PATTERN",
    "MAX_ASSIGNMENT_BATCH",
    "MAX_DELEGATE_BATCH",
    "MAX_DEPTH",
    "MAX_INT",
    "MAX_RESULT_BATCH",
    "MESSAGE_TYPES",
    "MIN_INT",
    "ROLES",
    "Accept",
    "AgentInfo",
    "AgentList",
    "AgentMode",
    "AgentProfile",
    "AgentState",
    "Assignment",
    "Assignments",
    "AttemptInfo",
    "AttemptOutcome",
    "Call",
    "Cancel",
    "CancelGoal",
    "CancelTask",
    "CandidateScore",
    "Child",
    "ClaimTask",
    "ClawHubError",
    "Clearance",
    "Constraints",
    "DecidePlan",
    "DecideTask",
    "Decline",
    "Delegate",
    "Delegated",
    "Deregister",
    "Device",
    "ErrorCode",
    "ErrorReply",
    "Event",
    "EventList",
    "GetGoal",
    "GetGroup",
    "GetTask",
    "GoalList",
    "GoalSpec",
    "GoalState",
    "GoalStatus",
    "GroupInfo",
    "Heartbeat",
    "Kind",
    "ListAgents",
    "ListEvents",
    "ListGoals",
    "ListTasks",
    "Ok",
    "Plan",
    "PostChat",
    "Progress",
    "ProtocolError",
    "ReassignTask",
    "Register",
    "RegisterAck",
    "Result",
    "ResultAck",
    "ResultAcks",
    "Results",
    "Role",
    "SetAgentMode",
    "SubmitGoal",
    "SubmitTasks",
    "Submitted",
    "TaskList",
    "TaskRef",
    "TaskSpec",
    "TaskState",
    "TaskStatus",
    "Timeouts",
    "Usage",
    "ValidationKind",
    "ValidationStep",
    "Verdict",
    "WireModel",
    "WsAnswer",
    "WsOffer",
    "WsPush",
    "WsRequest",
    "WsResponse",
    "asyncapi",
    "attempt_runs",
    "build_models",
    "decode",
    "decode_any",
    "decode_object",
    "describe_errors",
    "encode",
    "is_identifier",
    "load_object",
    "message_schemas",
    "refuse_edges",
    "render",
    "split_token",
    "subjects",
    "type_name",
]


def __getattr__(name: str) -> object:
    """A public name of a module not loaded yet (``_LAZY``): load it, keep the name here."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
