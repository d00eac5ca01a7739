"""The event loop an agent process runs on (``Agent.run``): uvloop when it is installed
(``pip install 'clawhub[fast]'``), else asyncio's own. ``CLAWHUB_LOOP`` chooses: ``auto``
(the default), ``uvloop`` (an error when it is not installed) or ``asyncio``.

The hub has its twin (``clawhub.runtime.loop``: the same variable and values), since the
SDK may not import the hub, nor the hub's core the SDK.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .errors import SDKError

T = TypeVar("T")
CHOICES = ("auto", "uvloop", "asyncio")


def loop_factory(choice: str | None = None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What makes the loop for ``choice`` (default: ``CLAWHUB_LOOP``, else ``auto``): uvloop's,
    or ``None`` for asyncio's own. ``SDKError`` for an unknown choice or a missing uvloop."""
    if choice is None:
        choice = os.environ.get("CLAWHUB_LOOP", "").strip().lower() or "auto"
    if choice not in CHOICES:
        raise SDKError(f"CLAWHUB_LOOP={choice!r}: expected one of {', '.join(CHOICES)}")
    if choice == "asyncio":
        return None
    if importlib.util.find_spec("uvloop") is None:
        if choice == "uvloop":
            raise SDKError(
                "CLAWHUB_LOOP=uvloop, but uvloop is not installed: pip install 'clawhub[fast]'"
            )
        return None
    import uvloop  # noqa: PLC0415 - only when chosen and installed (import agents_sdk stays light)

    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], choice: str | None = None) -> T:
    """``asyncio.run(main)`` on the loop ``choice`` (or ``CLAWHUB_LOOP``) names."""
    try:
        factory = loop_factory(choice)
    except SDKError:
        main.close()  # never started: no "never awaited" warning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
