"""``clawhub up --workers N``: a hub of several groups on every core of one machine.

One Python process runs one event loop on one core, so one ``clawhub up`` serving four
groups runs four boards on one core. ``Workers`` spreads them over N processes with the
replica mechanism (``runtime.replica``: a lease per group with a fencing epoch):

- **worker 0** is this process: the embedded nats-server (or the ``--nats-url`` given), the
  gateway on its port, ``hub.json``, the token watcher, and a replica that takes its share
  of the groups;
- **workers 1..N-1** are child processes (``python -m clawhub.cli.workers``, the settings
  on stdin so no secret is on a command line): replicas on the same NATS (as the hub's own
  user) and the same store, each with a gateway of its own on a free port (so a standby's
  refusal of an agent WebSocket names a gateway that takes it). Each takes its share.

Each group is active in exactly one worker at a time (the lease). A worker that dies is
started again after ``RESPAWN`` seconds (longer, up to ``RESPAWN_MAX``, while it keeps
dying young); meanwhile its leases lapse and the others take its
groups (within about ``lease_ttl``), and when it is back the groups are spread again. The
children die with this process (``PR_SET_PDEATHSIG`` on Linux, as the nats-server does).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..gateway.process import HubProcess
from ..runtime.replica import replica_name
from ..settings import HubSettings

log = logging.getLogger("clawhub.workers")

#: Seconds before a worker that exited on its own is started again; doubled (up to
#: ``RESPAWN_MAX``) each time it exits within ``STEADY`` seconds of its start.
RESPAWN = 1.0
RESPAWN_MAX = 30.0
STEADY = 30.0
#: Seconds a stopping worker is given before it is killed.
STOP_TIMEOUT = 20.0


#: libc, loaded here: between fork and exec the child may not load a library (another
#: thread of this process may have held the loader's lock at the fork).
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the worker gets SIGTERM when ``clawhub up`` dies, even by SIGKILL."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Workers:
    """Worker 0 here (``server``) and ``count - 1`` worker processes for ``groups``."""

    def __init__(self, settings: HubSettings, groups: list[str] | None, count: int) -> None:
        self.base = settings.replica_id or replica_name()
        self.count = count
        self.settings = settings.model_copy(
            update={"replica": True, "replica_id": f"{self.base}-w0", "workers": count}
        )
        self.server = HubProcess(self.settings, groups)
        self.groups = self.server.groups
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.restarts = 0
        """Workers started again after they exited on their own."""
        self._supervisors: list[asyncio.Task[None]] = []
        self._stopping = False

    def name(self, index: int) -> str:
        """The replica id of worker ``index``."""
        return f"{self.base}-w{index}"

    def data_dir(self, index: int) -> Path:
        """Worker ``index``'s own data directory (its log, gateway port, ``hub.json``)."""
        return self.settings.data_dir / "workers" / f"w{index}"

    async def start(self) -> None:
        """Worker 0 (nats-server, gateway, its share of the groups), then the others."""
        await self.server.start()
        try:
            for index in range(1, self.count):
                await self._spawn(index)
                self._supervisors.append(asyncio.create_task(self._supervise(index)))
        except BaseException:
            await self.stop()
            raise

    def _child_settings(self, index: int) -> dict[str, Any]:
        """Worker ``index``'s settings: this one's, on this NATS and store, as a replica."""
        s = self.settings
        config = s.model_dump(mode="json")
        config.update(
            replica_id=self.name(index),
            data_dir=str(self.data_dir(index)),
            store_url=s.resolved_store_url(),
            gateway_port=0,
            nats_port=0,
            nats_password=s.nats_password.get_secret_value() if s.nats_password else None,
        )
        embedded = self.server.embedded
        if embedded is not None:  # as the hub's own user (full access to the client account)
            parts = urlsplit(embedded.service_url)
            config.update(
                nats_url=urlunsplit(parts._replace(netloc=f"{parts.hostname}:{parts.port}")),
                nats_user=parts.username,
                nats_password=parts.password,
                nats_system_url=embedded.system_url,
            )
        return config

    async def _spawn(self, index: int) -> None:
        data_dir = self.data_dir(index)
        await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
        # the admin tokens of worker 0, so a worker does not mint new ones at each start
        hub_file = data_dir / "hub.json"
        fd = os.open(hub_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"tokens": self.server.admin_tokens}, fh)
        payload = json.dumps({"settings": self._child_settings(index), "groups": self.groups})
        out = (data_dir / "worker.log").open("ab")
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "clawhub.cli.workers",
                stdin=asyncio.subprocess.PIPE,
                stdout=out,
                stderr=out,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        finally:
            out.close()
        assert proc.stdin is not None
        proc.stdin.write(payload.encode())
        await proc.stdin.drain()
        proc.stdin.close()
        self.procs[index] = proc
        log.info("worker %s started (pid %d)", self.name(index), proc.pid)

    async def _supervise(self, index: int) -> None:
        """Start worker ``index`` again whenever it exits while we are serving."""
        loop = asyncio.get_running_loop()
        pause = RESPAWN / 2  # the first quick exit: RESPAWN
        while True:
            began = loop.time()
            code = await self.procs[index].wait()
            if self._stopping:
                return
            pause = RESPAWN if loop.time() - began > STEADY else min(2 * pause, RESPAWN_MAX)
            log.error(
                "worker %s exited (code %s); its groups go to the others, it restarts in %.0fs",
                self.name(index),
                code,
                pause,
            )
            await asyncio.sleep(pause)
            if self._stopping:
                return
            try:
                await self._spawn(index)
            except Exception:  # try again after the next pause
                log.exception("worker %s would not start", self.name(index))
                continue
            self.restarts += 1

    async def stop(self) -> None:
        """Stop the workers (each hands its groups over), then worker 0."""
        self._stopping = True
        for task in self._supervisors:
            task.cancel()
        await asyncio.gather(*self._supervisors, return_exceptions=True)
        self._supervisors.clear()

        async def end(proc: asyncio.subprocess.Process) -> None:
            if proc.returncode is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()

        await asyncio.gather(*(end(p) for p in self.procs.values()))
        await self.server.stop()


async def _serve_worker(settings: HubSettings, groups: list[str]) -> None:
    from ..runtime.gc import tune_gc  # noqa: PLC0415

    server = HubProcess(settings, groups)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    tune_gc()
    log.info("worker %s serving (groups %s)", settings.replica_id, ", ".join(groups))
    try:
        await stop.wait()
    finally:
        await server.stop()


def main() -> None:
    """A worker process: its settings and groups as JSON on stdin."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    got = json.loads(sys.stdin.read())
    settings = HubSettings(**got["settings"])
    from ..runtime.loop import run  # noqa: PLC0415 - as clawhub up: uvloop when installed

    run(_serve_worker(settings, list(got["groups"])), settings.loop)


if __name__ == "__main__":
    main()
