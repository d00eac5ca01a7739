"""nats-server configuration for an external NATS: a cluster of nodes and leaf nodes, with
the accounts, users and permissions of the embedded server (``accounts_block``,
``NatsUser``), as text. Pure: the CLI's ``clawhub nats-config`` reads the token table and
the secrets and writes the files.

Each configuration is split in two, so the structure can be committed and the secrets not:

============================  ==================================================  ======
file                          what                                                secret
============================  ==================================================  ======
``node-<n>.conf``             one cluster node: ports, cluster, leaf listener     no
``accounts.conf``             the users: the hub's, the leaf nodes', one per      yes
                              token; the system account (every node has it)
``routes.conf``               the route credential and the routes (every node)    yes
``leaf-<name>.conf``          a leaf node for a laptop: its local port            no
``leaf-<name>-secrets.conf``  its users (the laptop's tokens) and its remote,     yes
                              with the leaf's credential
``hub.env``                   the hub's ``CLAWHUB_NATS_*``: URLs, user, password  yes
============================  ==================================================  ======

A leaf node's credential on the cluster may publish and subscribe only where the tokens it
carries may (and answer the hub's offers: ``subjects.hub_inbox_prefix``), so a leaf, even
one its owner edits, can act only as its own tokens' participants.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from protocols import subjects

from .nats_server import CLIENT_ACCOUNT, NatsUser, accounts_block, password_user

#: The name of the cluster the nodes form.
CLUSTER_NAME = "claw"
#: The hub's own user (full permissions in the client account).
HUB_USER = "claw-hub"
#: The hub's user in the system account (connect/disconnect advisories).
SYSTEM_USER = "sys"
#: The user the nodes' routes authenticate with.
ROUTE_USER = "route"
#: The largest message a node takes (as the embedded server: 8 MiB).
MAX_PAYLOAD = 8 * 1024 * 1024
#: The first line of every file written.
HEADER = "# Written by `clawhub nats-config`: re-run it rather than edit (docs/cluster.md)."


@dataclass(frozen=True, slots=True)
class Node:
    """One cluster node: where it listens for clients, routes and leaf nodes."""

    number: int
    host: str
    """The address other nodes, the hub and leaf nodes reach it at."""
    listen: str
    """The interface it binds (its host, or ``0.0.0.0`` when nodes are on several hosts)."""
    port: int
    cluster_port: int
    leaf_port: int

    @property
    def name(self) -> str:
        """The node's server name (``claw-<n>``)."""
        return f"{CLUSTER_NAME}-{self.number}"

    @property
    def client_url(self) -> str:
        """``nats://host:port``."""
        return f"nats://{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Secret:
    """A generated password and its bcrypt hash (what a server config holds)."""

    password: str
    hash: str


def layout(
    hosts: list[str], nodes: int, port: int, cluster_port: int, leaf_port: int
) -> list[Node]:
    """The nodes: ``nodes`` on one host with consecutive ports, or one per host (several
    ``hosts``) with the same ports each, bound to every interface."""
    if len(hosts) > 1:
        return [
            Node(i + 1, host, "0.0.0.0", port, cluster_port, leaf_port)
            for i, host in enumerate(hosts)
        ]
    host = hosts[0]
    return [
        Node(i + 1, host, host, port + i, cluster_port + i, leaf_port + i) for i in range(nodes)
    ]


def _q(value: str) -> str:
    return json.dumps(value)


def node_config(node: Node, total: int) -> str:
    """``node-<n>.conf``: no secrets (those come from the two files it includes)."""
    return (
        f"{HEADER}\n"
        f"# Node {node.number} of {total} of the cluster {CLUSTER_NAME!r}: start it with\n"
        f"#   nats-server -c node-{node.number}.conf\n"
        f"server_name: {_q(node.name)}\n"
        f"host: {_q(node.listen)}\n"
        f"port: {node.port}\n"
        f"max_payload: {MAX_PAYLOAD}\n"
        "# the users (the hub, the leaf nodes, one per token): secret, re-written by the command\n"
        'include "accounts.conf"\n'
        "cluster {\n"
        f"  name: {_q(CLUSTER_NAME)}\n"
        f"  host: {_q(node.listen)}\n"
        f"  port: {node.cluster_port}\n"
        '  include "routes.conf"  # the route credential and every node\'s route: secret\n'
        "}\n"
        "leafnodes {\n"
        f"  host: {_q(node.listen)}\n"
        f"  port: {node.leaf_port}\n"
        "}\n"
    )


