"""The NATS agent protocol bridge: agents that speak the Synadia Agent Protocol (v0.3) join a
Claw Group as workers, each a participant with its own credential.

::

    from clawhub.bridges.nats_agents import NatsAgentsBridge

    async with NatsAgentsBridge(hub_url, agents_url="nats://agents-bus:4222", token=token):
        ...  # every agent discovered there takes tasks until the block ends

``clawhub bridge nats-agents`` runs it from the command line; ``docs/nats-agents.md`` has
the mapping of subjects, fields and states.
"""

from .bridge import PROTOCOL_VERSIONS, NatsAgentsBridge, RemoteAgentError
from .mapping import participant_id

__all__ = ["PROTOCOL_VERSIONS", "NatsAgentsBridge", "RemoteAgentError", "participant_id"]
