"""The CLI's request/reply client: find the hub, connect, ask, decode the answer. The whole
of it; every command goes through ``call`` (via ``SharedOptions.run``/``request``).

Why not the SDK's (``agents_sdk._bus.connect``/``request``)? The layering forbids it: the
hub package (the CLI included) never imports ``agents_sdk`` (an import-linter contract
and a run-time test), so that the SDK can ship and change on its own and ``clawhub``
commands never load it. The shared request/reply cannot move down into ``protocols``
either: it is a leaf with no I/O (its contract forbids ``nats``). Joining the two would
need a new package below both (a NATS transport with its own error tree) for about 40
lines that differ on purpose: a CLI command fails fast (one connection attempt, no
reconnects, one ``HubError`` for the person at the terminal) where an agent reconnects
forever and raises the SDK's ``HubUnavailable``/``RequestTimeout``/``RequestRefused``.
What they do share is shared already: ``protocols.encode``/``decode``, ``ErrorReply``,
``split_token`` and ``subjects.inbox_prefix``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import nats
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from pydantic import BaseModel

from protocols import ErrorReply, decode, encode, split_token, subjects

from ..errors import BusError, HubError, RequestRefused
from ..settings import HubSettings, read_hub_file

M = TypeVar("M", bound=BaseModel)


def resolve_token(settings: HubSettings) -> str | None:
    """The token of client commands: ``CLAWHUB_TOKEN``, else the admin token of the group in
    ``data_dir/hub.json`` (written by ``clawhub up``), else none (a hub without auth)."""
    if settings.token:
        return settings.token
    info = read_hub_file(Path(settings.data_dir)) or {}
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


async def connect(url: str, token: str | None = None) -> NATS:
    """Connect to the bus (as the token's NATS user, if any), with a clear error when
    nothing listens there."""
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
    try:
        return await nats.connect(
            url,
            **extra,
            connect_timeout=3,
            max_reconnect_attempts=1,  # nats-py reads 0 as "forever"
            reconnect_time_wait=0.2,
            allow_reconnect=False,
            name="clawhub-cli",
            error_cb=_quiet,
        )
    except Exception as exc:
        raise BusError(f"cannot connect to NATS at {url}: {exc}") from exc


async def _quiet(exc: Exception) -> None:
    """Connection errors surface as one ``BusError``, not a traceback per retry."""


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
    no answer in time) or ``RequestRefused`` (the hub's ``ErrorReply``)."""
    try:
        msg = await nc.request(subject, encode(message), timeout=timeout)
    except NoRespondersError:
        raise BusError(f"no hub answers on {subject} (is `clawhub up` running?)") from None
    except NatsTimeout:
        raise BusError(f"the hub did not answer on {subject} within {timeout:g}s") from None
    answer = decode(msg.data, reply, ErrorReply)
    if isinstance(answer, ErrorReply):
        raise RequestRefused(answer.code, answer.message)
    assert isinstance(answer, reply)
    return answer
