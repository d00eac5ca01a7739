"""The disconnect advisories of the embedded nats-server's system account: the moment an
agent's connection closes (crash, kill, network gone), without waiting for missed beats."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from protocols import ErrorCode, ProtocolError, subjects

from ..board import Board
from .nats_server import CLIENT_ACCOUNT

log = logging.getLogger("clawhub.hub")

#: Called with ``(agent_id, session, reason, user)`` of a closed agent connection; ``user``
#: is the NATS user the server says the connection logged in as ("" when none).
Closed = Callable[[str, str, str, str], None]


async def watch_disconnects(system_url: str, name: str, closed: Closed) -> NATS:
    """Connect to the system account at ``system_url`` and call ``closed`` for every agent
    connection (named ``claw-agent:<id>:<session>``) that closes. The name is the client's
    own choice; the user is the server's word, so callers match on both. Returns the
    connection."""
    sys_nc = await nats.connect(
        subjects.server_urls(system_url),  # one URL, or the nodes of a cluster
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
    )

    async def on_disconnect(msg: Msg) -> None:
        try:
            info = json.loads(msg.data)
            client_name = str(info.get("client", {}).get("name", ""))
            parsed = subjects.parse_agent_connection_name(client_name)
            if parsed is None:
                return
            agent_id, session = parsed
            user = str(info.get("client", {}).get("user", "") or "")
            closed(agent_id, session, info.get("reason") or "connection closed", user)
        except Exception:  # a bad advisory must never stop the hub
            log.exception("bad disconnect advisory")

    await sys_nc.subscribe(subjects.system_disconnects(CLIENT_ACCOUNT), cb=on_disconnect)
    await sys_nc.flush()
    return sys_nc


def closed_connections(board: Board, *, trust_names: bool, stopping: Callable[[], bool]) -> Closed:
    """What a closed agent connection means for ``board``: its participant is lost, if the
    session is its current one and (unless ``trust_names``, a hub without identity) the
    connection was the credential's that registered it. A connection merely *named* for a
    participant (the name is the client's choice; another user may pick it) is recorded as
    refused and changes nothing."""

    def closed(agent_id: str, session: str, reason: str, user: str) -> None:
        agent = board.agents.get(agent_id)
        if agent is None or agent.session != session or stopping():
            return
        if not trust_names and agent.credential != user:
            board.refused(
                subjects.system_disconnects(CLIENT_ACCOUNT),
                ProtocolError(
                    ErrorCode.FORBIDDEN,
                    f"ignored the close of a connection named for {agent_id}: it was "
                    f"{user or 'no user'}'s, not the credential that registered it",
                ),
                agent_id,
            )
            return
        board.agent_lost(agent_id, f"connection closed ({reason})")

    return closed


async def leave_bus(conn: NATS, seconds: float = 5.0) -> None:
    """Drain ``conn`` (handlers in flight finish), closing it instead when that takes more
    than ``seconds``; never waits longer, even when the client is stuck reconnecting (a
    process frozen past its server's ping window) and would not let a drain be cancelled."""
    if conn.is_closed:
        return
    for step in (conn.drain, conn.close):
        task = asyncio.ensure_future(step())
        done, _ = await asyncio.wait({task}, timeout=seconds)
        if done:
            with contextlib.suppress(Exception):
                task.result()
            return
        task.cancel()
        log.warning("leaving the bus: %s took over %.0fs", step.__name__, seconds)
