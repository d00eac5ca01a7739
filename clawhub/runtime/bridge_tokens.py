"""Agent tokens for the participants the hub process bridges itself (``clawhub up
--a2a-agent``): each bridged agent acts with a token of its own, bound to its participant id,
so the hub's identity checks (``auth.act_as``) hold for it as for any SDK agent.

The hub keeps the token strings it made in ``data_dir/bridge-tokens.json`` (mode 0600, like
``hub.json``; the store keeps only hashes), by group and participant id, so a restart reuses
a token that is still live rather than making another each time. A kept token that was
revoked, or is no longer an agent token for that id, is replaced.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from protocols import ProtocolError

from .auth import Tokens
from .hubfile import write_private

#: The file in the data directory.
FILE = "bridge-tokens.json"


def _kept(path: Path) -> dict[str, dict[str, str]]:
    """What the file holds, ``{group: {agent id: token}}`` (nothing if unreadable)."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(value, dict):
        return {}
    return {
        group: {k: v for k, v in ids.items() if isinstance(k, str) and isinstance(v, str)}
        for group, ids in value.items()
        if isinstance(group, str) and isinstance(ids, dict)
    }


def is_agent_token(tokens: Tokens, token: str, group: str, agent_id: str) -> bool:
    """True when ``token`` is live and an agent token of ``group`` bound to ``agent_id``."""
    with contextlib.suppress(ProtocolError):
        who = tokens.verify(token)
        return (who.group, who.role, who.agent_id) == (group, "agent", agent_id)
    return False


def bridge_token(tokens: Tokens, data_dir: Path, group: str, agent_id: str, note: str) -> str:
    """The agent token for ``agent_id`` in ``group``: the one made for it before if still
    live, else a new one (noted ``note`` for ``clawhub token list``), kept for next time.
    ``ValueError`` for an id that is no identifier."""
    path = data_dir / FILE
    kept = _kept(path)
    token = kept.get(group, {}).get(agent_id)
    if token is not None and is_agent_token(tokens, token, group, agent_id):
        return token
    made, _ = tokens.create(group, "agent", agent_id, note)
    kept.setdefault(group, {})[agent_id] = made
    write_private(path, kept)
    return made
