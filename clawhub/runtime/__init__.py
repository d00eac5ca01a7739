"""The hub process around one board: the bus (an embedded ``nats-server`` unless a URL is
given), routes and API handlers, the offers sender, the scheduler and lease watcher, the
batched store writer, limits, tokens, and the coordinator model."""

from __future__ import annotations

from .gc import tune_gc
from .hub import Hub
from .nats_server import EmbeddedNats

__all__ = ["EmbeddedNats", "Hub", "tune_gc"]
