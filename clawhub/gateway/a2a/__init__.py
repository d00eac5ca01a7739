"""The group as an A2A agent (A2A 1.0, with the a2a-sdk's own server routes): its Agent Card
(the live participants' skills), JSON-RPC and HTTP+JSON endpoints per group, messages
become tasks (or goals), the hub's task states and events become A2A's. docs/a2a.md says
what maps to what.

``A2AServer(gateway)`` is the ASGI app ``create_app`` mounts at ``/a2a`` (with its
``root_card`` at ``/.well-known/agent-card.json``); ``mount_a2a(app, gateway)`` does both
for any Starlette or FastAPI app."""

from __future__ import annotations

from starlette.applications import Starlette

from ..state import Gateway
from .card import A2A_PREFIX, CARD_PATH, group_card, group_url
from .handler import BLOCKING_WAIT, GroupHandler
from .server import A2AServer


def mount_a2a(app: Starlette, gw: Gateway, blocking_wait: float = BLOCKING_WAIT) -> A2AServer:
    """Serve A2A on ``app`` for every group of ``gw``: the default group's card at
    ``/.well-known/agent-card.json``, each group at ``/a2a/<group>``."""
    server = A2AServer(gw, blocking_wait=blocking_wait)
    app.add_route(CARD_PATH, server.root_card, methods=["GET"], include_in_schema=False)
    app.mount(A2A_PREFIX, server)
    return server


__all__ = [
    "A2A_PREFIX",
    "BLOCKING_WAIT",
    "CARD_PATH",
    "A2AServer",
    "GroupHandler",
    "group_card",
    "group_url",
    "mount_a2a",
]
