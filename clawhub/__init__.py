"""Claw Hub: the coordination hub of a Claw Group.

Registry, matcher, lifecycle, scheduler, lease watcher, validation and store around a NATS
bus (embedded ``nats-server`` by default). Start one with ``clawhub up`` or ``Hub``.

Names load on first use, so the CLI's client commands do not pay for the store and the
server half (SQLAlchemy, the board) they never touch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .board import Board
    from .embedded import EmbeddedNats
    from .errors import BusError, HubError, IllegalTransition, StoreError
    from .hub import Hub
    from .settings import HubSettings
    from .store import Store

_WHERE = {
    "Board": ".board",
    "BusError": ".errors",
    "EmbeddedNats": ".embedded",
    "Hub": ".hub",
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
