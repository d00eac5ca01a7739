"""``HubProcess``: what ``clawhub up`` runs. One process serves one or more groups:

- one embedded nats-server (unless ``nats_url`` is set), with authentication: one NATS user
  per token, confined to its group's subjects and its own inboxes (an external NATS is
  refused unless it requires credentials: ``clawhub nats-config`` sets it up the same way);
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

As a replica (``settings.replica``: ``clawhub up --replica``, on a shared NATS and store, or
worker 0 of ``clawhub up --workers`` on its embedded nats-server) it starts no hub itself:
``runtime.replica.Replicas`` starts the hub of each group whose lease it takes, and the
gateway serves every group, forwarding API calls for groups active on another replica to it
over NATS.
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
from urllib.parse import urlsplit, urlunsplit

import nats
import nats.errors
import uvicorn
from nats.aio.client import Client as NATS
from pydantic import BaseModel

from protocols import (
    API,
    ErrorCode,
    ErrorReply,
    Ok,
    ProtocolError,
    Role,
    decode,
    encode,
    is_identifier,
    subjects,
)

from ..errors import BusError, HubError, StoreError
from ..runtime.auth import Principal, Tokens
from ..runtime.hub import Hub
from ..runtime.hubfile import write_private
from ..runtime.local_tokens import kept_token
from ..runtime.nats_server import EmbeddedNats
from ..runtime.replica import Replicas, replica_name
from ..runtime.trace import INCOMING
from ..settings import HubSettings
from ..store.lease import Lease
from ..store.store import Store, TokenRow
from .app import create_app
from .state import Gateway

log = logging.getLogger(__name__)

#: Seconds between checks of the in-memory token table for a revocation to enforce on the
#: gateway's open streams (cheap: a version number; the store is re-read every
#: ``token_refresh``).
REVOKE_CHECK = 0.1
#: The note on the local admin token ``clawhub token list`` shows.
ADMIN_NOTE = "clawhub up (local admin)"


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


async def _refuse_open_nats(url: str, timeout: float) -> bool:
    """``BusError`` when the external NATS at ``url`` lets a client in without credentials:
    it cannot vouch for the sender a subject names, so the hub could not enforce identity.
    True when it refused the client for want of credentials (False: it did not answer)."""
    seen: list[Exception] = []

    async def quiet(exc: Exception) -> None:
        seen.append(exc)

    anonymous = [  # without any user:password a URL may hold
        urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        for parts in map(urlsplit, subjects.server_urls(url))
    ]
    try:
        probe = await asyncio.wait_for(
            nats.connect(
                anonymous,
                allow_reconnect=False,
                connect_timeout=max(1, int(timeout)),
                error_cb=quiet,
                name="clawhub-probe",
            ),
            timeout,
        )
    except Exception as exc:  # refused, or unreachable (the hub's own connection says so)
        return any("authorization" in str(e).lower() for e in [*seen, exc])
    await probe.close()
    raise BusError(
        f"the NATS at {url} lets clients in without credentials, so it cannot vouch for who "
        "sent a message: set it up with `clawhub nats-config` (docs/cluster.md), or run "
        "`clawhub up --no-auth` to trust the names in messages"
    )


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
        self.replicas: Replicas | None = None
        """As a replica: the groups this process is active for, and its leases."""
        self._forwarder: NATS | None = None

    @property
    def url(self) -> str:
        """The NATS URL participants use."""
        if self.settings.replica:  # on a shared NATS, or worker 0's embedded one
            return self.settings.nats_url or (self.embedded.url if self.embedded else "")
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
        if s.nats_url is not None and s.auth:  # it must hold each token to its own subjects
            wants_login = await _refuse_open_nats(s.nats_url, s.connect_timeout)
            if wants_login and not s.nats_user and "@" not in s.nats_url:
                raise BusError(
                    f"the NATS at {s.nats_url} requires credentials and the hub has none: set "
                    "CLAWHUB_NATS_USER and CLAWHUB_NATS_PASSWORD (`clawhub nats-config` writes "
                    "them to hub.env: `set -a; . hub.env; set +a`)"
                )
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
        identity = s.auth
        if s.replica:
            await self._start_replica()
            return
        try:
            for group in self.groups:
                hub = Hub(
                    s.model_copy(update={"group": group}),
                    store=self.store,
                    embedded=self.embedded,
                    hub_file=False,
                    # our nats-server (or one set up by `clawhub nats-config`) checks each
                    # token's password and confines it to publishing under its own id: the
                    # hub may believe the sender
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

    async def _start_replica(self) -> None:
        """The gateway first (its URL goes in the leases), then the groups' leases."""
        s = self.settings
        if s.nats_url is None and s.workers < 2:
            raise HubError("replicas share one NATS: give --nats-url (a server or a cluster)")
        replicas = Replicas(
            s.replica_id or replica_name(),
            self.groups,
            self.store,
            s.lease_ttl,
            self._start_group,
            self.hubs,
            lambda: self.gateway_url,
        )
        self.replicas = replicas
        try:
            login: dict[str, str] = {}
            if s.nats_user:
                secret = s.nats_password.get_secret_value() if s.nats_password else ""
                login = {"user": s.nats_user, "password": secret}
            urls = subjects.server_urls(s.nats_url or "")
            if self.embedded is not None:  # worker 0 of `clawhub up --workers`
                urls = [self.embedded.service_url]
            self._forwarder = await nats.connect(
                urls,
                name=f"clawhub-replica:{replicas.id}",
                max_reconnect_attempts=-1,
                **login,
            )
            if s.gateway:
                await self._start_gateway()
            await replicas.start()
        except BaseException:
            await self.stop()
            raise
        self._watcher = asyncio.create_task(self._watch_tokens())
        self._write_hub_file()

    async def _start_group(self, group: str, lease: Lease, may_act: Any) -> Hub:
        """The hub of a group whose lease this replica took."""
        hub = Hub(
            self.settings.model_copy(update={"group": group}),
            store=self.store,
            embedded=self.embedded,
            hub_file=False,
            principals=self.tokens.principal if self.settings.auth else None,
            lease=lease,
            may_act=may_act,
        )
        await hub.start()
        return hub

    async def _forward(self, who: Principal, verb: str, message: BaseModel) -> BaseModel:
        """An API call for a group active on another replica, sent to it over NATS with the
        call's ``traceparent`` as a NATS header (its span there joins the caller's trace)."""
        assert self._forwarder is not None and self.replicas is not None
        subject = subjects.api(who.group, who.token_id, verb)
        parent = INCOMING.get()
        headers = {"traceparent": parent} if parent else None
        try:
            msg = await self._forwarder.request(
                subject, encode(message), timeout=10, headers=headers
            )
            reply = API[verb].reply or Ok
            return decode(msg.data, reply, ErrorReply)
        except nats.errors.NoRespondersError:
            where = await asyncio.to_thread(self.replicas.where, who.group)
            return ErrorReply(code=ErrorCode.UNAVAILABLE, message=where)
        except nats.errors.TimeoutError:
            note = f"the replica active for group {who.group} did not answer in time"
            return ErrorReply(code=ErrorCode.UNAVAILABLE, message=note)
        except ProtocolError as exc:
            return ErrorReply(code=exc.code, message=f"from the active replica: {exc.message}")

    def _admin_tokens(self) -> None:
        """An admin token per group for local use: the one an earlier start made if still
        live (``runtime.local_tokens``: one live local admin token, however many restarts),
        else a new one."""
        for group in self.groups:
            self.admin_tokens[group] = kept_token(
                self.tokens, self.settings.data_dir, group, "admin", None, ADMIN_NOTE
            )

    async def _start_gateway(self) -> None:
        s = self.settings
        self.gateway = Gateway(self.hubs, self.tokens, s)
        if self.replicas is not None:
            self.gateway.served = frozenset(self.groups)
            self.gateway.forward = self._forward
            self.gateway.elsewhere = self.replicas.where
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

    async def bridge_token(self, group: str, agent_id: str, note: str) -> str:
        """An agent token for a participant this process bridges itself (``clawhub up
        --a2a-agent``): the live one made for ``group`` and ``agent_id`` on an earlier start,
        else a new one (``runtime.local_tokens``); valid on NATS before it returns."""
        token = await asyncio.to_thread(
            kept_token, self.tokens, self.settings.data_dir, group, "agent", agent_id, note
        )
        await self.sync_tokens()
        return token

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
            "auth": self.settings.auth,
            "hub_id": ",".join(h.hub_id for h in self.hubs.values()),
            "pid": os.getpid(),
            "store": self.store.display_url,
        }
        with contextlib.suppress(OSError):
            write_private(self.settings.data_dir / "hub.json", info)

    async def stop(self) -> None:
        """Stop the gateway, the hubs, the nats-server; remove ``hub.json``."""
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        if self.replicas is not None:
            await self.replicas.stop()
        if self._uvicorn is not None and self._serving is not None:
            self._uvicorn.should_exit = True
            await asyncio.gather(self._serving, return_exceptions=True)
            self._serving = None
        if self.gateway is not None:
            await self.gateway.close()
        for hub in list(self.hubs.values()):
            await hub.stop()
        if self._forwarder is not None:
            with contextlib.suppress(Exception):
                await self._forwarder.close()
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
