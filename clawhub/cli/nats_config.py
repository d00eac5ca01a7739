"""``clawhub nats-config``: the nats-server configuration a hub needs on an external NATS (a
cluster of nodes, leaf nodes for laptops), with identity enforced as on the embedded server.

It reads the live tokens of the store (``--store-url``/``--data-dir``, as ``clawhub token``)
and writes, into ``--out``, the files ``clawhub.runtime.nats_config`` describes: the node
and leaf configurations (no secrets: they may be committed) and the secrets they include
(the users, one per token, with the same permissions as on the embedded server; the route
and leaf credentials; the hub's ``hub.env``). Passwords are made on the first run and kept
in ``secrets.json``, so a re-run changes only what the token table changed.

Tokens change: re-run the command with the same options (it rewrites ``accounts.conf`` and
the leaves' secrets), then ``nats-server --signal reload=<pid>`` on every node (and leaf
whose tokens changed). A revoked token is refused by the hub within ``token_refresh``
seconds either way; the reload closes its connections; a new token can connect only after
it.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import HubError
from .options import SharedOptions, build_settings, fail, shared_options
from .views import console, err

if TYPE_CHECKING:  # the server half loads only when the command runs (`clawhub` stays light)
    from ..runtime import nats_config as conf
    from ..runtime.nats_server import NatsUser

SECRETS_FILE = "secrets.json"
ACCOUNTS_FILE = "accounts.conf"
ROUTES_FILE = "routes.conf"
HUB_ENV = "hub.env"


def _secret_files(leaves: list[str]) -> list[str]:
    names = [SECRETS_FILE, ACCOUNTS_FILE, ROUTES_FILE, HUB_ENV]
    return names + [f"leaf-{name}-secrets.conf" for name in leaves]


def _gitignore(leaves: list[str], header: str) -> str:
    lines = "\n".join(_secret_files(leaves))
    return f"{header}\n# the secrets it writes beside the configurations\n{lines}\n"


class _Secrets:
    """The generated passwords (``secrets.json``, mode 0600): made once, then kept."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raw = {}
        except (OSError, ValueError) as exc:
            raise HubError(f"cannot read {path}: {exc}") from None
        self.values: dict[str, dict[str, str]] = raw if isinstance(raw, dict) else {}

    def get(self, name: str) -> conf.Secret:
        """The secret called ``name``, made now if it is new."""
        import bcrypt  # noqa: PLC0415

        from ..runtime import nats_config as conf  # noqa: PLC0415

        known = self.values.get(name)
        if not isinstance(known, dict) or not {"password", "hash"} <= known.keys():
            password = secrets.token_hex(16)
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
            known = self.values[name] = {"password": password, "hash": hashed}
        return conf.Secret(known["password"], known["hash"])

    def text(self) -> str:
        """The file's content."""
        return json.dumps(self.values, indent=2, sort_keys=True) + "\n"


def _write(path: Path, text: str, *, secret: bool) -> None:
    """Replace ``path`` at once (a reloading server never reads half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _parse_leaf(spec: str) -> tuple[str, list[str]]:
    """``NAME`` or ``NAME=TOKEN[,TOKEN...]`` (a token id, or a whole token: only its id is
    used)."""
    name, _, tokens = spec.partition("=")
    name = name.strip()
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"bad --leaf {spec!r}: NAME[=TOKEN_ID,...], NAME of letters, - and _")
    ids = [t.strip().partition(".")[0] for t in tokens.split(",") if t.strip()]
    return name, ids


def _token_users(shared: SharedOptions) -> tuple[list[NatsUser], dict[str, str]]:
    """The NATS user of every live token, and each token's group."""
    from ..runtime.auth import Tokens  # noqa: PLC0415 - opens the store
    from ..store.store import Store  # noqa: PLC0415

    settings = build_settings(data_dir=shared.data_dir, store_url=shared.store_url)
    try:
        store = Store(settings.resolved_store_url())
    except HubError as exc:
        raise fail(str(exc)) from None
    try:
        tokens = Tokens(store)
        tokens.refresh()
        users = sorted(tokens.nats_users(), key=lambda u: u.name)
        groups = {u.name: who.group for u in users if (who := tokens.principal(u.name))}
    finally:
        store.close()
    return users, groups


