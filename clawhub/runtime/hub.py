"""The hub process: the bus, the store writer, the scheduler and the lease watcher around
one ``Board``.

Every message is handled in the event loop, so each board change is atomic. Writes go to the
store through one writer task in batches; a reply that promises something (submitted,
result taken) is sent only after the writes behind it are committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from pydantic import BaseModel

from protocols import (
    AGENT_CALLS,
    Cancel,
    Deregister,
    ErrorCode,
    ErrorReply,
    Event,
    Ok,
    ProtocolError,
    Register,
    RegisterAck,
    ValidationStep,
    decode,
    encode,
    subjects,
    type_name,
)

from ..board import Board
from ..errors import BusError, StoreError
from ..settings import HubSettings
from ..store import Row, Store
from ..store.lease import Lease
from ..store.mapping import agent_records, goal_records, task_records
from .api import HubApi
from .auth import Principal, act_as
from .coordinator import Coordinator
from .disconnects import closed_connections, leave_bus, watch_disconnects
from .hubfile import remove_hub_file, write_hub_file
from .limits import RateLimiter
from .models import ModelCalls
from .nats_server import EmbeddedNats
from .offers import Offers
from .routes import RATE_LIMITED_VERBS, Handler, Route, sender_of
from .trace import hub_traces, receive
from .writer import StoreWriter

log = logging.getLogger("clawhub.hub")

__all__ = ["Hub", "Route"]


class Hub:
    """A running hub. ``await hub.start()``, then ``await hub.stop()``."""

    def __init__(
        self,
        settings: HubSettings,
        store: Store | None = None,
        coordinator: Coordinator | None = None,
        *,
        embedded: EmbeddedNats | None = None,
        hub_file: bool = True,
        principals: Callable[[str], Principal | None] | None = None,
        lease: Lease | None = None,
        may_act: Callable[[], bool] | None = None,
    ) -> None:
        """``embedded``: a nats-server shared with other hubs (one per group), used, not
        owned; ``hub_file``: write ``data_dir/hub.json`` (off when a ``HubProcess`` writes
        one for all its groups); ``principals``: who sent a NATS message (a token id → its
        principal) when the bus enforces identity, else every sender is trusted; ``lease``
        and ``may_act``: a replica's (``runtime.replica``)."""
        self.settings = settings
        self.principals = principals
        self.coordinator = coordinator or Coordinator(settings)
        self.group = settings.group
        self.hub_id = "hub-" + secrets.token_hex(4)
        self._own_store = store is None
        self.store = store or Store(settings.resolved_store_url())
        self.board = Board(self.group, settings, self, self.hub_id)
        self.api = HubApi(self.board, self.store, self.coordinator, self.durable)
        self.models = ModelCalls(self.board, self.coordinator)
        self.embedded: EmbeddedNats | None = embedded
        self._own_embedded = embedded is None
        self._hub_file = hub_file
        self.nc: NATS | None = None
        self._sys: NATS | None = None
        self._url: str | None = embedded.url if embedded is not None else settings.nats_url
        self.traces = hub_traces()  # runtime/trace.py: off (no-op) unless OpenTelemetry is on
        self.observers: list[Callable[[Event], None]] = self.traces.observers()
        """Called with every event as it is published (the gateway's streams and metrics)."""
        self.submit_limiter = RateLimiter(settings.submit_rate, settings.submit_burst)
        self.routes: dict[str, Route] = self._routes()
        """Every served subject by name: ``register``, ``heartbeat``... and ``api.<verb>``."""
        self.writer = StoreWriter(self.store)
        self.writer.fence = lease
        self.deposed = asyncio.Event()
        self.writer.on_fenced = lambda _exc: self.deposed.set()
        self.may_act: Callable[[], bool] = may_act or (lambda: True)
        self._outbox: list[tuple[str, bytes]] = []
        self._event_subjects: dict[str, str] = {}
        self._outbox_signal = asyncio.Event()
        self._wake_event = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.offers = Offers(self.board, self.group, self._bus, self.traces.headers)
        self._model_calls: set[asyncio.Task[None]] = set()
        self._stopping = False

    # ------------------------------------------------------------------ Sink

    def write(self, row: Row) -> None:
        """Queue a row for the store writer."""
        self.writer.write(row)

    @property
    def write_errors(self) -> int:
        """Store writes that failed (each was retried)."""
        return self.writer.errors

    async def durable(self) -> None:
        """Wait until every write queued so far is committed."""
        await self.writer.durable()

    def publish(self, event: Event) -> None:
        """Queue an event for the bus (and hand it to the observers)."""
        subject = self._event_subjects.get(event.kind)
        if subject is None:
            subject = self._event_subjects[event.kind] = subjects.events(self.group, event.kind)
        self._send(subject, encode(event))
        for observe in self.observers:
            try:
                observe(event)
            except Exception:  # an observer must never break the board
                log.exception("event observer failed")

    def send_cancel(self, agent_id: str, message: Cancel) -> None:
        """Queue a cancel for a participant's inbox."""
        self._send(subjects.agent_inbox(self.group, agent_id), encode(message))

    def wake(self) -> None:
        """Ask the scheduler for another matching pass (and the publisher for what waits)."""
        self._wake_event.set()
        if self._outbox:
            self._outbox_signal.set()

    def judge(self, task_id: str, attempt: int, step: ValidationStep) -> None:
        """Ask the judge model about a result, in the background."""
        self._background(self.models.judge(task_id, attempt, step))

    def plan(self, goal_id: str, feedback: str) -> None:
        """Ask the coordinator model for a goal's plan, in the background."""
        self._background(self.models.plan(goal_id, feedback))

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._model_calls.add(task)
        task.add_done_callback(self._model_calls.discard)

    def _send(self, subject: str, data: bytes) -> None:
        self._outbox.append((subject, data))
        self._outbox_signal.set()

    # ------------------------------------------------------------------ life
    @property
    def url(self) -> str:
        """The NATS URL agents and clients use."""
        if self._url is None:
            raise BusError("the hub has not started")
        return self._url

    async def start(self) -> None:
        """Start the bus (embedded unless a URL is set), load the store, serve."""
        if self._url is None and self.embedded is None:
            self.embedded = EmbeddedNats(
                self.settings.data_dir / "nats",
                self.settings.nats_port,
                remember_port=True,
                max_payload=max(8 * 1024 * 1024, 2 * self.settings.max_message_bytes),
            )
            # started from this thread: on Linux the server dies with the thread that forked it
            self._url = self.embedded.start()
        try:
            rows = await asyncio.to_thread(self.store.load_tasks, self.group)
            agents = await asyncio.to_thread(self.store.load_agents, self.group)
            last = await asyncio.to_thread(self.store.last_event_seq, self.group)
            goals = await asyncio.to_thread(self.store.load_goals, self.group)
        except Exception as exc:
            raise StoreError(f"cannot read store {self.store.display_url}: {exc}") from exc
        self.board.load(task_records(rows), agent_records(agents), last, goal_records(goals))
        try:
            self.nc = await asyncio.wait_for(self._connect(), self.settings.connect_timeout)
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            await self._stop_embedded()
            raise BusError(f"cannot connect to NATS at {self.url}: {exc or 'timed out'}") from None
        for name in self.routes:
            await self.nc.subscribe(self.routes[name].subject, cb=self._callback(name))
        await self.offers.listen()
        await self.nc.flush()
        system_url = self.embedded.system_url if self.embedded else self.settings.nats_system_url
        if system_url:
            await self._watch_disconnects(system_url)
        loops: list[Callable[[], Coroutine[Any, Any, None]]] = [
            self.writer.run,
            self._publisher,
            self._scheduler,
            self._watcher,
        ]
        self._tasks = [asyncio.create_task(loop()) for loop in loops]
        self.writer.task = self._tasks[0]
        self._write_hub_file()
        ready, note = self.coordinator.status()
        if not ready:
            log.warning("%s", note)
        self.board.emit(
            "hub.started",
            message=f"{self.hub_id} on {self.url}" + ("" if ready else f"; {note}"),
            data={
                "url": self.url,
                "store": self.store.display_url,
                "coordinator": self.coordinator.model,
                "coordinator_ready": ready,
            },
        )
        log.info("hub %s serving group %s on %s", self.hub_id, self.group, self.url)

    def _routes(self) -> dict[str, Route]:
        g, anyone = self.group, subjects.ANY
        routes = {
            name: Route(
                subjects.hub_call(g, anyone, name),
                (AGENT_CALLS[name].request,),
                fn,
                with_sender=name == "register",
            )
            for name, fn in self.agent_handlers().items()
        }
        for verb, models, fn in self.api.routes():  # runtime/api.py: one handler per verb
            routes[f"api.{verb}"] = Route(
                subjects.api(g, anyone, verb), models, fn, verb in RATE_LIMITED_VERBS, verb
            )
        return self.traces.wrap_routes(routes)  # a span around submit and result

    def agent_handlers(self) -> dict[str, Handler]:
        """Agent → hub messages by name (``protocols.AGENT_CALLS``)."""
        return {
            "register": self._register,
            "heartbeat": self.board.heartbeat,
            "deregister": self._deregister,
            "progress": self.board.progress,
            "result": self.board.result,
            "results": self.board.results,
            "delegate": self.board.delegate,
            "decline": self.board.decline,
        }

    async def _connect(self) -> NATS:
        servers, s = subjects.server_urls(self.url), self.settings
        login: dict[str, str] = {}  # the hub's own credentials (auth may be on)
        if self.embedded is not None:
            servers = [self.embedded.service_url]
        elif s.nats_user:
            secret = s.nats_password.get_secret_value() if s.nats_password else ""
            login = {"user": s.nats_user, "password": secret}
        return await nats.connect(
            servers,
            **login,
            inbox_prefix=subjects.hub_inbox_prefix(self.group),  # a leaf's agents answer here
            name=f"clawhub:{self.hub_id}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=5,
            allow_reconnect=True,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )

    async def _stop_embedded(self) -> None:
        if self.embedded is not None and self._own_embedded:
            await asyncio.to_thread(self.embedded.stop)

    async def _watch_disconnects(self, system_url: str) -> None:
        """Hear the moment an agent's connection closes (crash, kill, network gone)."""
        closed = closed_connections(
            self.board, trust_names=self.principals is None, stopping=lambda: self._stopping
        )
        self._sys = await watch_disconnects(system_url, f"clawhub-sys:{self.hub_id}", closed)

    def _write_hub_file(self) -> None:
        if self._hub_file:
            info = {"url": self.url, "group": self.group, "hub_id": self.hub_id}
            write_hub_file(self.settings.data_dir, {**info, "store": self.store.display_url})

    async def stop(self) -> None:
        """Stop serving, flush the store, close the bus (and the embedded server)."""
        if self._stopping:
            return
        self._stopping = True
        with contextlib.suppress(Exception):
            self.board.emit("hub.stopped", message=self.hub_id)
        self.offers.clear()
        for task in self._model_calls:
            task.cancel()
        await self._flush_outbox()
        # stop taking messages, letting the handlers in flight finish (the writer still runs)
        for conn in (self._sys, self.nc):
            if conn is not None:
                await leave_bus(conn)
        with contextlib.suppress(Exception):
            await self.durable()
        with contextlib.suppress(Exception):
            await self.writer.answer(self.writer.committed)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stop_embedded()
        if self._own_store:
            self.store.close()
        if self._hub_file:  # else the hub process's: a replica's handover must keep it
            remove_hub_file(self.settings.data_dir, self.hub_id)

    async def __aenter__(self) -> Hub:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ message handling
    async def handle(
        self,
        name: str,
        payload: bytes | BaseModel,
        requester: str | None = None,
        *,
        who: Principal | None = None,
        subject: str | None = None,
    ) -> BaseModel | None:
        """Serve one message on route ``name`` (see ``routes``): the one code path of NATS,
        REST and WebSocket. ``payload`` is raw bytes (checked and decoded here) or a message
        already decoded by the gateway; ``requester`` keys the submission rate limit;
        ``who`` is the sender's principal: the message may act only as it (``auth``);
        ``subject`` is where it came (for the record; default: the route's).

        Returns the reply (an ``ErrorReply`` when refused; refusals are recorded), or None
        for publish-only messages. Call ``settle`` before sending a reply that promises."""
        route = self.routes[name]
        where = subject or route.subject
        limit = self.settings.max_message_bytes
        try:
            if isinstance(payload, BaseModel):
                message = payload
                if not isinstance(message, route.models):
                    raise ProtocolError(
                        ErrorCode.UNKNOWN_TYPE, f"{type_name(type(message))} is not served here"
                    )
            else:
                if len(payload) > limit:
                    raise ProtocolError(
                        ErrorCode.OVERSIZE,
                        f"payload of {len(payload)} bytes exceeds max_message_bytes ({limit})",
                    )
                message = decode(payload, *route.models)
            if who is not None:
                message = act_as(who, route.verb, message)
            if route.limited and requester is not None:
                allowed, first = self.submit_limiter.take(requester)
                if not allowed:
                    wait = self.submit_limiter.retry_after(requester)
                    exc = ProtocolError(
                        ErrorCode.RATE_LIMITED,
                        f"too many submissions from {requester}: retry in {wait:.2f}s",
                    )
                    if first:  # a flood is recorded once, not once per message
                        self.board.refused(where, exc, sender_of(payload))
                    return ErrorReply(code=exc.code, message=exc.message)
            answer = route.fn(message, who) if route.with_sender else route.fn(message)
            return await answer if inspect.isawaitable(answer) else answer
        except ProtocolError as exc:
            return self.board.refused(where, exc, sender_of(payload))
        except Exception as exc:  # a bug must cost one message, never the hub
            log.exception("handler for %s failed", where)
            err = ProtocolError(ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")
            return self.board.refused(where, err, sender_of(payload))

    async def settle(self, reply: BaseModel | None) -> BaseModel:
        """The reply to send, once the writes behind it are committed."""
        try:
            await self.durable()
        except StoreError as exc:  # nothing promised was made durable: the sender retries
            return ErrorReply(code=ErrorCode.UNAVAILABLE, message=str(exc))
        return reply if reply is not None else Ok()

    def _callback(self, name: str) -> Callable[[Msg], Awaitable[None]]:
        async def cb(msg: Msg) -> None:
            receive(msg.headers)  # the sender's traceparent, for the handler's span
            who: Principal | None = None
            if self.principals is not None:  # the bus vouches for the sender in the subject
                sender = subjects.sender_of(msg.subject)
                who = self.principals(sender) if sender else None
                if who is None or who.group != self.group:
                    exc = ProtocolError(
                        ErrorCode.UNAUTHORIZED,
                        f"no live credential {sender!r} of group {self.group} sent this",
                    )
                    self.board.refused(msg.subject, exc, sender_of(msg.data))
                    if msg.reply:
                        await self.writer.reply_after_commit(
                            msg, ErrorReply(code=exc.code, message=exc.message)
                        )
                    return
            if who is not None:
                requester: str | None = who.requester
            else:
                requester = subjects.requester(msg.reply) if msg.reply else None
            reply = await self.handle(name, msg.data, requester, who=who, subject=msg.subject)
            if not msg.reply:
                return
            # answer once the writes behind the reply are committed, without holding up the
            # next message: the writer answers all that its commit covers (group commit)
            await self.writer.reply_after_commit(msg, reply)

        return cb

    def _register(self, msg: Register, who: Principal | None) -> RegisterAck:
        """A registration, tied to the credential that sent it (its connection's closing is
        believed only for that credential)."""
        return self.board.register(msg, credential=who.token_id if who is not None else None)

    def _deregister(self, msg: Deregister) -> Ok:
        self.board.deregister(msg)
        return Ok(message="bye")

    # ------------------------------------------------------------------ background loops

    async def _flush_outbox(self) -> None:
        if self.nc is None or not self.may_act():  # kept until renewed (``wake``)
            return
        batch, self._outbox = self._outbox, []
        for subject, data in batch:
            try:
                await self.nc.publish(subject, data)
            except Exception as exc:  # bus down: events are in the store, cancels re-sent
                log.debug("publish to %s failed: %s", subject, exc)

    async def _publisher(self) -> None:
        while True:
            await self._outbox_signal.wait()
            self._outbox_signal.clear()
            await self._flush_outbox()

    async def _scheduler(self) -> None:
        while True:
            self._wake_event.clear()
            if self.may_act():
                await self.offers.send_all(self.board.next_offers(time.monotonic()))
            retry = self.board.next_retry()
            timeout = None if retry is None else max(0.01, retry - time.monotonic())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake_event.wait(), timeout)

    def _bus(self) -> NATS:
        if self.nc is None:
            raise BusError("the hub is not connected to NATS")
        return self.nc

    async def _watcher(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval)
            try:
                if self.may_act():
                    self.board.sweep()
            except Exception:  # keep watching whatever happens
                log.exception("lease sweep failed")
            if self.embedded is not None and not self.embedded.running and not self._stopping:
                await self._restart_embedded()

    async def _restart_embedded(self) -> None:
        """The embedded nats-server died: start it again on its port (agents reconnect)."""
        assert self.embedded is not None
        log.warning("embedded nats-server exited; restarting it on port %s", self.embedded.port)
        try:
            self.embedded.start()  # from the loop's thread, as at start (dies with the hub)
        except BusError:
            log.exception("embedded nats-server would not restart; trying again")
            return
        self.board.emit("bus.restarted", message=f"embedded nats-server back on {self.url}")

    # ------------------------------------------------------------------ connection callbacks

    async def _on_error(self, exc: Exception) -> None:
        log.debug("nats error: %s", exc)

    async def _on_disconnected(self) -> None:
        self.board.bus_up = False
        if not self._stopping:
            log.warning("hub disconnected from NATS; reconnecting")

    async def _on_reconnected(self) -> None:
        self.board.bus_up = True
        log.info("hub reconnected to NATS")
        self.board.emit("hub.reconnected", message=f"{self.hub_id} back on {self.url}")
        self.wake()
