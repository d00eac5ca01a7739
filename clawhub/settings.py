"""Hub settings, in one place. Built once by the CLI (or a test) and passed down."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """``~/.clawhub``: where the hub keeps its store, nats-server data and ``hub.json``."""
    return Path.home() / ".clawhub"


class HubSettings(BaseSettings):
    """Every knob of the hub. Environment variables use the ``CLAWHUB_`` prefix
    (``CLAWHUB_NATS_URL``, ``CLAWHUB_STALL_TIMEOUT``...)."""

    model_config = SettingsConfigDict(env_prefix="CLAWHUB_", extra="ignore")

    group: str = Field(default="default", description="Claw Group (tenant) this hub serves.")
    nats_url: str | None = Field(
        default=None,
        description="NATS server to use: one URL, or several comma-separated (the nodes of a "
        "cluster). Unset: start an embedded nats-server on loopback.",
    )
    nats_user: str | None = Field(
        default=None,
        description="The hub's own user on an external NATS (`clawhub nats-config` writes it "
        "and the password to hub.env).",
    )
    nats_password: SecretStr | None = Field(
        default=None, description="The password of `nats_user`."
    )
    nats_system_url: str | None = Field(
        default=None,
        description="System-account URL(s) of an external NATS, comma-separated like nats_url, "
        "with the system user's credentials: the hub hears agent disconnects at once "
        "(the embedded server sets this up itself).",
    )
    nats_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port of the embedded nats-server. 0: the port of the last run in data_dir "
        "if it is free (so agents find a restarted hub), else any free port.",
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Folder for the SQLite store, embedded nats-server data and hub.json.",
    )
    store_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the store (`postgresql://...`). Unset: SQLite in data_dir.",
    )
    connect_timeout: float = Field(
        default=10.0, gt=0, description="Seconds the hub waits for NATS when it starts."
    )
    heartbeat_interval: float = Field(
        default=2.0, gt=0, description="Seconds between agent heartbeats (told to agents)."
    )
    missed_beats: int = Field(
        default=3, ge=1, description="Missed heartbeats after which an agent is lost."
    )
    accept_timeout: float = Field(
        default=5.0, gt=0, description="Seconds an agent has to accept or decline an offer."
    )
    stall_timeout: float = Field(
        default=60.0, gt=0, description="Seconds without progress before an attempt is stalled."
    )
    run_timeout: float | None = Field(
        default=None, gt=0, description="Hard limit in seconds for one attempt (unset: none)."
    )
    decline_backoff: float = Field(
        default=1.0, ge=0, description="Pause before re-offering a task every candidate declined."
    )
    max_message_bytes: int = Field(
        default=1024 * 1024, gt=0, description="Largest message the hub accepts."
    )
    coordinator_model: str = Field(
        default="moonshot/kimi-k2.6",
        description="litellm model string of the coordinator (plans goals, judges results).",
    )
    judge_tries: int = Field(
        default=3, ge=1, le=10, description="Model calls for one verdict before a human decides."
    )
    plan_tries: int = Field(
        default=3, ge=1, le=10, description="Plans asked of the model before a goal fails."
    )
    model_timeout: float = Field(
        default=120.0, gt=0, description="Seconds one coordinator model call may take."
    )
    sweep_interval: float = Field(
        default=0.25, gt=0, description="How often the lease watcher checks beats and progress."
    )

    token: str | None = Field(
        default=None,
        description="Token the CLI's client commands use (unset: the admin token that "
        "`clawhub up` keeps in data_dir/hub.json for the group).",
    )
    submit_rate: float = Field(
        default=20.0,
        ge=0,
        description="Submissions (submit, goal_submit requests) per second allowed to one "
        "participant (token, or NATS connection without auth); more get `rate_limited`.",
    )
    submit_burst: float = Field(
        default=100.0, ge=1, description="Submissions one participant may send at once."
    )
    auth: bool = Field(
        default=True,
        description="NATS requires credentials (tokens), each one confined to its group's "
        "subjects and its own inbox, so the hub believes the sender a subject names: the "
        "embedded nats-server is set up so; an external one (nats_url) must be, by `clawhub "
        "nats-config` (the hub refuses one that lets clients in without credentials). Off: "
        "anyone who reaches NATS may connect, and names are trusted.",
    )
    gateway: bool = Field(
        default=True, description="Serve the HTTP/WebSocket gateway (`clawhub up`)."
    )
    gateway_host: str = Field(default="127.0.0.1", description="Address the gateway binds.")
    gateway_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port of the gateway. 0: the last run's port if free, else any free port.",
    )
    ws_max_connections: int = Field(
        default=1000, ge=1, description="Most WebSocket connections the gateway holds at once."
    )
    ws_max_per_group: int = Field(
        default=500, ge=1, description="Most WebSocket connections of one group at once."
    )
    nats_max_connections: int = Field(
        default=10_000, ge=1, description="Most client connections the embedded nats-server takes."
    )
    mcp_window: float = Field(
        default=60.0,
        gt=0,
        description="Seconds an MCP client that joined as a worker stays in the group after its "
        "last tool call; then it is lost and what it holds is reassigned (docs/mcp.md).",
    )
    loop: Literal["auto", "uvloop", "asyncio"] = Field(
        default="auto",
        description="Event loop of the hub process: `auto` is uvloop when installed "
        "(`pip install 'clawhub[fast]'`), else asyncio's; `uvloop` requires it; `asyncio` "
        "never uses it.",
    )
    token_refresh: float = Field(
        default=1.0,
        gt=0,
        description="Seconds between re-reads of the token table (tokens created or revoked by "
        "`clawhub token` in another process take effect within this).",
    )
    recovery_grace: float | None = Field(
        default=None,
        ge=0,
        description="Seconds after a restart or takeover during which nothing is offered, so "
        "participants still running attempts the old hub sent but did not record keep them "
        "(unset: two heartbeat intervals).",
    )
    replica: bool = Field(
        default=False,
        description="Run as one of several replicas on one store and one NATS: each group is "
        "active on one replica (a lease with a fencing epoch), the others stand by.",
    )
    replica_id: str | None = Field(
        default=None, max_length=100, description="This replica's name (unset: host-pid-random)."
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Hub worker processes (`clawhub up --workers N`): one process runs the "
        "nats-server, the gateway and worker 0, N-1 more run as its replicas, and each group "
        "is active in one of them (docs/replicas.md#every-core-of-one-machine).",
    )
    a2a_config: Path | None = Field(
        default=None,
        description="TOML file of A2A agents `clawhub up` joins as workers, an [[agent]] "
        "table each: url, and optionally id, name, skills, default_level, model, capacity, "
        "poll_interval, token (docs/a2a-agents.md#several-agents-from-a-file).",
    )
    lease_ttl: float = Field(
        default=3.0,
        gt=0,
        description="Seconds a replica's group lease lasts unless renewed (renewed every third "
        "of it): a standby takes a dead replica's groups within about this.",
    )

    def resolved_store_url(self) -> str:
        """The store URL, defaulting to a SQLite file in ``data_dir``."""
        if self.store_url:
            return self.store_url
        return f"sqlite:///{self.data_dir / 'clawhub.db'}"


def read_hub_file(data_dir: Path) -> dict[str, Any] | None:
    """What a running hub wrote to ``data_dir/hub.json`` (its URL, group, pid)."""
    try:
        value = json.loads((data_dir / "hub.json").read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
