"""nats-py, imported without aiohttp.

nats-py imports aiohttp (for its WebSocket transport) whenever aiohttp is installed, and
here it is (litellm needs it): about 120 ms of ``import agents_sdk`` on a small machine, for
a transport that is used only with a ``ws://`` URL. So nats-py is imported with aiohttp
hidden, and its transport module gets a stand-in that imports aiohttp when first used.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


class _Lazy(types.ModuleType):
    """Stands in for a module, and imports it the first time an attribute is read."""

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module(self.__name__), name)


def load() -> None:
    """Import ``nats`` (once), keeping aiohttp for later."""
    if "nats.aio.transport" in sys.modules or "aiohttp" in sys.modules:
        return  # imported already, or aiohttp is loaded anyway: nothing to spare
    sys.modules["aiohttp"] = None  # type: ignore[assignment]  # makes `import aiohttp` fail
    try:
        from nats.aio import transport  # noqa: PLC0415  # while aiohttp is hidden
    finally:
        del sys.modules["aiohttp"]
    setattr(transport, "aiohttp", _Lazy("aiohttp"))  # noqa: B010  # not a typed attribute


load()
