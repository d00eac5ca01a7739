"""Hub replies and refusals as HTTP responses: the status of each ``ErrorCode`` and the
error responses every REST route documents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from protocols import ErrorCode, ErrorReply, encode

#: HTTP status of each refusal.
STATUS: dict[ErrorCode, int] = {
    ErrorCode.MALFORMED: 400,
    ErrorCode.UNKNOWN_TYPE: 400,
    ErrorCode.INVALID: 422,
    ErrorCode.OVERSIZE: 413,
    ErrorCode.UNKNOWN_AGENT: 404,
    ErrorCode.UNKNOWN_TASK: 404,
    ErrorCode.WRONG_SESSION: 409,
    ErrorCode.NOT_HOLDER: 409,
    ErrorCode.STALE_ATTEMPT: 409,
    ErrorCode.CONFLICT: 409,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}

_ERROR_TEXT: dict[int, str] = {
    400: "`malformed`: the body is not a JSON object or is nested more than 200 levels deep; "
    "`unknown_type`: its `type` names another message.",
    401: "`unauthorized`: no token, or an unknown or revoked one.",
    403: "`forbidden`: the token's role or group may not do this.",
    404: "`unknown_task`, `unknown_agent`: no such task, goal or participant.",
    409: "`conflict`, `not_holder`, `stale_attempt`, `wrong_session`: clashes with the "
    "current state.",
    413: "`oversize`: the body is larger than max_message_bytes.",
    422: "`invalid`: the request broke the schema (also an integer outside the signed 64-bit "
    "range, text with a NUL character or an unpaired surrogate).",
    429: "`rate_limited`: too many submissions; retry later.",
    500: "`internal`: the hub failed while handling it; nothing was applied.",
    503: "`unavailable`: the hub could not make it durable (store down): nothing applied, "
    "retry; or, on a replica standing by for the group, the replica active for it did not "
    "answer, or (event stream, metrics) it must be asked there: the message names it.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI error responses of a route (every one a ``claw.v1.error``)."""
    return {s: {"model": ErrorReply, "description": _ERROR_TEXT[s]} for s in statuses}


#: The error responses of a request that may change state (``POST /v1/api/<verb>``).
ERROR_RESPONSES = error_responses(400, 401, 403, 404, 409, 413, 422, 429, 500, 503)
#: The error responses of a read (``GET``).
READ_ERRORS = error_responses(401, 403, 404, 422, 500, 503)


def error_response(code: ErrorCode, message: str) -> JSONResponse:
    """An ``ErrorReply`` with its HTTP status."""
    return error_status_response(STATUS.get(code, 400), code, message)


def error_status_response(
    status: int, code: ErrorCode, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An ``ErrorReply`` with a given HTTP status (Starlette's own errors keep theirs)."""
    body = ErrorReply(code=code, message=message).model_dump(mode="json")
    return JSONResponse(body, status_code=status, headers=headers)


def reply_response(reply: BaseModel) -> Response:
    """A hub reply as an HTTP response (errors with their status)."""
    status = STATUS.get(reply.code, 400) if isinstance(reply, ErrorReply) else 200
    return Response(encode(reply), status_code=status, media_type="application/json")
