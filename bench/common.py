"""What every scenario shares: a real nats-server, a hub in its own process on a real SQLite
store, SDK agents in worker processes, the raw nats-py request/reply baseline measured in
the same run, an event watcher, and the result rows."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from clawhub.runtime import EmbeddedNats
from protocols import subjects

ROOT = Path(__file__).resolve().parent.parent
GROUP = "default"
ECHO_SUBJECT = "bench.echo"
TERMINAL = {"done", "failed", "cancelled"}
#: The events a client waiting for tasks to end needs.
ENDINGS = ("task.done", "task.failed", "task.cancelled")


@dataclass
class Row:
    """One measured figure: its value, the baseline of the same run, and the target."""

    scenario: str
    name: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    ratio: float | None = None
    target: str = ""
    ok: bool | None = None
    """True: target met; False: missed; None: informational (no target)."""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def missing(scenario: str, name: str, reason: str) -> Row:
    """A peer or measure that could not run: reported, never silently skipped."""
    return Row(scenario, name, None, "", note=f"missing: {reason}")


def pct(samples: Iterable[float], q: float) -> float:
    """The q-th percentile (0..100) of samples (nearest rank)."""
    data = sorted(samples)
    if not data:
        return float("nan")
    k = max(0, min(len(data) - 1, round(q / 100 * (len(data) - 1))))
    return data[k]


# ---------------------------------------------------------------------- processes


class Proc:
    """A Python module run in its own process that prints ``READY`` when it serves."""

    def __init__(
        self,
        module: str,
        *args: str,
        log: Path | None = None,
        env: dict[str, str] | None = None,
        ready: bool = True,
    ) -> None:
        self.argv = [sys.executable, "-m", module, *args]
        self.log = log
        self.env = env or {}
        self.ready = ready
        """False: the program prints no READY line; ``start`` returns once it runs."""
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 120.0) -> None:
        err = self.log.open("ab") if self.log else asyncio.subprocess.DEVNULL
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(ROOT)}
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if self.ready else err,
            stderr=err,
            cwd=ROOT,
            env={**env, **self.env},
        )
        if not self.ready:
            return
        assert self.proc.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    line = await self.proc.stdout.readline()
                    if not line:
                        raise RuntimeError(f"{' '.join(self.argv[2:4])} exited before READY")
                    if line.strip() == b"READY":
                        return
        except BaseException:
            await self.stop()
            raise

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)

    async def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.signal(signal.SIGCONT)  # a frozen process must be able to hear SIGTERM
        self.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.signal(signal.SIGKILL)
            await self.proc.wait()


@contextlib.asynccontextmanager
async def bus() -> AsyncIterator[tuple[EmbeddedNats, Path]]:
    """A fresh nats-server (JetStream on) on a free loopback port, and a temp dir."""
    tmp = Path(tempfile.mkdtemp(prefix="clawhub-bench-"))
    server = EmbeddedNats(tmp / "nats")
    await asyncio.to_thread(server.start)
    try:
        yield server, tmp
    finally:
        await asyncio.to_thread(server.stop)


def hub_config(server: EmbeddedNats, data_dir: Path, **overrides: object) -> dict[str, object]:
    """Hub settings for a benchmark: the given bus, SQLite under ``data_dir``."""
    config: dict[str, object] = {
        "nats_url": server.url,
        "nats_system_url": server.system_url,
        "data_dir": str(data_dir),
        "heartbeat_interval": 2.0,
        "missed_beats": 3,
        # a benchmark client submits as fast as it can (one task at a time for latency):
        # the per-participant submission limit (20/s by default) is lifted
        "submit_rate": 1_000_000.0,
    }
    config.update(overrides)
    return config


@contextlib.asynccontextmanager
async def hub_process(
    server: EmbeddedNats, data_dir: Path, **overrides: object
) -> AsyncIterator[Proc]:
    """A hub in its own process on ``server`` and a SQLite store in ``data_dir``."""
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    config = json.dumps(hub_config(server, data_dir, **overrides))
    proc = Proc("bench._hub", config, log=data_dir / "hub.log")
    await proc.start()
    spy = await _profile(proc.pid, "hub")
    try:
        yield proc
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            await spy.wait()
        await proc.stop()


async def _profile(pid: int, name: str) -> asyncio.subprocess.Process | None:
    """With ``BENCH_PYSPY=DIR``: sample ``pid`` with py-spy into ``DIR/<name>-<pid>.txt``
    (collapsed stacks: ``python -m bench.profile FILE`` prints the top frames)."""
    out = os.environ.get("BENCH_PYSPY")
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not out or not os.access(spy, os.X_OK):
        return None
    target = Path(out) / f"{name}-{pid}.txt"
    argv = [spy, "record", "-p", str(pid), "-r", "250", "-f", "raw", "-o", str(target)]
    return await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )


class Fleet:
    """``count`` SDK agents in worker processes of ``per_proc`` agents each."""

    def __init__(
        self,
        url: str,
        count: int,
        *,
        per_proc: int = 50,
        prefix: str = "bench",
        capacity: int = 1,
        skills: str = "work",
        level: float = 0.8,
        log: Path | None = None,
        group: str = GROUP,
    ) -> None:
        self.procs: list[Proc] = []
        self.ids: list[list[str]] = []
        for first in range(0, count, per_proc):
            n = min(per_proc, count - first)
            argv = ["--url", url, "--prefix", prefix, "--first", str(first), "--count", str(n)]
            argv += ["--capacity", str(capacity), "--skills", skills, "--level", str(level)]
            argv += ["--group", group]
            self.procs.append(Proc("bench._agents", *argv, log=log))
            self.ids.append([f"{prefix}-{i}" for i in range(first, first + n)])

    async def start(self) -> None:
        # a few at a time: 2 cores, and each process registers its agents in bursts
        for start in range(0, len(self.procs), 4):
            await asyncio.gather(*(p.start() for p in self.procs[start : start + 4]))
        self._spy = await _profile(self.procs[0].pid, "agents")

    async def stop(self) -> None:
        spy, self._spy = getattr(self, "_spy", None), None
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            await spy.wait()
        await asyncio.gather(*(p.stop() for p in self.procs))

    async def __aenter__(self) -> Fleet:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


# ---------------------------------------------------------------------- the raw baseline


@contextlib.asynccontextmanager
async def echo_server(url: str) -> AsyncIterator[None]:
    """A plain nats-py responder in its own process (the baseline's 'hub')."""
    proc = Proc("bench._echo", url, ECHO_SUBJECT)
    await proc.start()
    try:
        yield
    finally:
        await proc.stop()


async def raw_round_trips(url: str, n: int, payload: int = 300) -> list[float]:
    """Sequential raw request/reply round trips (seconds) to the echo responder."""
    nc = await nats.connect(url)
    data = b"x" * payload
    samples = []
    try:
        for _ in range(20):  # warm up
            await nc.request(ECHO_SUBJECT, data, timeout=5)
        for _ in range(n):
            t = time.perf_counter()
            await nc.request(ECHO_SUBJECT, data, timeout=5)
            samples.append(time.perf_counter() - t)
    finally:
        await nc.close()
    return samples


async def raw_rate(url: str, concurrency: int, n: int, payload: int = 300) -> float:
    """Raw requests per second with ``concurrency`` requests in flight."""
    nc = await nats.connect(url)
    data = b"x" * payload
    each = max(1, n // concurrency)

    async def worker() -> None:
        for _ in range(each):
            await nc.request(ECHO_SUBJECT, data, timeout=10)

    try:
        await asyncio.gather(*(nc.request(ECHO_SUBJECT, data, timeout=5) for _ in range(50)))
        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t
    finally:
        await nc.close()
    return each * concurrency / elapsed


# ---------------------------------------------------------------------- watching the hub


class Watcher:
    """Every task event, as received (wall clock) with its hub timestamp, by task id."""

    def __init__(self, url: str, kinds: tuple[str, ...] = ()) -> None:
        self.url = url
        self.kinds = kinds
        """Only these event kinds (``task.done``...); all when empty."""
        self.nc: NATS | None = None
        self.seen: dict[str, dict[str, tuple[float, float, dict[str, Any]]]] = {}
        """task id → kind → (received at, hub ts, event)"""
        self.agents: list[tuple[float, dict[str, Any]]] = []
        self.terminal: dict[str, str] = {}
        self._waiters: dict[str, asyncio.Future[str]] = {}
        self._count_target = 0
        self._all_done: asyncio.Event = asyncio.Event()
        self.log: list[dict[str, Any]] = []

    async def start(self) -> None:
        self.nc = await nats.connect(self.url, pending_size=256 * 1024 * 1024)
        wanted = [subjects.events(GROUP, k) for k in self.kinds] or [subjects.all_events(GROUP)]
        for subject in wanted:
            await self.nc.subscribe(subject, cb=self._on_event)
        await self.nc.flush()

    async def stop(self) -> None:
        if self.nc is not None:
            await self.nc.close()

    async def _on_event(self, msg: Msg) -> None:
        now = time.time()
        event = json.loads(msg.data)
        kind = event["kind"]
        task_id = event.get("task_id")
        self.log.append(event)
        if not task_id:
            self.agents.append((now, event))
            return
        self.seen.setdefault(task_id, {}).setdefault(kind, (now, event["ts"], event))
        state = event.get("state")
        if state in TERMINAL and task_id not in self.terminal:
            self.terminal[task_id] = state
            fut = self._waiters.pop(task_id, None)
            if fut is not None and not fut.done():
                fut.set_result(state)
            if self._count_target and len(self.terminal) >= self._count_target:
                self._all_done.set()

    def expect(self, task_id: str) -> asyncio.Future[str]:
        """A future set to the task's terminal state."""
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        if task_id in self.terminal:
            fut.set_result(self.terminal[task_id])
        else:
            self._waiters[task_id] = fut
        return fut

    async def wait_count(self, n: int, timeout: float) -> None:
        """Wait until ``n`` tasks reached a terminal state."""
        self._count_target = n
        if len(self.terminal) >= n:
            return
        self._all_done.clear()
        await asyncio.wait_for(self._all_done.wait(), timeout)

    def reset(self) -> None:
        self.seen.clear()
        self.terminal.clear()
        self.agents.clear()
        self.log.clear()
        self._count_target = 0


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
