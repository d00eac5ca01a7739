"""What one handler run produced (``Outcome``), and the ``Result`` it becomes.

Shared by the real agent (``_jobs``) and ``agents_sdk.testing`` so both judge an output the
same way: plain JSON data is a success, anything else (or an exception) a failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import BaseModel, JsonValue

from protocols import Result, Usage, encode

#: Longest error text a ``Result`` may carry.
MAX_ERROR = 100_000

#: ``(task_id, attempt)``
Key = tuple[str, int]


def describe_error(exc: BaseException) -> str:
    """``"ExceptionType: message"``, the text a failed result carries."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass(frozen=True)
class Outcome:
    """What a handler run produced, ready for a ``Result``."""

    ok: bool
    output: JsonValue = None
    error: str | None = None


def success(output: object) -> Outcome:
    """The outcome for a returned value; a failure if it is not plain JSON data."""
    if isinstance(output, BaseModel):
        output = output.model_dump(mode="json")
    try:
        data: JsonValue = json.loads(json.dumps(output, allow_nan=False))
    except (TypeError, ValueError) as exc:
        return Outcome(
            ok=False,
            error=f"OutputError: handler output is not JSON-serialisable ({describe_error(exc)})",
        )
    return Outcome(ok=True, output=data)


def failure(exc: BaseException) -> Outcome:
    """The outcome for a handler that raised."""
    return Outcome(ok=False, error=describe_error(exc))


def build_result(
    key: Key,
    outcome: Outcome,
    *,
    agent_id: str,
    session: str,
    duration: float,
    usage: Usage | None,
    max_bytes: int | None,
) -> Result:
    """The ``Result`` for an outcome; a failure when it would exceed the hub's size limit."""
    task_id, attempt = key
    error = outcome.error[:MAX_ERROR] if outcome.error is not None else None
    result = Result(
        task_id=task_id,
        attempt=attempt,
        agent_id=agent_id,
        session=session,
        ok=outcome.ok,
        output=outcome.output,
        error=error,
        duration=max(0.0, duration),
        usage=usage,
    )
    size = len(encode(result))
    if max_bytes is not None and size > max_bytes:
        text = f"OutputError: the result is {size} bytes, over the hub's limit of {max_bytes}"
        result = result.model_copy(update={"ok": False, "output": None, "error": text})
    return result
