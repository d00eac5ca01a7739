"""The ``clawhub`` command: serving (``up``, ``demo``), the client commands, tokens, and
their shared options. Client commands load neither the store nor the server half."""

from __future__ import annotations

from .app import app, main

__all__ = ["app", "main"]
