"""Encoding and decoding of wire messages. Pure functions, no I/O.

Decoding has hard edges, the same on every path (NATS, REST, WebSocket): a payload nested
deeper than ``MAX_DEPTH`` arrays and objects is ``malformed``; an integer outside the signed
64-bit range (``MIN_INT``..``MAX_INT``, what every store and most languages keep) and text
with a NUL character or an unpaired surrogate are ``invalid``. Nothing here raises anything
but ``ProtocolError``.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ._base import MAX_INT, MIN_INT
from .agents import AgentInfo, Deregister, Heartbeat, Register, RegisterAck
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
from .errors import ErrorCode, ProtocolError
from .events import Event
from .gateway import WsAnswer, WsOffer, WsPush, WsRequest, WsResponse
from .goals import (
    CancelGoal,
    DecidePlan,
    GetGoal,
    GoalList,
    GoalStatus,
    ListGoals,
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
from .tasks import TaskStatus
from .work import (
    Accept,
    Assignment,
    Assignments,
    Cancel,
    Decline,
    Delegate,
    Delegated,
    Progress,
    Result,
    ResultAck,
    ResultAcks,
    Results,
)

#: Every message model, in a stable order (the schema export follows it).
MESSAGE_TYPES: tuple[type[BaseModel], ...] = (
    Register,
    RegisterAck,
    Heartbeat,
    Deregister,
    AgentInfo,
    Assignment,
    Assignments,
    Accept,
    Decline,
    Progress,
    Result,
    ResultAck,
    Results,
    ResultAcks,
    Cancel,
    Delegate,
    Delegated,
    TaskStatus,
    Event,
    SubmitTasks,
    Submitted,
    ListAgents,
    AgentList,
    ListTasks,
    TaskList,
    GetTask,
    CancelTask,
    ListEvents,
    EventList,
    DecideTask,
    ReassignTask,
    ClaimTask,
    SetAgentMode,
    PostChat,
    GetGroup,
    GroupInfo,
    SubmitGoal,
    GoalStatus,
    ListGoals,
    GoalList,
    GetGoal,
    DecidePlan,
    CancelGoal,
    ErrorReply,
    Ok,
    WsRequest,
    WsResponse,
    WsOffer,
    WsAnswer,
    WsPush,
)

M = TypeVar("M", bound=BaseModel)


def type_name(model: type[BaseModel]) -> str:
    """The ``type`` discriminator of a message model."""
    name = _NAMES.get(model)
    if name is None:
        default = model.__pydantic_fields__["type"].default
        assert isinstance(default, str)
        name = _NAMES[model] = default
    return name


def _head(model: type[BaseModel]) -> bytes:
    """How ``encode`` starts a message of ``model``: ``{"type":"<name>"`` (the closing quote
    included, so that no name matches the start of a longer one)."""
    head = _HEADS.get(model)
    if head is None:
        head = _HEADS[model] = b'{"type":"' + type_name(model).encode() + b'"'
    return head


_NAMES: dict[type[BaseModel], str] = {}
_HEADS: dict[type[BaseModel], bytes] = {}
_BY_TYPE: dict[str, type[BaseModel]] = {type_name(m): m for m in MESSAGE_TYPES}
for _model in MESSAGE_TYPES:
    _head(_model)

#: Most levels of arrays and objects nested below the message object (a payload with more
#: is ``malformed``). The same as the recursion limit of pydantic's JSON parser, so the fast
#: path needs no check of its own: what it accepts is never deeper.
MAX_DEPTH = 200

#: How ``encode`` starts every message (``type`` is every model's first field).
_HEAD = re.compile(rb'\{"type":"([a-z0-9_.]+)"')


def _fast(model: type[M], data: bytes) -> M | None:
    """``data`` parsed and validated in one pass (pydantic-core's validator on the bytes,
    without ``model_validate_json``'s argument handling), or None if that fails: the caller
    then takes the slow path, which says exactly what is wrong."""
    try:
        return model.__pydantic_validator__.validate_json(data)  # type: ignore[no-any-return]
    except ValueError:  # ValidationError included
        return None


def encode(message: BaseModel) -> bytes:
    """Serialise a message to compact JSON bytes: pydantic-core's serializer straight to
    bytes, the same bytes as ``model_dump_json().encode()`` without its argument handling
    and the round trip through ``str``."""
    return message.__pydantic_serializer__.to_json(message)


#: Every byte mapped to ``0`` if it is a digit, else to a space: one C pass, after which a
#: run of 19 zeros says that a number may be out of the 64-bit range.
_DIGITS = bytes(ord("0") if b in b"0123456789" else ord(" ") for b in range(256))
_LONG_DIGITS = b"0" * 19


def load_object(data: bytes) -> dict[str, Any]:
    """``data`` parsed as one JSON object with every hard edge checked (depth, integer
    range, text no store can keep); ``ProtocolError`` otherwise. For a path that validates
    the object itself (the REST gateway)."""
    obj = _load_object(data)
    refuse_edges(obj)
    return obj


def _load_object(data: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(ErrorCode.MALFORMED, f"payload is not JSON: {exc}") from None
    except RecursionError:
        raise ProtocolError(
            ErrorCode.MALFORMED, f"payload is nested deeper than {MAX_DEPTH} levels"
        ) from None
    except ValueError as exc:  # a number Python will not convert (over 4300 digits)
        raise ProtocolError(ErrorCode.INVALID, f"payload has a number too large: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.MALFORMED, "payload is not a JSON object")
    return obj


def describe_errors(exc: ValidationError, limit: int = 5) -> str:
    """A pydantic validation error in one line: ``field.path: message; ...``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
        for e in exc.errors()[:limit]
    )


def _validate(model: type[M], obj: dict[str, Any]) -> M:
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        errors = describe_errors(exc)
        raise ProtocolError(ErrorCode.INVALID, f"invalid {type_name(model)}: {errors}") from None


def unstorable(value: object) -> str | None:
    """What in ``value`` (parsed JSON) no store can keep: a NUL character, an unpaired
    UTF-16 surrogate (JSON can escape both), an integer outside the signed 64-bit range;
    None when it is clean."""
    problem = _edges(value)
    return problem[1] if problem else None


def _edges(value: object) -> tuple[ErrorCode, str] | None:
    """The first hard edge ``value`` (parsed JSON) breaks: nesting deeper than
    ``MAX_DEPTH`` (``malformed``), or a value no store can keep (``invalid``)."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return ErrorCode.INVALID, "a NUL character"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return ErrorCode.INVALID, "an unpaired UTF-16 surrogate"
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if not MIN_INT <= item <= MAX_INT:
                return ErrorCode.INVALID, f"an integer out of range ({MIN_INT}..{MAX_INT})"
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                return ErrorCode.MALFORMED, f"nesting deeper than {MAX_DEPTH} levels"
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return None


def refuse_edges(obj: object) -> None:
    """``ProtocolError`` when parsed JSON breaks a hard edge: nested deeper than
    ``MAX_DEPTH`` (``malformed``), an integer out of the 64-bit range or text no store can
    keep (``invalid``)."""
    problem = _edges(obj)
    if problem is not None:
        code, what = problem
        if code is ErrorCode.MALFORMED:
            raise ProtocolError(code, f"payload has {what}")
        raise ProtocolError(code, f"a value with {what} is not accepted (no store can keep it)")


def _checked(data: bytes) -> bool:
    """Only JSON escapes (``\\u``) can carry text no store can keep, and only a run of 19
    digits an integer out of range: such a payload takes the checked path (parsed once, its
    values checked) rather than the fast one."""
    return b"\\u" in data or _LONG_DIGITS in data.translate(_DIGITS)


def _pick(obj: dict[str, Any], models: tuple[type[M], ...]) -> M:
    kind = obj.get("type")
    for model in models:
        if kind == type_name(model):
            return _validate(model, obj)
    expected = ", ".join(type_name(m) for m in models)
    raise ProtocolError(
        ErrorCode.UNKNOWN_TYPE, f"message type {kind!r} is not accepted here (expected {expected})"
    )


def decode(data: bytes, *models: type[M]) -> M:
    """Parse ``data`` as one of ``models`` (chosen by its ``type`` field).

    Raises ``ProtocolError`` with code ``malformed`` (also when nested deeper than
    ``MAX_DEPTH``), ``unknown_type`` or ``invalid`` (also for an integer out of the 64-bit
    range, text with a NUL character or an unpaired surrogate, which no store can keep).
    """
    for model in models:
        if data.startswith(_head(model)):  # the usual case: as ``encode`` wrote it
            fast = None if _checked(data) else _fast(model, data)
            if fast is not None:
                return fast
            break
    obj = _load_object(data)
    refuse_edges(obj)  # the slow path: what failed may be an edge (depth, range, text)
    return _pick(obj, models)


def decode_object(obj: object, *models: type[M]) -> M:
    """Like ``decode`` for JSON already parsed (a dict), e.g. a message inside an envelope."""
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.MALFORMED, "message is not a JSON object")
    refuse_edges(obj)
    return _pick(obj, models)


def decode_any(data: bytes) -> BaseModel:
    """Parse any known message."""
    checked = _checked(data)
    head = None if checked else _HEAD.match(data)
    if head is not None:
        known = _BY_TYPE.get(head.group(1).decode())
        fast = _fast(known, data) if known is not None else None
        if fast is not None:
            return fast
    obj = _load_object(data)
    refuse_edges(obj)  # the slow path: what failed may be an edge (depth, range, text)
    kind = obj.get("type")
    model = _BY_TYPE.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind!r}")
    return _validate(model, obj)
