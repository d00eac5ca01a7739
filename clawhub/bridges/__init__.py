"""Bridges: outside agents joining a group as participants.

Each bridge translates an outside protocol (A2A, the Synadia Agent Protocol for NATS, a
command line) into a participant of the group, through the SDK's own agent runtime and a
credential of its own; the rules stay in the board, and what the outside protocol lacks
(liveness, stalls, fencing, validation) the hub supplies. A bridge sits beside the gateway:
it may use the runtime and the SDK, never the gateway."""
