"""The CLI's request/reply client: find the hub, connect, ask, decode the answer. The whole
of it; every command goes through ``call`` (via ``SharedOptions.run``/``request``).

Why not the SDK's (``agents_sdk._bus.connect``/``request``)? The layering now allows it
(the CLI may import the SDK since the bridges came: a bridged agent is an SDK participant),
but the two differ on purpose: a CLI command fails fast (one connection attempt, no
reconnects, one ``HubError`` for the person at the terminal, and plain ``clawhub status``
never loads the SDK) where an agent reconnects forever and raises the SDK's
``HubUnavailable``/``RequestTimeout``/``RequestRefused``. What they do share is shared
already: ``protocols.encode``/``decode``, ``ErrorReply``, ``split_token`` and
``subjects.inbox_prefix``.
"""

from __future__ import annotations

import asyncio
import socket
import weakref
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client as NATS
from nats.errors import AuthorizationError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from pydantic import BaseModel

from protocols import ErrorCode, ErrorReply, decode, encode, split_token, subjects

from ..errors import BusError, HubError, RequestRefused
from ..settings import HubSettings, read_hub_file

M = TypeVar("M", bound=BaseModel)


def resolve_token(settings: HubSettings) -> str | None:
    """The token of client commands: ``CLAWHUB_TOKEN``, else the admin token of the group in
    ``data_dir/hub.json`` (written by ``clawhub up``), else none (a hub without auth).

    A ``hub.json`` that says ``"auth": false`` (``clawhub up --no-auth``, or a hub on a NATS
    server of its own) still holds the admin tokens, for the gateway, which always checks
    tokens; on NATS they are no one's password there, so none is sent."""
    if settings.token:
        return settings.token
    info = read_hub_file(Path(settings.data_dir)) or {}
    if info.get("auth") is False:
        return None
    tokens = info.get("tokens")
    if isinstance(tokens, dict) and isinstance(tokens.get(settings.group), str):
        return str(tokens[settings.group])
    return None


def resolve_url(settings: HubSettings, url: str | None) -> str:
    """The hub's NATS URL: ``--url``, else ``CLAWHUB_NATS_URL``, else ``data_dir/hub.json``."""
    if url:
        return url
    if settings.nats_url:
        return settings.nats_url
    info = read_hub_file(Path(settings.data_dir))
    if info and isinstance(info.get("url"), str):
        return str(info["url"])
    raise BusError(
        f"no running hub found (no --url, no CLAWHUB_NATS_URL, no {settings.data_dir}/hub.json);"
        " start one with `clawhub up`"
    )


#: The schemes a NATS URL may have (nats-py's).
NATS_SCHEMES = ("nats", "tls")


def scheme_problem(url: str) -> str | None:
    """Why ``url`` cannot be a NATS URL (an ``http://`` or ``ws://`` one), or None."""
    for one in url.split(","):
        scheme = urlsplit(one.strip()).scheme.lower()
        if scheme in ("http", "https", "ws", "wss"):
            return (
                f"{one.strip()} is the gateway's {scheme}:// URL; the CLI speaks NATS: use the "
                'nats:// URL that `clawhub up` prints (the "url" in hub.json)'
            )
        if scheme and scheme not in NATS_SCHEMES:
            return f"{one.strip()}: unknown scheme {scheme}://, use nats://host:port"
    return None


def _is_auth(exc: BaseException | None) -> bool:
    """True for the server's refusal of the credentials."""
    text = str(exc or "").lower()
    return isinstance(exc, AuthorizationError) or "authorization" in text


def connect_cause(exc: BaseException | None) -> str:
    """Why a connection failed, in words: bad credentials, nothing listening, timeout..."""
    text = str(exc or "")
    if _is_auth(exc):
        return (
            "bad credentials (authorization violation): the token is unknown, revoked or "
            "mistyped, or the server takes none (a hub started with --no-auth)"
        )
    if isinstance(exc, ConnectionRefusedError):
        return "nothing listening there (connection refused): is `clawhub up` running?"
    if isinstance(exc, ConnectionResetError):
        return "the server closed the connection (connection reset): bad credentials?"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    if exc is None or isinstance(exc, TimeoutError | NatsTimeout):
        return "timed out: no NATS server answered there"
    return text or type(exc).__name__


