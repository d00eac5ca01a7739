"""``clawhub mcp``: the group's MCP server over stdio (what Claude Code, Claude Desktop, Cursor
and others launch), the same tools as the gateway's ``/mcp``, reaching the hub over NATS
with the caller's token (``CLAWHUB_TOKEN``, else the local admin token of ``hub.json``).

The port here (``NatsPort``) sends every API request on the token's own subjects, so the
nats-server and the hub hold it to the token's role and participant, exactly as for
``clawhub submit``; a worker (``join_group``) gets its own connection, named for its
participant and session as an SDK agent's is, so when the worker is lost (its client made no
call for the window) closing that connection tells the hub at once.

Who the token is (its role and participant, which pick the paths the tools take) is read
from the local store when the hub runs on this machine; for a remote hub ``--role`` and
``--as`` declare it (the hub enforces the token's real rights either way).

Standard output carries the protocol: everything else goes to standard error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from typing import TYPE_CHECKING, Annotated, Any

import nats
import typer
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import BaseModel

from protocols import (
    AGENT_CALLS,
    API,
    ErrorReply,
    ProtocolError,
    Role,
    encode,
    split_token,
    subjects,
)

from ..errors import BusError, HubError, RequestRefused
from ..settings import HubSettings, read_hub_file
from .client import api_subject, call, connect, resolve_token
from .options import TALKS_TO_HUB, SharedOptions, fail, shared_options

if TYPE_CHECKING:
    from ..runtime.auth import Principal

log = logging.getLogger("clawhub.mcp")

#: Seconds one request to the hub may take.
REQUEST_TIMEOUT = 10.0


class NatsLink:
    """A worker's own NATS connection: its agent → hub messages and its inbox."""

    def __init__(self, nc: NATS, group: str, sender: str, agent_id: str) -> None:
        self.nc = nc
        self.group = group
        self.sender = sender
        self.agent_id = agent_id
        self._sub: Subscription | None = None

    async def send(self, name: str, message: BaseModel) -> BaseModel | None:
        """A request (register, deregister, result) or a publish (heartbeat, progress)."""
        subject = subjects.hub_call(self.group, self.sender, name)
        reply = AGENT_CALLS[name].reply
        if reply is None:
            try:
                await self.nc.publish(subject, encode(message))
            except Exception as exc:
                raise _unreachable(f"publish on {subject} failed: {exc}") from None
            return None
        return await _ask(self.nc, subject, message, reply)

    async def listen(self, handler: Any) -> None:
        """Subscribe to the participant's inbox."""

        async def on_msg(msg: Msg) -> None:
            respond = None
            if msg.reply:

                async def answer(message: BaseModel) -> bool:
                    try:
                        await msg.respond(encode(message))
                    except Exception:  # the bus is down: the hub sees no answer
                        return False
                    return True

                respond = answer
            await handler(msg.data, respond)

        inbox = subjects.agent_inbox(self.group, self.agent_id)
        self._sub = await self.nc.subscribe(inbox, cb=on_msg)
        await self.nc.flush()

    async def close(self, lost: str | None = None) -> None:
        """Close the connection (named for the participant: when ``lost``, the hub hears the
        close and marks it lost at once; else it has deregistered)."""
        if lost:
            log.warning("worker %s lost: %s", self.agent_id, lost)
        with contextlib.suppress(Exception):
            await self.nc.close()


def _unreachable(message: str) -> ProtocolError:
    from ..gateway.mcp.port import HubUnreachable  # noqa: PLC0415

    return HubUnreachable(message)


async def _ask(nc: NATS, subject: str, message: BaseModel, reply: type[BaseModel]) -> BaseModel:
    """A request; the hub's refusal as ``ErrorReply``; no hub as ``HubUnreachable``."""
    try:
        return await call(nc, subject, message, reply, REQUEST_TIMEOUT)
    except RequestRefused as exc:
        return ErrorReply(code=exc.code, message=exc.reason)
    except BusError as exc:
        raise _unreachable(str(exc)) from None