def routes_config(nodes: list[Node], route: Secret) -> str:
    """``routes.conf``: the credential every route presents, and a route to every node (a
    node ignores the one to itself)."""
    urls = [f"nats-route://{ROUTE_USER}:{route.password}@{n.host}:{n.cluster_port}" for n in nodes]
    return (
        f"{HEADER}\n"
        f"authorization {{ user: {_q(ROUTE_USER)}, password: {_q(route.hash)} }}\n"
        f"routes: {json.dumps(urls)}\n"
    )


def leaf_user(name: str, secret: Secret, carried: list[NatsUser], groups: list[str]) -> NatsUser:
    """The cluster's user for leaf node ``name``: the union of the permissions of the tokens
    it carries, plus the hub inboxes of their groups (an agent's answer to an offer)."""
    publish: list[str] = []
    subscribe: list[str] = []
    for user in carried:
        publish += [p for p in user.publish if p not in publish]
        subscribe += [s for s in user.subscribe if s not in subscribe]
    publish += [f"{subjects.hub_inbox_prefix(g)}.>" for g in groups]
    return NatsUser(f"leaf-{name}", secret.hash, tuple(publish), tuple(subscribe))


def accounts_config(
    hub: Secret, system: Secret, leaves: list[NatsUser], tokens: list[NatsUser]
) -> str:
    """``accounts.conf``: the client account (the hub, the leaf nodes, the tokens) and the
    system account (the hub's advisories user)."""
    users = [password_user(HUB_USER, hub.hash)] + [u.config() for u in leaves + tokens]
    return f"{HEADER}\n" + accounts_block(
        users, [password_user(SYSTEM_USER, system.hash)], jetstream=False
    )


def leaf_config(name: str, host: str, port: int) -> str:
    """``leaf-<name>.conf``: a leaf node on a laptop; its agents connect to ``host:port``."""
    return (
        f"{HEADER}\n"
        f"# Leaf node {name!r}: run it on the laptop with\n"
        f"#   nats-server -c leaf-{name}.conf\n"
        f"# and point the laptop's agents at nats://{host}:{port} (each with its own token).\n"
        f"server_name: {_q('leaf-' + name)}\n"
        f"host: {_q(host)}\n"
        f"port: {port}\n"
        f"max_payload: {MAX_PAYLOAD}\n"
        f'include "leaf-{name}-secrets.conf"  # its tokens\' users and its remote: secret\n'
    )


def leaf_secrets(name: str, secret: Secret, nodes: list[Node], carried: list[NatsUser]) -> str:
    """``leaf-<name>-secrets.conf``: the tokens the laptop's agents connect with (the same
    users and permissions as on the cluster) and the remote to every node's leaf port."""
    urls = [f"nats-leaf://leaf-{name}:{secret.password}@{n.host}:{n.leaf_port}" for n in nodes]
    users = ",\n    ".join(u.config() for u in carried)
    return (
        f"{HEADER}\n"
        f"accounts {{\n  {CLIENT_ACCOUNT}: {{ users: [\n    {users}\n  ] }}\n}}\n"
        "leafnodes {\n"
        f"  remotes: [ {{ urls: {json.dumps(urls)}, account: {_q(CLIENT_ACCOUNT)} }} ]\n"
        "}\n"
    )


def hub_env(nodes: list[Node], hub: Secret, system: Secret) -> str:
    """``hub.env``: what ``clawhub up`` needs to use the cluster (``set -a; . hub.env``, or
    a compose ``env_file``)."""
    urls = ",".join(n.client_url for n in nodes)
    system_urls = ",".join(
        f"nats://{SYSTEM_USER}:{system.password}@{n.host}:{n.port}" for n in nodes
    )
    return (
        f"{HEADER}\n"
        f"CLAWHUB_NATS_URL={urls}\n"
        f"CLAWHUB_NATS_USER={HUB_USER}\n"
        f"CLAWHUB_NATS_PASSWORD={hub.password}\n"
        f"CLAWHUB_NATS_SYSTEM_URL={system_urls}\n"
    )
