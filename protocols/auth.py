"""Access tokens as they travel: the token string and the roles. Pure, no I/O.

A token is ``<id>.<secret>``: the id names it (it is the NATS user name and the
reply-inbox owner, and is safe to log); the secret proves it. The hub stores only hashes.
"""

from __future__ import annotations

from typing import Literal

from ._base import is_identifier

#: What a token may do: ``agent`` works on tasks it holds (as one participant id);
#: ``human`` also approves, reassigns, cancels and steers; ``admin`` may do everything in
#: its group.
Role = Literal["agent", "human", "admin"]
ROLES: tuple[Role, ...] = ("agent", "human", "admin")


def split_token(token: str) -> tuple[str, str]:
    """``(id, secret)`` of a token string; ``ValueError`` when it is not one."""
    token_id, sep, secret = token.strip().partition(".")
    if not sep or not is_identifier(token_id) or not (16 <= len(secret) <= 200):
        raise ValueError("not a Claw Hub token (expected <id>.<secret>)")
    if not all(c.isalnum() or c in "-_" for c in secret):
        raise ValueError("not a Claw Hub token (bad characters in the secret)")
    return token_id, secret