class NatsPort:
    """The hub over NATS, as the one token of this process."""

    def __init__(self, settings: HubSettings, url: str, token: str | None, who: Principal) -> None:
        self.settings = settings
        self.url = url
        self.token = token
        self.who = who
        self._nc: NATS | None = None

    @property
    def principal(self) -> Principal:
        """The token's principal."""
        return self.who

    @property
    def accept_timeout(self) -> float:
        """The hub's accept timeout (``CLAWHUB_ACCEPT_TIMEOUT``, as the hub reads it)."""
        return self.settings.accept_timeout

    async def nc(self) -> NATS:
        """The API connection (made again if it dropped)."""
        if self._nc is None or self._nc.is_closed:
            try:
                self._nc = await connect(self.url, self.token)
            except HubError as exc:
                raise _unreachable(str(exc)) from None
        return self._nc

    async def api(self, verb: str, message: BaseModel) -> BaseModel:
        """One API request on the token's subject."""
        nc = await self.nc()
        reply = API[verb].reply
        assert reply is not None
        return await _ask(nc, api_subject(nc, self.who.group, verb), message, reply)

    async def link(self, agent_id: str, session: str) -> NatsLink:
        """A connection of the worker's own, named as an agent's is."""
        extra: dict[str, Any] = {}
        if self.token:
            token_id, secret = split_token(self.token)
            extra = {
                "user": token_id,
                "password": secret,
                "inbox_prefix": subjects.inbox_prefix(token_id),
            }
        try:
            nc = await nats.connect(
                self.url,
                name=subjects.agent_connection_name(agent_id, session),
                connect_timeout=5,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                **extra,
            )
        except Exception as exc:
            raise _unreachable(f"cannot connect to NATS at {self.url}: {exc}") from None
        sender = subjects.sender_for(self.token)
        return NatsLink(nc, self.who.group, sender, agent_id)

    def refused(self, where: str, error: ProtocolError) -> None:
        """A bad MCP request never reaches the hub: it goes to this server's log (standard
        error, which MCP clients keep)."""
        log.warning("refused %s: %s: %s", where, error.code.value, error.message)

    async def close(self) -> None:
        """Close the API connection."""
        nc, self._nc = self._nc, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()


def who_is(
    settings: HubSettings, token: str | None, role: str | None, as_: str | None
) -> Principal:
    """The principal of ``token``: from the local store when the hub runs here (the token
    table), else as ``--role``/``--as`` declare it (the hub enforces the real one)."""
    from ..runtime.auth import Principal  # noqa: PLC0415 - loads the store's models

    token_id = subjects.sender_for(token)
    if token and (settings.store_url or (settings.data_dir / "clawhub.db").exists()):
        from ..runtime.auth import Tokens  # noqa: PLC0415 - opens the store
        from ..store.store import Store  # noqa: PLC0415

        with contextlib.suppress(Exception):
            store = Store(settings.resolved_store_url())
            try:
                tokens = Tokens(store)
                tokens.refresh()
                found = tokens.verify(token)
            finally:
                store.close()
            return found
    declared: Role = "admin" if role == "admin" else "human" if role == "human" else "agent"
    if role is None and token is None:
        declared = "admin"  # a hub without auth: anyone is anyone
    return Principal(token_id=token_id, group=settings.group, role=declared, agent_id=as_)


async def serve(settings: HubSettings, url: str, token: str | None, who: Principal) -> None:
    """Serve MCP on stdio until the client closes it; workers leave on the way out."""
    from ..gateway.mcp.server import build_server  # noqa: PLC0415 - loads the MCP SDK
    from ..gateway.mcp.stdio import run_stdio  # noqa: PLC0415

    port = NatsPort(settings, url, token, who)
    await port.nc()  # fail now, with the cause, if the hub cannot be reached
    server = build_server(lambda _ctx: port, window=settings.mcp_window)
    try:
        await run_stdio(server, port.refused)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.tooling.leave_all("the MCP client closed"), 10)
        await port.close()


def register(app: typer.Typer) -> None:
    """Add ``clawhub mcp`` to the CLI."""

    @app.command("mcp")
    @shared_options(*TALKS_TO_HUB, "as_")
    def mcp(
        role: Annotated[
            str | None,
            typer.Option(
                "--role",
                help="The token's role (agent, human, admin), for a hub on another machine; "
                "read from the local store otherwise.",
            ),
        ] = None,
        window: Annotated[
            float | None,
            typer.Option(
                "--window",
                help="Seconds a worker stays in the group after its last tool call "
                "(default: CLAWHUB_MCP_WINDOW or 60).",
            ),
        ] = None,
        print_http_url: Annotated[
            bool,
            typer.Option(
                "--print-http-url",
                help="Print the URL of the running hub's MCP endpoint (streamable HTTP, "
                "<gateway>/mcp, from hub.json) and exit.",
            ),
        ] = False,
        *,
        shared: SharedOptions,
    ) -> None:
        """Serve the group's MCP tools over stdio (for Claude Code, Claude Desktop, Cursor...),
        as CLAWHUB_TOKEN. See docs/mcp.md."""
        if print_http_url:
            settings = shared.settings()
            gateway = (read_hub_file(settings.data_dir) or {}).get("gateway")
            if not isinstance(gateway, str):
                raise fail(f"no running hub with a gateway in {settings.data_dir}/hub.json")
            typer.echo(f"{gateway}/mcp")
            return
        logging.basicConfig(
            level=logging.WARNING, stream=sys.stderr, format="clawhub mcp: %(message)s"
        )
        settings, url = shared.hub()
        if window is not None:
            settings = settings.model_copy(update={"mcp_window": window})
        token = resolve_token(settings)
        who = who_is(settings, token, role, shared.as_)
        try:
            asyncio.run(serve(settings, url, token, who))
        except ProtocolError as exc:
            raise fail(exc.message) from None
        except HubError as exc:
            raise fail(str(exc)) from None
