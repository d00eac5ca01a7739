"""The hub's front doors beyond NATS: REST (OpenAPI), WebSocket, SSE and Prometheus metrics
in one FastAPI app, and the ``clawhub up`` process that runs one hub per group behind it."""

from __future__ import annotations

from .app import create_app, openapi_document
from .process import HubProcess
from .state import Gateway

__all__ = ["Gateway", "HubProcess", "create_app", "openapi_document"]
