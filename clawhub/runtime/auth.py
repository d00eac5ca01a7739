"""Tokens, roles and what each may do, on every path (NATS, REST, WebSocket).

A token belongs to one group and has one role:

- ``agent``: one participant (``agent_id``): registers as that id, works on the tasks it
  holds, submits, reads, claims for itself and chats as itself;
- ``human``: everything an agent may do, plus approve/reject, reassign, cancel, pause and
  decide goals; may register as its ``agent_id`` if it has one;
- ``admin``: everything in its group, as any participant id.

The token string ``<id>.<secret>`` is shown once; the store keeps a SHA-256 of the secret
(checked by the gateway) and a bcrypt hash (the embedded nats-server's password for user
``<id>``). On NATS a token may publish only under its own id (``api.<id>.<verb>`` for the
verbs its role allows, ``hub.<id>.>`` if it is bound to a participant), so the hub knows
the sender of every message from its subject (``act_as`` then holds it to its own
participant); it may subscribe only to the group's events, its own participant's inbox and
its own reply inbox (``_INBOX.<id>.>``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

import bcrypt
from pydantic import BaseModel

from protocols import (
    API,
    ROLES,
    AgentProfile,
    ClaimTask,
    ErrorCode,
    PostChat,
    ProtocolError,
    Register,
    Role,
    is_identifier,
    split_token,
    subjects,
)

from ..errors import TokenError
from ..store.store import Store, TokenRow
from .nats_server import NatsUser

#: API verbs only humans and admins may call (approve, reassign, cancel, steer).
HUMAN_VERBS: frozenset[str] = frozenset(
    {
        subjects.API_CANCEL,
        subjects.API_DECIDE,
        subjects.API_REASSIGN,
        subjects.API_AGENT_MODE,
        subjects.API_GOAL_DECIDE,
        subjects.API_GOAL_CANCEL,
    }
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a live token's id, group, role and participant id."""

    token_id: str
    group: str
    role: Role
    agent_id: str | None = None

    @property
    def requester(self) -> str:
        """The rate-limit key: the same as its NATS reply inbox gives (``_INBOX.<id>``)."""
        return subjects.inbox_prefix(self.token_id)


def _denied(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.FORBIDDEN, message)


def may_call(principal: Principal, verb: str) -> bool:
    """True when the role may call API ``verb`` at all."""
    return verb in API and (principal.role != "agent" or verb not in HUMAN_VERBS)


def check_api(principal: Principal, verb: str, message: BaseModel) -> None:
    """Raise ``forbidden`` unless ``principal`` may send ``message`` on API ``verb``."""
    if not may_call(principal, verb):
        raise _denied(f"only humans and admins may {verb}")
    if principal.role == "admin":
        return
    if isinstance(message, ClaimTask) and principal.agent_id != message.agent_id:
        raise _denied("a participant may claim tasks only for itself")
    if (
        isinstance(message, PostChat)
        and principal.role == "agent"
        and principal.agent_id != message.sender
    ):
        raise _denied("an agent may speak only as itself")


def check_participant(principal: Principal, message: BaseModel) -> None:
    """Raise ``forbidden`` unless ``principal`` may send this agent → hub message: its
    participant id must be the token's (admins: any id)."""
    if principal.role == "admin":
        return
    profile: AgentProfile | None = message.profile if isinstance(message, Register) else None
    agent_id = profile.id if profile is not None else getattr(message, "agent_id", None)
    if principal.agent_id is None:
        raise _denied(f"token {principal.token_id} is not bound to a participant id")
    if agent_id != principal.agent_id:
        raise _denied(f"token {principal.token_id} may act only as {principal.agent_id}")
    if profile is not None and principal.role == "agent" and profile.kind != "agent":
        raise _denied("an agent token may not register a human")


def participant_of(principal: Principal) -> str:
    """The participant a non-admin principal acts as: its ``agent_id``, else the token id."""
    return principal.agent_id or principal.token_id


def act_as(principal: Principal, verb: str | None, message: BaseModel) -> BaseModel:
    """``message`` as sent by ``principal``, or ``forbidden``: an agent → hub call
    (``verb`` None) must name the token's participant; an API request may name only the
    token's participant as who acts (``by``, ``sender``), which is filled in when left out.
    Admins act as anyone in their group."""
    if verb is None:
        check_participant(principal, message)
        return message
    check_api(principal, verb, message)
    if principal.role == "admin":
        return message
    me = participant_of(principal)
    for field in ("by", "sender"):
        if field not in type(message).model_fields:
            continue
        named = getattr(message, field)
        if named is None:
            message = message.model_copy(update={field: me})
        elif named != me:
            raise _denied(f"token {principal.token_id} acts as {me}; it may not send as {named!r}")
    return message


