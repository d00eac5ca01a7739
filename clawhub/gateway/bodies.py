"""Request bodies read ahead of the app that serves them (to check them at the hub's hard
edges first): ``read_checked`` reads and checks one, ``replay_body`` hands the app the bytes
already read."""

from __future__ import annotations

from starlette.types import Message, Receive

from protocols import ErrorCode, ProtocolError, load_object


def oversize(size: int, limit: int) -> ProtocolError:
    """The refusal of a body of ``size`` bytes (at least) over ``limit``."""
    return ProtocolError(
        ErrorCode.OVERSIZE, f"body of {size} bytes exceeds max_message_bytes ({limit})"
    )


async def read_checked(receive: Receive, limit: int, declared: bytes = b"") -> bytes | None:
    """The whole request body, checked as every path checks a message: at most ``limit``
    bytes (a larger ``declared`` Content-Length is refused before reading), JSON that is
    an object any store can keep (``protocols.load_object``); ``ProtocolError`` otherwise.
    None when the client went away before its body was read."""
    if declared.isdigit() and int(declared) > limit:
        raise oversize(int(declared), limit)
    body = b""
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        more = bool(message.get("more_body", False))
        if len(body) > limit:
            raise oversize(len(body), limit)
    if body:
        load_object(body)
    return body


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the body already read, then the client's own
    messages (its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
