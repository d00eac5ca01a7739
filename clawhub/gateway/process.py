"""``HubProcess``: what ``clawhub up`` runs. One process serves one or more groups:

- one embedded nats-server (unless ``nats_url`` is set), with authentication: one NATS user
  per token, confined to its group's subjects and its own inboxes;
- one ``Hub`` per group (each its own board, scheduler and lease watcher) on that server
  and one store;
- one gateway (FastAPI on uvicorn) in front of all of them, routing each call by the group
  of its token;
- a token watcher that re-reads the token table, so ``clawhub token create/revoke`` from
  another process takes effect within ``token_refresh`` seconds (revoked NATS users are
  disconnected by the server's reload), and closes the gateway's open WebSockets and SSE
  streams of a revoked token within ``REVOKE_CHECK`` seconds of the process seeing it
  (at once for ``revoke_token``);
- ``data_dir/hub.json`` (mode 0600) with the URLs and an admin token per group, so local
  CLI commands work with no flags.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

import uvicorn

from protocols import ProtocolError, Role, is_identifier

from ..errors import BusError, HubError, StoreError
from ..runtime.auth import Tokens
from ..runtime.hub import Hub
from ..runtime.nats_server import EmbeddedNats
from ..settings import HubSettings, read_hub_file
from ..store.store import Store, TokenRow
from .app import create_app
from .state import Gateway

log = logging.getLogger(__name__)

#: Seconds between checks of the in-memory token table for a revocation to enforce on the
#: gateway's open streams (cheap: a version number; the store is re-read every
#: ``token_refresh``).
REVOKE_CHECK = 0.1


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers (the CLI owns Ctrl-C)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class HubProcess:
    """Hubs for ``groups`` behind one nats-server and one gateway. ``await start()``, then
    ``await stop()`` (or ``async with``)."""

    def __init__(
        self, settings: HubSettings, groups: list[str] | None = None, store: Store | None = None
    ) -> None:
        self.settings = settings
        self.groups = list(dict.fromkeys(groups or [settings.group]))
        for group in self.groups:
            if not is_identifier(group):
                raise HubError(f"group {group!r} is not a valid identifier")
        self._own_store = store is None
        self.store = store or Store(settings.resolved_store_url())
        self.tokens = Tokens(self.store)
        self.embedded: EmbeddedNats | None = None
        self.hubs: dict[str, Hub] = {}
        self.gateway: Gateway | None = None
        self.admin_tokens: dict[str, str] = {}
        self.gateway_port: int | None = None
        self._uvicorn: _Uvicorn | None = None
        self._serving: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._nats_version = -1
        self._gateway_version = -1

    @property
    def url(self) -> str:
        """The NATS URL participants use."""
        return next(iter(self.hubs.values())).url

    @property
    def gateway_url(self) -> str | None:
        """``http://host:port`` of the gateway (None when it is off)."""
        if self.gateway_port is None:
            return None
        return f"http://{self.settings.gateway_host}:{self.gateway_port}"

    @property
    def ws_url(self) -> str | None:
        """The WebSocket URL participants use (``ws://host:port/v1/ws/agent``)."""
        base = self.gateway_url
        return None if base is None else "ws" + base[4:] + "/v1/ws/agent"

    async def start(self) -> None:
        """Tokens, nats-server, hubs, gateway; then ``hub.json``."""
        s = self.settings
        try:
            await asyncio.to_thread(self.tokens.refresh)
            await asyncio.to_thread(self._admin_tokens)
        except Exception as exc:
            raise StoreError(f"cannot read tokens from {self.store.display_url}: {exc}") from exc
        if s.nats_url is None:
            self.embedded = EmbeddedNats(
                s.data_dir / "nats",
                s.nats_port,
                remember_port=True,
                max_payload=max(8 * 1024 * 1024, 2 * s.max_message_bytes),
                auth=s.auth,
                max_connections=s.nats_max_connections,
            )
            self.embedded.users = tuple(self.tokens.nats_users())
            self._nats_version = self.tokens.version
            self.embedded.start()  # from this thread: on Linux it dies with the hub
        identity = self.embedded is not None and s.auth
        try:
            for group in self.groups:
                hub = Hub(
                    s.model_copy(update={"group": group}),
                    store=self.store,
                    embedded=self.embedded,
                    hub_file=False,
                    # our nats-server checks each token's password and confines it to
                    # publishing under its own id: the hub may believe the sender
                    principals=self.tokens.principal if identity else None,
                )
                await hub.start()
                self.hubs[group] = hub
            if s.gateway:
                await self._start_gateway()
        except BaseException:
            await self.stop()
            raise
        self._watcher = asyncio.create_task(self._watch_tokens())
        self._write_hub_file()

    def _admin_tokens(self) -> None:
        """An admin token per group for local use: the last run's if still live, else new."""
        known = read_hub_file(self.settings.data_dir) or {}
        previous = known.get("tokens") if isinstance(known.get("tokens"), dict) else {}
        assert isinstance(previous, dict)
        for group in self.groups:
            token = previous.get(group)
            with contextlib.suppress(ProtocolError):  # unknown or revoked: make a new one
                who = self.tokens.verify(token if isinstance(token, str) else None)
                if who.group == group and who.role == "admin":
                    self.admin_tokens[group] = str(token)
                    continue
            made, _ = self.tokens.create(group, "admin", note="clawhub up (local admin)")
            self.admin_tokens[group] = made

    async def _start_gateway(self) -> None:
        s = self.settings
        self.gateway = Gateway(self.hubs, self.tokens, s)
        app = create_app(self.gateway)
        port = s.gateway_port
        port_file = s.data_dir / "gateway.port"
        if port == 0:
            with contextlib.suppress(OSError, ValueError):
                remembered = int(port_file.read_text().strip())
                if _port_free(s.gateway_host, remembered):
                    port = remembered
        config = uvicorn.Config(
            app,
            host=s.gateway_host,
            port=port,
            log_level="warning",
            lifespan="off",
            ws_max_size=2 * s.max_message_bytes + 65536,  # larger: refused with a reply
            timeout_graceful_shutdown=3,
        )
        self._uvicorn = _Uvicorn(config)
        serve = asyncio.create_task(self._uvicorn.serve())
        while not self._uvicorn.started:
            if serve.done():
                exc = serve.exception()
                raise BusError(f"the gateway did not start on {s.gateway_host}:{port}: {exc}")
            await asyncio.sleep(0.01)
        self._serving = serve
        sock = self._uvicorn.servers[0].sockets[0]
        self.gateway_port = int(sock.getsockname()[1])
        with contextlib.suppress(OSError):
            port_file.parent.mkdir(parents=True, exist_ok=True)
            port_file.write_text(str(self.gateway_port))

    async def sync_tokens(self) -> None:
        """Re-read the token table and give the nats-server the new users (if changed); close
        the gateway's streams of revoked tokens."""
        await asyncio.to_thread(self.tokens.refresh)
        self._drop_revoked()
        embedded = self.embedded
        if embedded is not None and self.tokens.version != self._nats_version:
            self._nats_version = self.tokens.version
            await asyncio.to_thread(embedded.set_users, self.tokens.nats_users())

    def _drop_revoked(self) -> None:
        """When the live tokens changed: end the gateway's open sockets and streams whose
        token is no longer live (WebSockets are closed with 4401)."""
        if self.gateway is not None and self.tokens.version != self._gateway_version:
            self._gateway_version = self.tokens.version
            dropped = self.gateway.drop_revoked()
            if dropped:
                log.info("closed %d stream(s) of revoked tokens", dropped)

    async def create_token(
        self, group: str, role: Role, agent_id: str | None = None, note: str = ""
    ) -> tuple[str, TokenRow]:
        """Issue a token and make it valid on NATS too before returning."""
        made = await asyncio.to_thread(self.tokens.create, group, role, agent_id, note)
        await self.sync_tokens()
        return made

    async def revoke_token(self, token_id: str) -> bool:
        """Revoke a token everywhere (its NATS connections are closed) before returning."""
        done = await asyncio.to_thread(self.tokens.revoke, token_id)
        await self.sync_tokens()
        return done

    async def _watch_tokens(self) -> None:
        """Re-read the store every ``token_refresh``; between reads, enforce a revocation
        made in this process (``Tokens.revoke``) within ``REVOKE_CHECK``."""
        loop = asyncio.get_running_loop()
        due = loop.time() + self.settings.token_refresh
        while True:
            await asyncio.sleep(min(REVOKE_CHECK, self.settings.token_refresh))
            try:
                if loop.time() >= due:
                    due = loop.time() + self.settings.token_refresh
                    await self.sync_tokens()
                else:
                    self._drop_revoked()
            except Exception:  # keep serving with the tokens we have
                log.exception("token refresh failed")

    def _write_hub_file(self) -> None:
        first = self.groups[0]
        info = {
            "url": self.url,
            "gateway": self.gateway_url,
            "ws": self.ws_url,
            "group": first,
            "groups": self.groups,
            "token": self.admin_tokens.get(first),
            "tokens": self.admin_tokens,
            "auth": bool(self.embedded and self.embedded.auth),
            "hub_id": ",".join(h.hub_id for h in self.hubs.values()),
            "pid": os.getpid(),
            "store": self.store.display_url,
        }
        path = self.settings.data_dir / "hub.json"
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(info, fh, indent=2)
            os.chmod(path, 0o600)

    async def stop(self) -> None:
        """Stop the gateway, the hubs, the nats-server; remove ``hub.json``."""
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        if self._uvicorn is not None and self._serving is not None:
            self._uvicorn.should_exit = True
            await asyncio.gather(self._serving, return_exceptions=True)
            self._serving = None
        if self.gateway is not None:
            await self.gateway.close()
        for hub in self.hubs.values():
            await hub.stop()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
        if self._own_store:
            self.store.close()
        await asyncio.to_thread(self._remove_hub_file)

    def _remove_hub_file(self) -> None:
        hub_file: Path = self.settings.data_dir / "hub.json"
        with contextlib.suppress(OSError, ValueError):
            if json.loads(hub_file.read_text()).get("pid") == os.getpid():
                hub_file.unlink()

    async def __aenter__(self) -> HubProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
