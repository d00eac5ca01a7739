"""What every route of the gateway serves: the hubs by group, the tokens, the limits and the
connection counts, and the one way a call reaches a hub (``Gateway.call``)."""

from __future__ import annotations

import contextlib
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from pydantic import BaseModel

from protocols import ErrorCode, ErrorReply, ProtocolError, subjects

from ..runtime.auth import Principal, Tokens, act_as
from ..runtime.hub import Hub
from ..settings import HubSettings
from .metrics import Metrics

#: How a replica forwards an API call for a group active on another replica (over NATS).
Forward = Callable[[Principal, str, BaseModel], Awaitable[BaseModel]]


@dataclass
class Gateway:
    """What the routes serve: the hubs by group, the tokens, the limits.

    A replica (``clawhub up --replica``) also serves the groups in ``served`` that are active
    on another replica: API calls for them go there through ``forward``, and what needs
    the hub in this process (agent sockets, event streams, metrics) is refused
    ``unavailable`` with ``elsewhere(group)``: where the group is active."""

    hubs: dict[str, Hub]
    tokens: Tokens
    settings: HubSettings
    metrics: dict[str, Metrics] = field(default_factory=dict)
    served: frozenset[str] = frozenset()
    forward: Forward | None = None
    elsewhere: Callable[[str], str] = lambda group: f"group {group} is not active here"
    ws_total: int = 0
    ws_by_group: Counter[str] = field(default_factory=Counter)
    _open: dict[int, tuple[str, Callable[[], None]]] = field(
        default_factory=dict, init=False, repr=False
    )
    _keys: Iterator[int] = field(default_factory=itertools.count, init=False, repr=False)
    on_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list, repr=False)
    """Called by ``close`` (the hub process stops): what a route started ends (the MCP
    sessions, the workers of MCP clients)."""

    def __post_init__(self) -> None:
        for group, hub in self.hubs.items():
            self.metrics.setdefault(group, Metrics(hub))

    def sockets_full(self, group: str) -> bool:
        """Whether the gateway, or ``group``, holds as many WebSockets as it may."""
        return self.ws_total >= self.settings.ws_max_connections or (
            self.ws_by_group[group] >= self.settings.ws_max_per_group
        )

    @contextlib.contextmanager
    def socket_open(self, group: str) -> Iterator[None]:
        """Count one open WebSocket of ``group`` while the block runs."""
        self.ws_total += 1
        self.ws_by_group[group] += 1
        try:
            yield
        finally:
            self.ws_total -= 1
            self.ws_by_group[group] -= 1

    @contextlib.contextmanager
    def watch(self, token: str, close: Callable[[], None]) -> Iterator[None]:
        """While the block runs, a stream (a WebSocket, an SSE response) served to ``token``:
        ``close`` ends it when the token is revoked (``drop_revoked``)."""
        key = next(self._keys)
        self._open[key] = (token, close)
        try:
            yield
        finally:
            self._open.pop(key, None)

    def live(self, token: str) -> bool:
        """Whether ``token`` is still good (not revoked since its stream opened)."""
        try:
            self.principal(token)
        except ProtocolError:
            return False
        return True

    def drop_revoked(self) -> int:
        """End every open stream whose token is no longer live; how many were ended. The
        hub process calls it whenever the token table changes."""
        dropped = [key for key, (token, _) in self._open.items() if not self.live(token)]
        for key in dropped:
            _, close = self._open.pop(key)
            close()
        return len(dropped)

    async def close(self) -> None:
        """End what the routes started (``on_close``), each once."""
        closers, self.on_close = self.on_close, []
        for close in closers:
            await close()

    def principal(self, token: str | None) -> Principal:
        """The caller of a token; ``unauthorized`` or ``forbidden`` (group not served)."""
        who = self.tokens.verify(token)
        if who.group not in self.hubs and who.group not in self.served:
            raise ProtocolError(ErrorCode.FORBIDDEN, f"group {who.group} is not served here")
        return who

    def local(self, group: str) -> Hub:
        """The hub of ``group`` in this process; ``unavailable`` (saying where it is active)
        when it is active on another replica."""
        hub = self.hubs.get(group)
        if hub is None:
            raise ProtocolError(ErrorCode.UNAVAILABLE, self.elsewhere(group))
        return hub

    def metrics_of(self, group: str) -> Metrics:
        """The metrics of ``group``'s hub here (``unavailable`` when it is elsewhere)."""
        hub = self.local(group)
        found = self.metrics.get(group)
        if found is None or found.hub is not hub:  # a replica took the group (again)
            found = self.metrics[group] = Metrics(hub)
        return found

    def refused(self, group: str, where: str, exc: ProtocolError, agent_id: str | None) -> None:
        """Record a refusal in ``group``'s event log, when its hub is here."""
        hub = self.hubs.get(group)
        if hub is not None:
            hub.board.refused(where, exc, agent_id)

    async def call(self, who: Principal, verb: str, message: BaseModel) -> BaseModel:
        """Serve one API request for ``who``: check its role and that it acts only as
        itself, then the hub's own path (or the replica active for its group)."""
        hub = self.hubs.get(who.group)
        if hub is None:
            return await self._call_elsewhere(who, verb, message)
        try:
            message = act_as(who, verb, message)
        except ProtocolError as exc:
            return hub.board.refused(subjects.api(who.group, who.token_id, verb), exc, who.agent_id)
        reply = await hub.handle(f"api.{verb}", message, who.requester)
        return await hub.settle(reply)

    async def _call_elsewhere(self, who: Principal, verb: str, message: BaseModel) -> BaseModel:
        try:
            message = act_as(who, verb, message)
        except ProtocolError as exc:
            return ErrorReply(code=exc.code, message=exc.message)
        if self.forward is None:
            return ErrorReply(code=ErrorCode.UNAVAILABLE, message=self.elsewhere(who.group))
        return await self.forward(who, verb, message)