async def connect(url: str, token: str | None = None) -> NATS:
    """Connect to the bus (as the token's NATS user, if any); a ``BusError`` that names the
    cause (bad credentials, nothing listening, wrong scheme, timeout) when it fails.

    On the connection, a NATS permission refusal of a request's subject fails that request
    at once (``forbidden``) instead of leaving it to time out."""
    if problem := scheme_problem(url):
        raise BusError(problem)
    extra: dict[str, str] = {}
    if token:
        try:
            token_id, secret = split_token(token)
        except ValueError as exc:
            raise HubError(f"bad token: {exc}") from None
        extra = {
            "user": token_id,
            "password": secret,
            "inbox_prefix": subjects.inbox_prefix(token_id),
        }
    denials = _Denials()
    try:
        for tries_left in (1, 0):  # once more after a reset: it may hide a refusal
            try:
                nc = await nats.connect(
                    subjects.server_urls(url),
                    **extra,
                    connect_timeout=3,
                    max_reconnect_attempts=1,  # nats-py reads 0 as "forever"
                    reconnect_time_wait=0.2,
                    allow_reconnect=False,
                    name="clawhub-cli",
                    error_cb=denials.on_error,
                )
                break
            except ConnectionResetError:
                if not tries_left or denials.refused is not None:
                    raise
    except Exception as exc:
        # the error callback saw the cause (a refusal of the credentials wins over the
        # reset of the socket that follows it)
        cause = denials.refused or (
            denials.last if isinstance(exc, nats.errors.NoServersError) else exc
        )
        raise BusError(f"cannot connect to NATS at {url}: {connect_cause(cause)}") from None
    _DENIALS[nc] = denials
    return nc


class _Denials:
    """A connection's error callback: keeps the last error, and fails the pending requests
    whose subject the server refused (``Permissions Violation for Publish to ...``)."""

    def __init__(self) -> None:
        self.last: BaseException | None = None
        self.refused: BaseException | None = None
        """The server's refusal of the credentials, if it came (later resets do not hide it)."""
        self.pending: dict[str, set[asyncio.Future[None]]] = {}

    async def on_error(self, exc: Exception) -> None:
        self.last = exc
        if _is_auth(exc):
            self.refused = exc
        subject = denied_subject(str(exc))
        if subject is None:
            return
        for key, waiters in self.pending.items():
            if key.lower() == subject:  # nats-py lower-cases the server's error line
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)


_DENIALS: weakref.WeakKeyDictionary[NATS, _Denials] = weakref.WeakKeyDictionary()


def denied_subject(error: str) -> str | None:
    """The subject of a ``permissions violation for publish to "S"`` error (lower case)."""
    text = error.lower()
    marker = "permissions violation for publish to"
    if marker not in text:
        return None
    return text.split(marker, 1)[1].strip().strip("'\"")


def api_subject(nc: NATS, group: str, verb: str) -> str:
    """The subject of API ``verb`` for requests over ``nc``: the sender is the NATS user
    the connection logged in as (the token's id), else ``anon``."""
    user = nc.options.get("user")
    sender = user if isinstance(user, str) and user else subjects.ANON_SENDER
    return subjects.api(group, sender, verb)


async def call(
    nc: NATS, subject: str, message: BaseModel, reply: type[M], timeout: float = 10.0
) -> M:
    """Request ``message`` on ``subject``; return the reply, or raise ``BusError`` (no hub,
    no answer in time) or ``RequestRefused`` (the hub's ``ErrorReply``, or ``forbidden`` when
    NATS refuses this credential the subject)."""
    denials = _DENIALS.get(nc)
    refused: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    if denials is not None:
        denials.pending.setdefault(subject, set()).add(refused)
    asked = asyncio.ensure_future(nc.request(subject, encode(message), timeout=timeout))
    try:
        either: list[asyncio.Future[Any]] = [asked, refused]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if refused.done() and not asked.done():
            asked.cancel()
            raise RequestRefused(
                ErrorCode.FORBIDDEN,
                f"NATS refused this token publishing to {subject}: "
                "its role may not do that (an admin or human token may)",
            )
        msg = asked.result()
    except NoRespondersError:
        raise BusError(f"no hub answers on {subject} (is `clawhub up` running?)") from None
    except NatsTimeout:
        raise BusError(f"the hub did not answer on {subject} within {timeout:g}s") from None
    finally:
        if denials is not None:
            waiters = denials.pending.get(subject, set())
            waiters.discard(refused)
            if not waiters:
                denials.pending.pop(subject, None)
        if not asked.done():
            asked.cancel()
    answer = decode(msg.data, reply, ErrorReply)
    if isinstance(answer, ErrorReply):
        raise RequestRefused(answer.code, answer.message)
    assert isinstance(answer, reply)
    return answer
