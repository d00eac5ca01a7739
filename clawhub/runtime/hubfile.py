"""``data_dir/hub.json``: where a running hub tells the CLI, the TUI and local agents how to
find it (its URL, group, id, pid, store). Read with ``clawhub.settings.read_hub_file``."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any


def write_hub_file(data_dir: Path, info: dict[str, Any]) -> None:
    """Write ``info`` (plus this process's pid) to ``data_dir/hub.json``; best effort."""
    path = data_dir / "hub.json"
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**info, "pid": os.getpid()}, indent=2))


def write_private(path: Path, value: object) -> None:
    """Write ``value`` as JSON to ``path``, readable by this user only (mode 0600): files
    that hold tokens (``hub.json`` of ``clawhub up``, ``local-tokens.json``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(value, fh, indent=2)
    os.chmod(path, 0o600)


def remove_hub_file(data_dir: Path, hub_id: str) -> None:
    """Remove ``data_dir/hub.json`` if the hub ``hub_id`` wrote it (not a newer one's)."""
    path = data_dir / "hub.json"
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("hub_id") == hub_id:
            path.unlink()
