"""nats-py, imported without what an agent does not use at import.

nats-py's client imports, whatever it is used for:

- aiohttp (for its WebSocket transport) whenever aiohttp is installed, and here it is
  (litellm needs it): about 120 ms of ``import agents_sdk`` on a small machine, for a
  transport that is used only with a ``ws://`` URL;
- its JetStream package (``nats.js``: the API dataclasses, key-value and object stores,
  ``email.parser``), which the core client reads only for two header names of a message
  that carries headers (a no-responders status, a traceparent); an agent uses no JetStream;
- ``importlib.metadata`` (with ``email``, ``zipfile``, ``csv``), to read its own version
  number, which it sends in its ``CONNECT``.

So nats-py is imported with the first two hidden, and each gets a stand-in that imports the
real module the first time one of its attributes is read (the first ``ws://`` connection,
the first message with headers, a ``jetstream()`` context); an ``import nats.js`` elsewhere
imports it as usual. ``importlib.metadata`` is hidden too, and the version is read from the
name of nats-py's ``.dist-info`` folder (by ``importlib.metadata`` where there is not one).
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from typing import Any


class _Lazy(types.ModuleType):
    """Stands in for a module, and imports it the first time an attribute is read."""

    def __getattr__(self, name: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]  # the real one takes its place
        return getattr(importlib.import_module(self.__name__), name)


def nats_version(package_dir: str) -> str:
    """nats-py's version, from the name of the one ``nats_py-<version>.dist-info`` folder
    beside its package, else as nats-py reads it itself (``importlib.metadata``)."""
    try:
        found = [
            name[len("nats_py-") : -len(".dist-info")]
            for name in os.listdir(os.path.dirname(package_dir))
            if name.startswith("nats_py-") and name.endswith(".dist-info")
        ]
    except OSError:
        found = []
    if len(found) == 1:
        return found[0]
    try:
        from importlib.metadata import version  # noqa: PLC0415  # only where no folder says

        return version("nats-py")
    except Exception:  # what nats-py does: any failure is "0.0.0"
        return "0.0.0"


def load() -> None:
    """Import ``nats`` (once), keeping aiohttp, ``nats.js`` and ``importlib.metadata`` for
    later."""
    if "nats.aio.transport" in sys.modules or "aiohttp" in sys.modules:
        return  # imported already, or aiohttp is loaded anyway: nothing to spare
    jetstream = _Lazy("nats.js")
    hidden = ["aiohttp"] + [m for m in ("importlib.metadata",) if m not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import <name>` fail
    sys.modules["nats.js"] = jetstream  # `import nats.js` finds the stand-in
    try:
        from nats.aio import client, transport  # noqa: PLC0415  # while those are hidden
    finally:
        for name in hidden:
            del sys.modules[name]
        if sys.modules.get("nats.js") is jetstream:
            del sys.modules["nats.js"]
    setattr(transport, "aiohttp", _Lazy("aiohttp"))  # noqa: B010  # not a typed attribute
    nats = sys.modules["nats"]
    if not isinstance(getattr(nats, "js", None), types.ModuleType):
        setattr(nats, "js", jetstream)  # noqa: B010  # `nats.js.api` in the client: the stand-in
    if "importlib.metadata" in hidden:
        client.__version__ = nats_version(os.path.dirname(nats.__file__ or ""))


load()
