"""``HubLink``: what an agent's collaborators share of its line to the hub.

The ``Agent`` owns one and hands it to ``Registration`` (registering, heart-beating) and to
``Jobs`` (the inbox, running attempts, delivering results): who the agent is, the transport
while it is started, and what the last ``RegisterAck`` said. Neither collaborator holds the
``Agent``; each gets this and the few callables it needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._transport import Transport

#: Heartbeat interval before the hub told us its own.
DEFAULT_HEARTBEAT = 1.0
#: First and largest delay between retries of registration and result delivery.
BACKOFF_START = 0.2
BACKOFF_MAX = 5.0


@dataclass
class HubLink:
    """One agent's identity on the bus and its current connection (``bus``)."""

    agent_id: str
    """The agent id (one NATS subject token)."""
    group: str
    """The Claw Group it joins."""
    session: str
    """Random id of this process's registration (kept across reconnects)."""
    request_timeout: float
    """Bound of each request to the hub (seconds)."""
    sender: str = "anon"
    """Who sends, in every agent → hub subject: the token's id (``subjects.sender_for``)."""
    bus: Transport | None = None
    """The transport while the agent is started; ``None`` before and after."""
    stopping: bool = False
    """True from ``stop`` (or a failed ``start``) on: take no new work, register no more."""
    hub_id: str | None = None
    """The hub that accepted the last registration."""
    heartbeat_interval: float = DEFAULT_HEARTBEAT
    """Seconds between heartbeats (the hub's, once registered)."""
    max_message_bytes: int | None = None
    """The hub's payload limit (from the ``RegisterAck``); larger results become failures."""