def nats_config(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the files to.")] = Path(
        "nats"
    ),
    nodes: Annotated[
        int, typer.Option("--nodes", min=1, max=99, help="Cluster nodes (with one --host).")
    ] = 3,
    host: Annotated[
        list[str] | None,
        typer.Option(
            "--host",
            help="Where the nodes run. One: --nodes nodes on it, ports counted up from each "
            "--*-port. Several (repeat): one node on each, the same ports. Default 127.0.0.1.",
        ),
    ] = None,
    port: Annotated[int, typer.Option("--port", help="Client port of node 1.")] = 4222,
    cluster_port: Annotated[
        int, typer.Option("--cluster-port", help="Route port of node 1.")
    ] = 6222,
    leafnode_port: Annotated[
        int, typer.Option("--leafnode-port", help="Port of node 1 that leaf nodes join.")
    ] = 7422,
    leaf: Annotated[
        list[str] | None,
        typer.Option(
            "--leaf",
            help="A leaf node for a laptop: NAME=TOKEN_ID[,TOKEN_ID...], the tokens of the "
            "agents that connect to it (repeatable).",
        ),
    ] = None,
    leaf_host: Annotated[
        str, typer.Option("--leaf-host", help="Address a leaf listens on for its agents.")
    ] = "127.0.0.1",
    leaf_client_port: Annotated[
        int, typer.Option("--leaf-client-port", help="Port a leaf listens on for its agents.")
    ] = 4222,
    *,
    shared: SharedOptions,
) -> None:
    """Write the nats-server configuration of a cluster (and leaf nodes) that enforces the
    hub's tokens: node configs, the users of every live token, the hub's hub.env. Re-run it
    when tokens change, then `nats-server --signal reload=<pid>` on each node."""
    from ..runtime import nats_config as conf  # noqa: PLC0415 - loads the server half

    try:
        leaves = [_parse_leaf(spec) for spec in leaf or []]
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    names = [name for name, _ in leaves]
    if len(set(names)) != len(names):
        raise fail("each --leaf needs its own NAME", 2)
    hosts = host or ["127.0.0.1"]
    layout = conf.layout(hosts, nodes, port, cluster_port, leafnode_port)
    users, groups = _token_users(shared)
    by_id = {u.name: u for u in users}
    try:
        out.mkdir(parents=True, exist_ok=True)
        store = _Secrets(out / SECRETS_FILE)
        hub, system, route = store.get("hub"), store.get("system"), store.get("route")
        leaf_users: list[NatsUser] = []
        files: dict[str, tuple[str, bool]] = {}
        for name, ids in leaves:
            carried = [by_id[i] for i in ids if i in by_id]
            for missing in (i for i in ids if i not in by_id):
                err.print(f"[yellow]note:[/] leaf {name}: {missing} is not a live token: left out")
            secret = store.get(f"leaf-{name}")
            if carried:
                leaf_groups = sorted({groups[u.name] for u in carried})
                leaf_users.append(conf.leaf_user(name, secret, carried, leaf_groups))
            else:
                err.print(f"[yellow]note:[/] leaf {name} carries no live token: it cannot join")
            local = conf.leaf_config(name, leaf_host, leaf_client_port)
            files[f"leaf-{name}.conf"] = (local, False)
            files[f"leaf-{name}-secrets.conf"] = (
                conf.leaf_secrets(name, secret, layout, carried),
                True,
            )
        for node in layout:
            files[f"node-{node.number}.conf"] = (conf.node_config(node, len(layout)), False)
        files[ACCOUNTS_FILE] = (conf.accounts_config(hub, system, leaf_users, users), True)
        files[ROUTES_FILE] = (conf.routes_config(layout, route), True)
        files[HUB_ENV] = (conf.hub_env(layout, hub, system), True)
        files[".gitignore"] = (_gitignore(names, conf.HEADER), False)
        files[SECRETS_FILE] = (store.text(), True)
        for filename, (text, secret_file) in files.items():
            _write(out / filename, text, secret=secret_file)
    except OSError as exc:
        raise fail(f"cannot write to {out}: {exc}") from None
    console.print(
        f"wrote {len(layout)} node configs, {len(leaves)} leaf configs and the users of "
        f"{len(users)} tokens to {out}"
    )
    console.print(f"  nodes:  nats-server -c {out}/node-N.conf  (N = 1..{len(layout)})")
    console.print(f"  hub:    set -a; . {out}/{HUB_ENV}; set +a; clawhub up")
    console.print("  tokens changed? re-run this, then nats-server --signal reload=<pid> per node")


def register(app: typer.Typer) -> None:
    """Add ``clawhub nats-config`` to the CLI."""
    command = shared_options("data_dir", "store_url")(nats_config)
    app.command("nats-config")(command)
