"""Find the hub on this machine: what ``clawhub up`` wrote to ``hub.json``.

``clawhub up`` picks free ports and writes them, with an admin token per group, to
``$CLAWHUB_DATA_DIR/hub.json`` (default ``~/.clawhub/hub.json``, mode 0600). The SDK reads
the file itself (it never imports the hub's code), the same way the ``clawhub`` command does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import HubUnavailable

#: The environment variable naming the hub's NATS URL (as for the ``clawhub`` command).
URL_ENV = "CLAWHUB_NATS_URL"
#: The environment variable naming the hub's data folder (where ``hub.json`` is).
DATA_DIR_ENV = "CLAWHUB_DATA_DIR"


def hub_file() -> Path:
    """Where a local ``clawhub up`` writes ``hub.json``."""
    data_dir = os.environ.get(DATA_DIR_ENV) or str(Path.home() / ".clawhub")
    return Path(data_dir).expanduser() / "hub.json"


def read_hub_file() -> dict[str, Any]:
    """The contents of ``hub.json``; empty when there is none (or it is not JSON)."""
    try:
        value = json.loads(hub_file().read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def local_hub_url() -> str:
    """The NATS URL of the hub to join when none is given: ``CLAWHUB_NATS_URL``, else the
    ``url`` a local ``clawhub up`` wrote to ``hub.json`` (in ``CLAWHUB_DATA_DIR``, default
    ``~/.clawhub``).

    Raises ``HubUnavailable`` when neither names one: no guess at a port, since
    ``clawhub up`` never uses NATS' default 4222 and another NATS server may well."""
    if url := os.environ.get(URL_ENV):
        return url
    url = read_hub_file().get("url")
    if isinstance(url, str) and url:
        return url
    raise HubUnavailable(
        f"no hub found: {URL_ENV} is not set and there is no {hub_file()}; start one with "
        "`clawhub up`, or give the hub's nats:// URL"
    )


def local_admin_token(group: str) -> str | None:
    """The admin token of ``group`` in ``hub.json``, when that hub requires tokens on NATS
    (a hub started with ``--no-auth`` takes none there)."""
    info = read_hub_file()
    if info.get("auth") is False:
        return None
    tokens = info.get("tokens")
    token = tokens.get(group) if isinstance(tokens, dict) else None
    return token if isinstance(token, str) and token else None
