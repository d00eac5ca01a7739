"""Hub replies and refusals as HTTP responses: the status of each ``ErrorCode`` and the
error responses every REST route documents."""

from __future__ import annotations

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

#: The error responses of the OpenAPI document, by HTTP status.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorReply, "description": desc}
    for code, desc in (
        (401, "No token, or an unknown or revoked one."),
        (403, "The token's role may not do this."),
        (404, "No such task, goal or participant."),
        (409, "Conflicts with the current state."),
        (413, "Larger than max_message_bytes."),
        (422, "The request broke the schema."),
        (429, "Too many submissions: retry later."),
        (503, "The hub could not make it durable (store down): nothing applied, retry."),
    )
}


def error_response(code: ErrorCode, message: str) -> JSONResponse:
    """An ``ErrorReply`` with its HTTP status."""
    body = ErrorReply(code=code, message=message).model_dump(mode="json")
    return JSONResponse(body, status_code=STATUS.get(code, 400))


def reply_response(reply: BaseModel) -> Response:
    """A hub reply as an HTTP response (errors with their status)."""
    status = STATUS.get(reply.code, 400) if isinstance(reply, ErrorReply) else 200
    return Response(encode(reply), status_code=status, media_type="application/json")
