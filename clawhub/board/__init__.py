"""The rules of a Claw Group, with no I/O: records, the task lifecycle, matching, offers,
attempts, validation, the powers of humans, goals, participants, the lease watcher and
recovery. The hub (``clawhub.runtime``) feeds a ``Board`` messages and clock ticks and
carries out what it asks through a ``Sink``.

Importing this package loads no I/O library (no SQLAlchemy, SQLModel, nats, FastAPI,
uvicorn or litellm); a test checks it.
"""

from __future__ import annotations

from .board import Board
from .graph import new_task_id
from .lifecycle import FAILED_OUTCOMES
from .sink import Offer, Sink

__all__ = ["FAILED_OUTCOMES", "Board", "Offer", "Sink", "new_task_id"]
