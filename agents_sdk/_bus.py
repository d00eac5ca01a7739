"""NATS plumbing shared by ``Agent`` and ``HubClient``: connect and typed requests.

A failed connection names its cause (bad credentials, nothing listening, an ``http://``
URL, a timeout); a request whose subject the NATS server refuses this credential fails at
once as ``forbidden`` instead of timing out (nats-py reports the refusal only through the
connection's error callback, so ``connect`` keeps a ``_Watch`` per connection).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import nats
import nats.errors
from nats.aio.client import Client as NATS
from pydantic import BaseModel

from protocols import ErrorCode, ErrorReply, ProtocolError, decode_any, encode, subjects, type_name

from . import _trace
from .errors import AgentIdConflict, HubUnavailable, RequestRefused, RequestTimeout

log = logging.getLogger("agents_sdk")

M = TypeVar("M", bound=BaseModel)

#: Seconds between reconnect attempts to the NATS server.
RECONNECT_WAIT = 0.5


class _Watch:
    """A connection's error callback: the last error (the cause of a failed connect), and
    the requests to fail at once when the server refuses their subject."""

    def __init__(self) -> None:
        self.last: BaseException | None = None
        self.refused: BaseException | None = None
        """The server's refusal of the credentials, if it came (later resets do not hide it)."""
        self.pending: dict[str, set[asyncio.Future[None]]] = {}

    async def on_error(self, exc: Exception) -> None:
        self.last = exc
        if _is_auth(exc):
            self.refused = exc
        if "permissions violation" not in str(exc).lower():
            log.debug("nats: %s: %s", type(exc).__name__, exc)
            return
        # a publish or a subscription this token may not make (an inbox not its own, say)
        log.warning("NATS refused this credential: %s", exc)
        subject = denied_subject(str(exc))
        if subject is None:
            return
        for key, waiters in self.pending.items():
            if key.lower() == subject:  # nats-py lower-cases the server's error line
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)


_WATCHES: weakref.WeakKeyDictionary[NATS, _Watch] = weakref.WeakKeyDictionary()


def denied_subject(error: str) -> str | None:
    """The subject of a ``permissions violation for publish to "S"`` error (lower case)."""
    text = error.lower()
    marker = "permissions violation for publish to"
    if marker not in text:
        return None
    return text.split(marker, 1)[1].strip().strip("'\"")


def scheme_problem(url: str) -> str | None:
    """Why ``url`` is not a NATS URL (``http://`` given, an unknown scheme), or None."""
    for one in (u.strip() for u in url.split(",")):
        scheme = urlsplit(one).scheme.lower()
        if scheme in ("http", "https"):
            return (
                f"{one} is an HTTP URL: use the nats:// URL that `clawhub up` prints (the "
                '"url" in hub.json), or ws://host:port for the gateway\'s WebSocket'
            )
        if scheme and scheme not in ("nats", "tls"):
            return f"{one}: unknown scheme {scheme}://, use nats://host:port or ws://host:port"
    return None


def _is_auth(exc: BaseException | None) -> bool:
    """True for the server's refusal of the credentials."""
    text = str(exc or "").lower()
    return isinstance(exc, nats.errors.AuthorizationError) or "authorization" in text


def connect_cause(exc: BaseException | None) -> str:
    """Why a connection failed, in words."""
    text = str(exc or "")
    if _is_auth(exc):
        return (
            "bad credentials (authorization violation): the token (CLAWHUB_TOKEN) is "
            "unknown, revoked or mistyped, or the server takes none (clawhub up --no-auth)"
        )
    if isinstance(exc, ConnectionRefusedError):
        return "nothing listening there (connection refused): is the hub running?"
    if isinstance(exc, ConnectionResetError):
        return "the server closed the connection (connection reset): bad credentials?"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    if exc is None or isinstance(exc, TimeoutError | nats.errors.TimeoutError):
        return "timed out: no NATS server answered there"
    return text or type(exc).__name__


async def connect(
    url: str,
    *,
    timeout: float,
    name: str | None = None,
    reconnected_cb: Callable[[], Awaitable[None]] | None = None,
    disconnected_cb: Callable[[], Awaitable[None]] | None = None,
    **extra: Any,
) -> NATS:
    """Connect to NATS, reconnecting forever afterwards; ``HubUnavailable`` after ``timeout``
    (at once for a URL that is not a NATS one), its message naming the cause.

    ``extra`` goes to nats-py (``user``, ``password``, ``inbox_prefix`` for a token)."""
    if problem := scheme_problem(url):
        raise HubUnavailable(f"cannot connect to NATS at {url}: {problem}")
    nc = NATS()
    watch = _Watch()
    options: dict[str, Any] = {
        **extra,
        "servers": subjects.server_urls(url),  # one URL, or a cluster's comma-separated
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": RECONNECT_WAIT,
        "connect_timeout": max(1, int(timeout)),
        "error_cb": watch.on_error,
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
        # nats-py retries in silence until the deadline: the cause is the last error it saw,
        # unless the server refused the credentials on the way (resets follow that refusal)
        cause = watch.refused or (watch.last if isinstance(exc, TimeoutError) else exc) or exc
        raise HubUnavailable(f"cannot connect to NATS at {url}: {connect_cause(cause)}") from None
    _WATCHES[nc] = watch
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

    Raises ``RequestRefused`` (``ErrorReply``; ``forbidden`` at once when NATS refuses this
    credential the subject), ``HubUnavailable`` (no responders, no connection),
    ``RequestTimeout``, or ``ProtocolError`` for a reply of the wrong type.
    """
    watch = _WATCHES.get(nc)
    denied: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    if watch is not None:
        watch.pending.setdefault(subject, set()).add(denied)
    traced = _trace.headers()  # the current span's traceparent, when there is one
    extra: dict[str, Any] = {"headers": traced} if traced else {}
    asked = asyncio.ensure_future(nc.request(subject, encode(message), timeout=timeout, **extra))
    try:
        either: list[asyncio.Future[Any]] = [asked, denied]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if denied.done() and not asked.done():
            raise RequestRefused(
                ErrorCode.FORBIDDEN,
                f"NATS refused this token publishing to {subject}: its role may not do that",
            )
        msg = asked.result()
    except nats.errors.NoRespondersError:
        raise HubUnavailable(f"no hub answers on {subject}") from None
    except nats.errors.TimeoutError:
        raise RequestTimeout(subject, timeout) from None
    except nats.errors.MaxPayloadError as exc:
        raise RequestRefused(ErrorCode.OVERSIZE, str(exc)) from None
    except nats.errors.Error as exc:
        raise HubUnavailable(f"request on {subject} failed: {exc}") from None
    finally:
        if not asked.done():
            asked.cancel()
        if watch is not None:
            waiters = watch.pending.get(subject, set())
            waiters.discard(denied)
            if not waiters:
                watch.pending.pop(subject, None)
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
        traced = _trace.headers()  # the current span's traceparent, when there is one
        if traced:
            await nc.publish(subject, encode(message), headers=traced)
        else:
            await nc.publish(subject, encode(message))
    except nats.errors.Error as exc:
        log.debug("publish on %s failed: %s", subject, exc)
        return False
    return True
