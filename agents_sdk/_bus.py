"""NATS plumbing shared by ``Agent`` and ``HubClient``: connect and typed requests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats
import nats.errors
from nats.aio.client import Client as NATS
from pydantic import BaseModel

from protocols import ErrorCode, ErrorReply, ProtocolError, decode_any, encode, type_name

from .errors import AgentIdConflict, HubUnavailable, RequestRefused, RequestTimeout

log = logging.getLogger("agents_sdk")

M = TypeVar("M", bound=BaseModel)

#: Seconds between reconnect attempts to the NATS server.
RECONNECT_WAIT = 0.5


async def _quiet_error_cb(exc: Exception) -> None:
    log.debug("nats: %s: %s", type(exc).__name__, exc)


async def connect(
    url: str,
    *,
    timeout: float,
    name: str | None = None,
    reconnected_cb: Callable[[], Awaitable[None]] | None = None,
    disconnected_cb: Callable[[], Awaitable[None]] | None = None,
    **extra: Any,
) -> NATS:
    """Connect to NATS, reconnecting forever afterwards; ``HubUnavailable`` after ``timeout``.

    ``extra`` goes to nats-py (``user``, ``password``, ``inbox_prefix`` for a token)."""
    nc = NATS()
    options: dict[str, Any] = {
        **extra,
        "servers": url,
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": RECONNECT_WAIT,
        "connect_timeout": max(1, int(timeout)),
        "error_cb": _quiet_error_cb,
    }
    if reconnected_cb is not None:
        options["reconnected_cb"] = reconnected_cb
    if disconnected_cb is not None:
        options["disconnected_cb"] = disconnected_cb
    try:
        await asyncio.wait_for(nc.connect(**options), timeout)
    except (TimeoutError, OSError, nats.errors.Error) as exc:
        try:
            await nc.close()
        except Exception:  # best effort: the half-made connection may be in any state
            log.debug("closing the failed connection raised", exc_info=True)
        raise HubUnavailable(f"cannot connect to NATS at {url}: {exc or 'timed out'}") from None
    return nc


def refused(reply: ErrorReply) -> RequestRefused:
    """The exception for an ``ErrorReply``."""
    if reply.code == ErrorCode.WRONG_SESSION:
        return AgentIdConflict(reply.code, reply.message)
    return RequestRefused(reply.code, reply.message)


async def request(
    nc: NATS,
    subject: str,
    message: BaseModel,
    reply: type[M],
    timeout: float,
) -> M:
    """Send ``message`` as a request and decode the reply as ``reply``.

    Raises ``RequestRefused`` (``ErrorReply``), ``HubUnavailable`` (no responders, no
    connection), ``RequestTimeout``, or ``ProtocolError`` for a reply of the wrong type.
    """
    try:
        msg = await nc.request(subject, encode(message), timeout=timeout)
    except nats.errors.NoRespondersError:
        raise HubUnavailable(f"no hub answers on {subject}") from None
    except nats.errors.TimeoutError:
        raise RequestTimeout(subject, timeout) from None
    except nats.errors.MaxPayloadError as exc:
        raise RequestRefused(ErrorCode.OVERSIZE, str(exc)) from None
    except nats.errors.Error as exc:
        raise HubUnavailable(f"request on {subject} failed: {exc}") from None
    return expect(decode_any(msg.data), reply, f" on {subject}")


def expect(answer: BaseModel, reply: type[M], where: str = "") -> M:
    """``answer`` as a ``reply``; ``RequestRefused`` for an ``ErrorReply``, ``ProtocolError``
    for any other message."""
    if isinstance(answer, ErrorReply):
        raise refused(answer)
    if not isinstance(answer, reply):
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE,
            f"expected {type_name(reply)}{where}, got {type_name(type(answer))}",
        )
    return answer


async def publish(nc: NATS | None, subject: str, message: BaseModel) -> bool:
    """Fire-and-forget publish; False (and a debug log) when the connection cannot take it."""
    if nc is None or nc.is_closed:
        return False
    try:
        await nc.publish(subject, encode(message))
    except nats.errors.Error as exc:
        log.debug("publish on %s failed: %s", subject, exc)
        return False
    return True
