"""Claw Hub: the coordination hub of a Claw Group.

The rooms, each importing only those below it (an import-linter contract):

- ``board``: the rules, no I/O (records, lifecycle, matching, attempts, validation, goals...);
- ``store``: tables, row mapping, the ``Store``;
- ``runtime``: the hub process (``Hub``: bus, routes, offers, scheduler, writer, models);
- ``gateway``: REST, WebSocket, SSE, metrics, and the ``clawhub up`` process;
- ``cli``: the ``clawhub`` command.

Start a hub with ``clawhub up``, or in code with ``Hub`` (one group) or ``HubProcess``.

Names load on first use, so the CLI's client commands do not pay for the store and the
server half (SQLAlchemy, the board) they never touch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .board import Board
    from .errors import BusError, HubError, IllegalTransition, StoreError
    from .gateway import HubProcess
    from .runtime import EmbeddedNats, Hub
    from .settings import HubSettings
    from .store import Store

_WHERE = {
    "Board": ".board",
    "BusError": ".errors",
    "EmbeddedNats": ".runtime",
    "Hub": ".runtime",
    "HubProcess": ".gateway",
    "HubError": ".errors",
    "HubSettings": ".settings",
    "IllegalTransition": ".errors",
    "Store": ".store",
    "StoreError": ".errors",
}

__all__ = [
    "Board",
    "BusError",
    "EmbeddedNats",
    "Hub",
    "HubError",
    "HubProcess",
    "HubSettings",
    "IllegalTransition",
    "Store",
    "StoreError",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'clawhub' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
