"""One run of a command in a process group of its own, its output read line by line.

``run_process`` starts the command with ``start_new_session=True`` (so it leads a new
process group: everything it spawns is in it), feeds it stdin, hands every line it writes to
stdout and stderr to ``on_line`` as it comes, keeps the tail of each, and when it ends, one
way or another, ends the whole group: ``SIGTERM``, then ``SIGKILL`` after ``grace`` seconds
for what is left. That also happens when the caller is cancelled (a revoke, a cancel, a
stall): no process of the group outlives the run. A process that leaves the group on
purpose (``setsid``) is out of reach, as for any process supervisor.

``ProgressPump`` turns a stream of lines into at most one progress message per
``interval`` seconds: lines in between are coalesced (the latest is sent, with how many
came with it), so a chatty command never floods the bus and a silent one sends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

#: Longest line kept whole; a longer one is cut into pieces of this size.
MAX_LINE = 64 * 1024
#: Lines of stderr kept for the error of a failed run.
STDERR_LINES = 20
#: Seconds the pipes may stay open after the command exited (a child still holds them)
#: before the group is ended.
LINGER = 1.0

log = logging.getLogger("agents_sdk")

LineHandler = Callable[[str, str], None]
"""``(stream, line)``: ``stream`` is ``"stdout"`` or ``"stderr"``."""


@dataclass
class Finished:
    """How a run ended and what it wrote."""

    returncode: int
    """The exit code; ``-N`` when signal ``N`` killed it."""
    stdout: str
    """The tail of stdout (at most ``max_output`` characters, whole lines)."""
    stdout_cut: int
    """Characters of stdout left out at the front (0: ``stdout`` is all of it)."""
    stderr_tail: list[str] = field(default_factory=list)
    """The last lines of stderr."""
    lines: int = 0
    """Lines read from stdout and stderr together."""


class _Tail:
    """The last ``limit`` characters of a stream, in whole lines."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.lines: deque[str] = deque()
        self.size = 0
        self.cut = 0

    def add(self, line: str) -> None:
        self.lines.append(line)
        self.size += len(line) + 1
        while self.size > self.limit and len(self.lines) > 1:
            dropped = self.lines.popleft()
            self.size -= len(dropped) + 1
            self.cut += len(dropped) + 1

    def text(self) -> str:
        return "\n".join(self.lines)


def group_alive(pgid: int) -> bool:
    """True while any process of the group exists."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


async def end_group(pgid: int, grace: float) -> None:
    """``SIGTERM`` to the group; ``SIGKILL`` to what is left after ``grace`` seconds (at once
    when this wait is cancelled)."""
    if not _signal_group(pgid, signal.SIGTERM):
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    try:
        while loop.time() < deadline:
            await asyncio.sleep(0.05)
            if not group_alive(pgid):
                return
    finally:
        _signal_group(pgid, signal.SIGKILL)


async def _pump(stream: asyncio.StreamReader, name: str, take: Callable[[str, str], None]) -> None:
    pending = b""
    while chunk := await stream.read(65536):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            take(name, raw.decode("utf-8", "replace").rstrip("\r"))
        while len(pending) > MAX_LINE:
            take(name, pending[:MAX_LINE].decode("utf-8", "replace"))
            pending = pending[MAX_LINE:]
    if pending:
        take(name, pending.decode("utf-8", "replace").rstrip("\r"))


async def _feed(proc: asyncio.subprocess.Process, data: bytes) -> None:
    stdin = proc.stdin
    if stdin is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stdin.write(data)
        await stdin.drain()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stdin.close()


async def _exit_of(proc: asyncio.subprocess.Process) -> int:
    """The exit code, once the process exited. Not ``proc.wait()``: on Python 3.11 that also
    waits for the pipes to close, which a child left running may hold open for ever."""
    while (code := proc.returncode) is None:  # noqa: ASYNC110 - asyncio offers no event for it
        await asyncio.sleep(0.05)
    return code


async def run_process(
    argv: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    stdin: bytes | None,
    on_line: LineHandler,
    grace: float = 5.0,
    max_output: int = 1_000_000,
) -> Finished:
    """Run ``argv`` to its end (see the module doc); raises ``FileNotFoundError`` or
    ``PermissionError`` when it cannot start. Cancelling the caller ends the group."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    pgid = proc.pid  # the leader of a new session: its pid is the group's id
    out = _Tail(max_output)
    err: deque[str] = deque(maxlen=STDERR_LINES)
    count = 0

    def take(name: str, line: str) -> None:
        nonlocal count
        count += 1
        if name == "stdout":
            out.add(line)
        else:
            err.append(line)
        on_line(name, line)

    assert proc.stdout is not None and proc.stderr is not None
    readers = [
        asyncio.create_task(_pump(proc.stdout, "stdout", take)),
        asyncio.create_task(_pump(proc.stderr, "stderr", take)),
    ]
    feeder = asyncio.create_task(_feed(proc, stdin)) if stdin is not None else None
    try:
        returncode = await _exit_of(proc)
        # what the command left running may still hold the pipes: a moment, then the group ends
        await asyncio.wait(readers, timeout=LINGER)
    finally:
        try:
            await end_group(pgid, grace)
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait(readers, timeout=LINGER)  # EOF, now that the group is gone
            for task in [*readers, *([feeder] if feeder else [])]:
                task.cancel()
            await asyncio.gather(*readers, *([feeder] if feeder else []), return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(proc.wait()), 5.0)
    return Finished(returncode, out.text(), out.cut, list(err), count)


class ProgressPump:
    """At most one progress message per ``interval`` seconds out of many lines (see the
    module doc). ``note`` is sync and cheap; ``run`` is the sending task."""

    def __init__(self, send: Callable[[str], Awaitable[None]], interval: float) -> None:
        self._send = send
        self.interval = interval
        self._latest = ""
        self._waiting = 0
        self._event = asyncio.Event()
        self.lines = 0
        """Lines noted."""
        self.sent = 0
        """Progress messages sent."""

    def note(self, text: str) -> None:
        self._latest = text
        self._waiting += 1
        self.lines += 1
        self._event.set()

    async def _flush(self) -> None:
        text, waiting = self._latest, self._waiting
        self._waiting = 0
        self._event.clear()
        if waiting:
            try:
                await self._send(text if waiting == 1 else f"{text} (+{waiting - 1} more lines)")
            except Exception:  # the bus is down, say: the run goes on, the next line retries
                log.warning("progress not sent", exc_info=True)
                return
            self.sent += 1

    async def run(self) -> None:
        while True:
            await self._event.wait()
            await self._flush()
            await asyncio.sleep(self.interval)

    async def close(self, task: asyncio.Task[None]) -> None:
        """Stop the sending task, then send what is still waiting."""
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await self._flush()
