"""The event loop a hub process runs on: uvloop when it is installed (``pip install
'clawhub[fast]'``), else asyncio's own; ``CLAWHUB_LOOP`` (``HubSettings.loop``) chooses.

The SDK has its twin (``agents_sdk._loop``: the same variable and values), since the hub's
core may not import the SDK, nor the SDK the hub.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

from ..errors import HubError

T = TypeVar("T")
LoopChoice = Literal["auto", "uvloop", "asyncio"]


def loop_factory(choice: LoopChoice = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What makes the loop: uvloop's for ``uvloop`` (a ``HubError`` when it is not
    installed) and for ``auto`` when it is installed; ``None`` (asyncio's own) otherwise."""
    if choice == "asyncio":
        return None
    if importlib.util.find_spec("uvloop") is None:
        if choice == "uvloop":
            raise HubError(
                "CLAWHUB_LOOP=uvloop, but uvloop is not installed: pip install 'clawhub[fast]'"
            )
        return None
    import uvloop  # noqa: PLC0415 - only when chosen and installed

    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], choice: LoopChoice = "auto") -> T:
    """``asyncio.run(main)`` on the loop ``choice`` names."""
    try:
        factory = loop_factory(choice)
    except HubError:
        main.close()  # never started: no "never awaited" warning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
