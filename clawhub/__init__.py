"""Claw Hub: the coordination hub of a Claw Group.

Registry, matcher, lifecycle, scheduler, lease watcher, validation and store around a NATS
bus (embedded ``nats-server`` by default). Start one with ``clawhub up`` or ``Hub``.
"""

from .board import Board
from .embedded import EmbeddedNats
from .errors import BusError, HubError, IllegalTransition, StoreError
from .hub import Hub
from .settings import HubSettings
from .store import Store

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
