"""nats-py, imported without what an agent does not use at import.

nats-py's client imports, whatever it is used for:

- aiohttp (for its WebSocket transport) whenever aiohttp is installed, and here it is
  (litellm needs it): about 120 ms of ``import agents_sdk`` on a small machine, for a
  transport that is used only with a ``ws://`` URL;
- its JetStream package (``nats.js``: the API dataclasses, key-value and object stores,
  ``email.parser``), which the core client reads only for two header names of a message
  that carries headers (a no-responders status, a traceparent); an agent uses no JetStream.

So nats-py is imported with both hidden, and each gets a stand-in that imports the real
module the first time one of its attributes is read (the first ``ws://`` connection, the
first message with headers, a ``jetstream()`` context). An ``import nats.js`` elsewhere
imports it as usual.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


class _Lazy(types.ModuleType):
    """Stands in for a module, and imports it the first time an attribute is read."""

    def __getattr__(self, name: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]  # the real one takes its place
        return getattr(importlib.import_module(self.__name__), name)


def load() -> None:
    """Import ``nats`` (once), keeping aiohttp and ``nats.js`` for later."""
    if "nats.aio.transport" in sys.modules or "aiohttp" in sys.modules:
        return  # imported already, or aiohttp is loaded anyway: nothing to spare
    jetstream = _Lazy("nats.js")
    sys.modules["aiohttp"] = None  # type: ignore[assignment]  # makes `import aiohttp` fail
    sys.modules["nats.js"] = jetstream  # `import nats.js` finds the stand-in
    try:
        from nats.aio import transport  # noqa: PLC0415  # while both are hidden
    finally:
        del sys.modules["aiohttp"]
        if sys.modules.get("nats.js") is jetstream:
            del sys.modules["nats.js"]
    setattr(transport, "aiohttp", _Lazy("aiohttp"))  # noqa: B010  # not a typed attribute
    nats = sys.modules["nats"]
    if not isinstance(getattr(nats, "js", None), types.ModuleType):
        setattr(nats, "js", jetstream)  # noqa: B010  # `nats.js.api` in the client: the stand-in


load()
