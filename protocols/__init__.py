"""Claw Hub wire protocol: pydantic models, subject names, JSON Schema export.

A leaf package: it imports pydantic and the standard library only, and does no I/O.
"""

from . import subjects
from ._base import (
    CLEARANCE_RANK,
    ID_PATTERN,
    Clearance,
    Device,
    Kind,
    WireModel,
    is_identifier,
)
from .agents import (
    AgentInfo,
    AgentProfile,
    AgentState,
    Deregister,
    Heartbeat,
    Register,
    RegisterAck,
    TaskRef,
)
from .codec import MESSAGE_TYPES, decode, decode_any, encode, type_name
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
from .events import Event
from .schema import message_schemas, render
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
from .work import Accept, Assignment, Cancel, Decline, Progress, Result, ResultAck

__all__ = [
    "CLEARANCE_RANK",
    "ID_PATTERN",
    "MESSAGE_TYPES",
    "Accept",
    "AgentInfo",
    "AgentList",
    "AgentProfile",
    "AgentState",
    "Assignment",
    "AttemptInfo",
    "AttemptOutcome",
    "Cancel",
    "CancelTask",
    "CandidateScore",
    "ClawHubError",
    "Clearance",
    "Constraints",
    "Decline",
    "Deregister",
    "Device",
    "ErrorCode",
    "ErrorReply",
    "Event",
    "EventList",
    "GetTask",
    "Heartbeat",
    "Kind",
    "ListAgents",
    "ListEvents",
    "ListTasks",
    "Ok",
    "Progress",
    "ProtocolError",
    "Register",
    "RegisterAck",
    "Result",
    "ResultAck",
    "SubmitTasks",
    "Submitted",
    "TaskList",
    "TaskRef",
    "TaskSpec",
    "TaskState",
    "TaskStatus",
    "Timeouts",
    "WireModel",
    "decode",
    "decode_any",
    "encode",
    "is_identifier",
    "message_schemas",
    "render",
    "subjects",
    "type_name",
]
