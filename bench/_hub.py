"""A hub in its own process, for the benchmarks: ``python -m bench._hub CONFIG_JSON``.

CONFIG_JSON holds ``HubSettings`` fields. Prints ``READY`` once serving, stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from clawhub.runtime import Hub, tune_gc
from clawhub.runtime.loop import run
from clawhub.settings import HubSettings


async def serve(settings: HubSettings) -> None:
    hub = Hub(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await hub.start()
    tune_gc()  # as `clawhub up` sets up its process
    print("READY", flush=True)
    await stop.wait()
    await hub.stop()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    settings = HubSettings(**json.loads(sys.argv[1]))
    run(serve(settings), settings.loop)  # uvloop when installed, as `clawhub up` runs


if __name__ == "__main__":
    main()
