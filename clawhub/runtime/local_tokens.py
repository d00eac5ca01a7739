"""Tokens the hub process makes for its own use, kept so that a restart reuses them:

- the **local admin token** of each group, which ``hub.json`` hands to the CLI, the TUI and
  local agents (``hub.json`` goes when the hub stops; this file stays, so the next start
  hands out the same token instead of adding a live admin token per restart);
- an **agent token per bridged participant** (``clawhub up --a2a-agent``): each bridged agent
  acts with a token of its own, bound to its participant id, so the hub's identity checks
  (``auth.act_as``) hold for it as for any SDK agent.

The token strings live in ``data_dir/local-tokens.json`` (mode 0600, like ``hub.json``; the
store keeps only hashes) as ``{group: {key: token}}``, the key being the participant id, or
``ADMIN`` (no identifier can be that) for the admin token. A kept token that was revoked, or
no longer has that role and id, is replaced.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from protocols import ProtocolError, Role

from .auth import Tokens
from .hubfile import write_private

#: The file in the data directory.
FILE = "local-tokens.json"
#: The key of a group's local admin token.
ADMIN = "*admin"


def _kept(path: Path) -> dict[str, dict[str, str]]:
    """What the file holds, ``{group: {key: token}}`` (nothing if unreadable)."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(value, dict):
        return {}
    return {
        group: {k: v for k, v in keys.items() if isinstance(k, str) and isinstance(v, str)}
        for group, keys in value.items()
        if isinstance(group, str) and isinstance(keys, dict)
    }


def _is(tokens: Tokens, token: str, group: str, role: Role, agent_id: str | None) -> bool:
    """True when ``token`` is live, of ``group`` and ``role``, bound to ``agent_id``."""
    with contextlib.suppress(ProtocolError):
        who = tokens.verify(token)
        return (who.group, who.role, who.agent_id) == (group, role, agent_id)
    return False


def kept_token(
    tokens: Tokens, data_dir: Path, group: str, role: Role, agent_id: str | None, note: str
) -> str:
    """The ``role`` token of ``group`` (bound to ``agent_id``) this process made before, if
    still live; else a new one (noted ``note`` for ``clawhub token list``), kept for next
    time. ``ValueError`` for an id that is no identifier."""
    path = data_dir / FILE
    kept = _kept(path)
    key = ADMIN if role == "admin" else agent_id or ""
    token = kept.get(group, {}).get(key)
    if token is not None and _is(tokens, token, group, role, agent_id):
        return token
    made, _ = tokens.create(group, role, agent_id, note)
    kept.setdefault(group, {})[key] = made
    write_private(path, kept)
    return made