def nats_permissions(row: TokenRow) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(publish, subscribe)`` subject permissions of a token on NATS."""
    g = row.group
    inbox = subjects.own_inbox(row.id)
    if row.role == "admin":
        return (subjects.group_all(g),), (subjects.group_all(g), inbox)
    verbs = [v for v in API if row.role != "agent" or v not in HUMAN_VERBS]
    publish = [subjects.api(g, row.id, v) for v in verbs]
    subscribe = [subjects.all_events(g), inbox]
    if row.agent_id:
        publish.append(subjects.hub_all(g, row.id))
        subscribe.append(subjects.agent_inbox(g, row.agent_id))
    return tuple(publish), tuple(subscribe)


#: Store reads a second for tokens missing from the cache (``Tokens._fetch``).
MISS_LOOKUPS = 20


def _sha(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Tokens:
    """The token table, cached in memory (``refresh`` re-reads it; the hub process does so
    every ``token_refresh`` seconds, so tokens made by ``clawhub token`` take effect)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._rows: dict[str, TokenRow] = {}
        self._lock = threading.Lock()
        self.version = 0
        """Bumped whenever the set of live tokens changes."""
        self._miss_window = 0.0
        self._misses = 0

    def create(
        self, group: str, role: Role, agent_id: str | None = None, note: str = ""
    ) -> tuple[str, TokenRow]:
        """A new token: ``(token string, row)``. The string is never stored."""
        if not is_identifier(group):
            raise ValueError(f"group {group!r} is not a valid identifier")
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if agent_id is not None and not is_identifier(agent_id):
            raise ValueError(f"agent id {agent_id!r} is not a valid identifier")
        if role == "agent" and agent_id is None:
            raise ValueError("an agent token needs --agent-id (the participant it acts as)")
        token_id = "tk-" + secrets.token_hex(6)
        secret = secrets.token_urlsafe(24)
        row = TokenRow(
            id=token_id,
            group=group,
            role=role,
            agent_id=agent_id,
            note=note[:200],
            secret_hash=_sha(secret),
            nats_hash=bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds=4)).decode(),
            created_at=time.time(),
        )
        self.store.add_token(row)
        self.refresh()
        return f"{token_id}.{secret}", row

    def revoke(self, token_id: str) -> bool:
        """Revoke a token at once (in this process; others within ``token_refresh``)."""
        done = self.store.revoke_token(token_id, time.time())
        self.refresh()
        return done

    def rows(self, group: str | None = None) -> list[TokenRow]:
        """Every token, revoked ones too (never their secrets)."""
        return self.store.tokens(group)

    def refresh(self) -> bool:
        """Re-read the live tokens; True when they changed."""
        rows = {r.id: r for r in self.store.tokens() if r.revoked_at is None}
        with self._lock:
            changed = rows.keys() != self._rows.keys()
            self._rows = rows
            if changed:
                self.version += 1
        return changed

    def verify(self, token: str | None) -> Principal:
        """The principal of a live token; ``TokenError`` otherwise."""
        if not token:
            raise TokenError("a token is required (Authorization: Bearer <token>)")
        try:
            token_id, secret = split_token(token)
        except ValueError as exc:
            raise TokenError(str(exc)) from None
        with self._lock:
            row = self._rows.get(token_id)
        if row is None:
            row = self._fetch(token_id)
        if row is None or not hmac.compare_digest(row.secret_hash, _sha(secret)):
            raise TokenError("unknown or revoked token")
        who = self.principal(row.id)
        if who is None:  # revoked meanwhile
            raise TokenError("unknown or revoked token")
        return who

    def _fetch(self, token_id: str) -> TokenRow | None:
        """A token missing from the cache, read from the store: one made by ``clawhub token``
        in another process since the last refresh is valid at once, not a refresh later.
        At most ``MISS_LOOKUPS`` reads a second, so a flood of unknown tokens cannot keep
        the store busy (beyond that, a miss is refused from the cache)."""
        now = time.monotonic()
        with self._lock:
            if now - self._miss_window >= 1.0:
                self._miss_window, self._misses = now, 0
            if self._misses >= MISS_LOOKUPS:
                return None
            self._misses += 1
        row = self.store.token(token_id)
        if row is None or row.revoked_at is not None:
            return None
        with self._lock:
            if token_id not in self._rows:
                self._rows[token_id] = row
                self.version += 1
        return row

    def principal(self, token_id: str) -> Principal | None:
        """The principal of a live token by its id (the sender of a NATS message, which
        nats-server vouches for), or None. A token the cache does not hold yet is read from
        the store (``_fetch``): a cluster's nodes may know a new token before this hub's next
        refresh."""
        with self._lock:
            row = self._rows.get(token_id)
        if row is None:
            row = self._fetch(token_id)
        if row is None:
            return None
        role: Role = "admin" if row.role == "admin" else "human" if row.role == "human" else "agent"
        return Principal(token_id=row.id, group=row.group, role=role, agent_id=row.agent_id)

    def nats_users(self) -> list[NatsUser]:
        """One NATS user per live token, with its permissions."""
        with self._lock:
            rows = list(self._rows.values())
        users = []
        for row in rows:
            publish, subscribe = nats_permissions(row)
            users.append(NatsUser(row.id, row.nats_hash, publish, subscribe))
        return users
