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
from clawhub.settings import HubSettings


async def serve(config: dict[str, object]) -> None:
    hub = Hub(HubSettings(**config))  # type: ignore[arg-type]
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
    asyncio.run(serve(json.loads(sys.argv[1])))


if __name__ == "__main__":
    main()
