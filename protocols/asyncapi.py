"""AsyncAPI 3 document of the NATS subjects, generated from ``subjects`` and ``api``.

Pure: ``asyncapi()`` returns the document as a dict; ``clawhub schema`` writes it to
``protocols/asyncapi.json`` and a test fails when the committed file drifts. It describes
the bus from the hub's side: the hub *receives* on ``hub.*`` and ``api.*`` and replies,
and *sends* offers and cancels to each participant's inbox and events to everyone; and the
gateway's WebSocket (``/v1/ws/agent``, ``/v1/ws/events``), which carries the same messages
in the envelope of ``protocols.gateway``. ``servers`` names the two (host and port are the
ones ``clawhub up`` prints), ``components.securitySchemes`` how to log in to each, and
``info.description`` the rules a client in another language must follow: the NATS login,
the sender segment, the reply-inbox prefix, the connection name, the error reply.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from . import subjects
from .api import AGENT_CALLS, API, Call
from .codec import MAX_DEPTH, MESSAGE_TYPES, type_name
from .control import ErrorReply
from .events import Event
from .gateway import WsAnswer, WsOffer, WsPush, WsRequest, WsResponse
from .schema import wire_schema
from .work import Accept, Assignment, Assignments, Cancel, Decline

# sentinels that pass the subject checks and are swapped for {parameters}
_G, _A, _K, _S = "GroupXparam", "AgentXparam", "kindXparam", "SenderXparam"

_PARAMS = {
    "group": {"description": "The Claw Group (tenant): one subject token."},
    "agent_id": {"description": "A participant id: one subject token."},
    "sender": {
        "description": "Who sends: the credential's id (the token id `tk-…`, also the NATS "
        "user name) on a hub with auth, which nats-server lets a user publish under only for "
        "itself; `anon` on a hub without auth."
    },
    "kind": {"description": "The event kind, dotted (`task.done`, `agent.lost`)."},
}


_DESCRIPTION = f"""\
The subjects of one Claw Group, from the hub's side, and the gateway's WebSocket that
carries the same messages in an envelope. Generated from protocols/subjects.py,
protocols/api.py and protocols/gateway.py by `clawhub schema`. A walk-through in raw JSON:
docs/other-languages.md.

**Logging in (NATS).** A token is the string `<token id>.<secret>` that
`clawhub token create` prints once (`tk-3f9a1c2b7d4e.q8...`). Connect with the part before
the first dot (the token id) as the NATS user and the part after the first dot as the
password. A hub without auth (`clawhub up --no-auth`) takes no credentials.

**The sender segment.** Every agent → hub subject (`claw.{{group}}.hub.{{sender}}.<call>`)
and API subject (`claw.{{group}}.api.{{sender}}.<verb>`) carries its sender: your token id,
or `{subjects.ANON_SENDER}` on a hub without auth. nats-server lets a user publish only under
its own id (anything else is a permissions violation and gets no reply), and the hub holds
every message to the token's participant: an agent token registers, heart-beats, reports
and delivers only as its own agent id (else `forbidden`, saying which id the token is for).

**The reply inbox.** A request's reply subject must be under
`{subjects.INBOX_ROOT}.<token id>.` (nats-py: `inbox_prefix="{subjects.INBOX_ROOT}.<token id>"`):
those are the only reply inboxes a token's user may subscribe to. With any other prefix the
subscription is refused and every request just times out.

**The connection name.** Name the NATS connection
`{subjects.AGENT_CONNECTION_PREFIX}<agent id>:<session>` (the `session` of your Register):
the hub hears the server announce the connection closed and marks the agent lost at once,
rather than after `missed_beats` silent heartbeats. It counts only for the credential that
registered that agent.

**Errors.** Every request (register, deregister, result, every API verb) may be answered
with `claw.v1.error` (`ErrorReply`: a `code` and a `message`) instead of its reply; nothing
was applied. Publish-only calls (heartbeat, progress) get no reply: a refusal is recorded
in the event log as `message.refused`.

**Limits.** A payload is at most the hub's `max_message_bytes` (1 MiB by default; the
`RegisterAck` says the hub's own), else `oversize`; JSON nested deeper than {MAX_DEPTH} arrays and
objects is `malformed`; an integer outside the signed 64-bit range is `invalid`.

**The WebSocket.** `ws://<gateway host>:<port>/v1/ws/agent?token=<token>` (or the header
`Authorization: Bearer <token>`) carries the same messages wrapped in `claw.v1.ws.*`
frames; a refused token closes the socket with code 4401.
"""

_SERVERS: dict[str, Any] = {
    "nats": {
        "host": "{host}:{port}",
        "protocol": "nats",
        "title": "The group's NATS server",
        "description": "The nats-server of `clawhub up`: embedded, on loopback, with "
        "authentication (`--no-auth`: none). `clawhub up` prints its URL (`NATS "
        "nats://127.0.0.1:PORT`) and keeps it in `hub.json` in the data folder; a restarted "
        "hub takes the same port when it is free. With `--nats-url` it is the operator's own "
        "NATS, with the same subjects and permissions.",
        "variables": {
            "host": {
                "default": "127.0.0.1",
                "description": "Where nats-server listens (the embedded one: loopback).",
            },
            "port": {
                "examples": ["4222", "50123"],
                "description": "The port `clawhub up` printed (`--port`; 0 = the last run's "
                "port if free, else any free port).",
            },
        },
        "security": [{"$ref": "#/components/securitySchemes/token"}],
    },
    "gateway": {
        "host": "{host}:{port}",
        "protocol": "ws",
        "title": "The gateway's WebSocket",
        "description": "The gateway of `clawhub up` (`gateway http://127.0.0.1:PORT`, also in "
        "`hub.json`): `/v1/ws/agent` is the agent transport, `/v1/ws/events` the event "
        "stream. REST and OpenAPI are on the same port (clawhub/openapi.json).",
        "variables": {
            "host": {
                "default": "127.0.0.1",
                "description": "Where the gateway listens (`CLAWHUB_GATEWAY_HOST`).",
            },
            "port": {
                "examples": ["8765"],
                "description": "The port `clawhub up` printed (`--gateway-port`).",
            },
        },
        "security": [
            {"$ref": "#/components/securitySchemes/gatewayQuery"},
            {"$ref": "#/components/securitySchemes/gatewayBearer"},
        ],
    },
}

_SECURITY: dict[str, Any] = {
    "token": {
        "type": "userPassword",
        "description": "A Claw Hub token `<token id>.<secret>`: user = the token id (the "
        "part before the first dot, `tk-` and 12 hex digits), password = the part after the "
        "first dot. The user may publish only under its own sender segment, subscribe only "
        "to its events, its own participant's inbox and `_INBOX.<token id>.>`.",
    },
    "gatewayQuery": {
        "type": "httpApiKey",
        "name": "token",
        "in": "query",
        "description": "The whole token string as `?token=` (browsers' WebSocket cannot set "
        "headers). Refused: the socket gets one `claw.v1.ws.response` with "
        "`claw.v1.error` (`unauthorized`) and is closed with code 4401.",
    },
    "gatewayBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "The whole token string as `Authorization: Bearer <token>`.",
    },
}


def _address(subject: str) -> str:
    return (
        subject.replace(_G, "{group}")
        .replace(_A, "{agent_id}")
        .replace(_K, "{kind}")
        .replace(_S, "{sender}")
    )


def _ref_message(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/messages/{_name(model)}"}


def _name(model: type[BaseModel]) -> str:
    return type_name(model).replace(".", "_")


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every subject and message."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    replies: set[type[BaseModel]] = {ErrorReply}

    def channel(
        key: str,
        subject: str,
        models: list[type[BaseModel]],
        description: str,
        server: str = "nats",
    ) -> dict[str, Any]:
        address = _address(subject)
        params = {p: _PARAMS[p] for p in _PARAMS if "{" + p + "}" in address}
        body: dict[str, Any] = {
            "address": address,
            "description": description,
            "servers": [{"$ref": f"#/servers/{server}"}],
            "messages": {_name(m): _ref_message(m) for m in models},
        }
        if params:
            body["parameters"] = params
        channels[key] = body
        return {"$ref": f"#/channels/{key}"}

    def operation(
        key: str,
        action: str,
        chan: dict[str, str],
        models: list[type[BaseModel]],
        summary: str,
        reply: list[type[BaseModel]] | None,
        reply_channel: str = "reply",
    ) -> None:
        name = chan["$ref"].rsplit("/", 1)[1]
        op: dict[str, Any] = {
            "action": action,
            "channel": chan,
            "summary": summary,
            "messages": [{"$ref": f"#/channels/{name}/messages/{_name(m)}"} for m in models],
        }
        if reply and reply_channel == "reply":
            replies.update(reply)
            answers: list[type[BaseModel]] = [*reply, ErrorReply]
            if action == "receive":
                op["description"] = (
                    "A NATS request: send it with a reply subject under `_INBOX.<token id>.`; "
                    "the answer is "
                    + " or ".join(f"`{type_name(m)}`" for m in answers)
                    + " (refused: nothing was applied)."
                )
            else:
                answers = list(reply)
                op["description"] = (
                    "A NATS request from the hub: answer on its reply subject (your user may "
                    "publish there once) with "
                    + " or ".join(f"`{type_name(m)}`" for m in answers)
                    + " before the accept timeout; no answer counts as a decline."
                )
            op["reply"] = {
                "address": {"location": "$message.header#/replyTo"},
                "channel": {"$ref": "#/channels/reply"},
                "messages": [{"$ref": f"#/channels/reply/messages/{_name(m)}"} for m in answers],
            }
        elif reply:
            op["reply"] = {
                "channel": {"$ref": f"#/channels/{reply_channel}"},
                "messages": [
                    {"$ref": f"#/channels/{reply_channel}/messages/{_name(m)}"} for m in reply
                ],
            }
        operations[key] = op

    def calls(prefix: str, table: dict[str, Call], subject_of: Any) -> None:
        for verb, call in table.items():
            key = f"{prefix}_{verb}"
            chan = channel(key, subject_of(verb), [call.request], call.summary)
            reply = [call.reply] if call.reply is not None else None
            operation(key, "receive", chan, [call.request], call.summary, reply)

    calls("hub", AGENT_CALLS, lambda call: subjects.hub_call(_G, _S, call))
    calls("api", API, lambda verb: subjects.api(_G, _S, verb))
    inbox = channel(
        "agent_inbox",
        subjects.agent_inbox(_G, _A),
        [Assignment, Assignments, Cancel],
        "One participant's inbox: offers (request/reply), pushed assignments and cancels.",
    )
    operation(
        "offer",
        "send",
        inbox,
        [Assignment],
        "Offer an attempt; answer Accept or Decline.",
        [Accept, Decline],
    )
    operation(
        "push",
        "send",
        inbox,
        [Assignment, Assignments],
        "Push attempts to a credit agent (running already); one at a time, or several at "
        "once to an agent that registered with batches. Nothing is answered; a Decline goes "
        "to hub_decline.",
        None,
    )
    operation("cancel", "send", inbox, [Cancel], "Stop an attempt; it is no longer yours.", None)
    events = channel(
        "events", subjects.events(_G, _K), [Event], "Every state change, published live."
    )
    operation("event", "send", events, [Event], "Something happened in the group.", None)
    ordered = [m for m in MESSAGE_TYPES if m in replies]
    channels["reply"] = {
        "address": None,
        "description": "The requester's reply inbox (NATS request/reply): a subject under "
        "`_INBOX.<token id>.` (nats-py `inbox_prefix`), the only inboxes a token's user may "
        "read.",
        "servers": [{"$ref": "#/servers/nats"}],
        "messages": {_name(m): _ref_message(m) for m in ordered},
    }
    _websocket(channel, operation)
    _, top = models_json_schema(
        [(m, "validation") for m in MESSAGE_TYPES], ref_template="#/components/schemas/{model}"
    )
    wire_schema(top)
    messages = {
        _name(m): {
            "name": type_name(m),
            "title": m.__name__,
            "summary": (m.__doc__ or "").strip().split("\n")[0],
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{m.__name__}"},
        }
        for m in MESSAGE_TYPES
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Claw Hub NATS API",
            "version": "1.0.0",
            "description": _DESCRIPTION,
        },
        "defaultContentType": "application/json",
        "servers": _SERVERS,
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": top.get("$defs", {}),
            "securitySchemes": _SECURITY,
        },
    }


def _websocket(channel: Any, operation: Any) -> None:
    """The gateway's agent socket and event stream: the envelope frames."""
    agent = channel(
        "ws_agent",
        "/v1/ws/agent",
        [WsRequest, WsResponse, WsOffer, WsAnswer, WsPush],
        "The agent transport: JSON text frames, the bus's messages in the envelope. "
        "Replies are matched by `id`, and may arrive in any order (an offer can come before "
        "the reply to the registration). Closed by the gateway with 4401 (token refused), "
        "4403 (token not allowed), 1013 (too many sockets: retry later); when it closes, "
        "the registered participant is lost at once.",
        server="gateway",
    )
    operation(
        "ws_request",
        "receive",
        agent,
        [WsRequest],
        "Any agent → hub or API message; answered with a claw.v1.ws.response of the same "
        "id (its reply or claw.v1.error). A null id asks for no reply to a heartbeat or "
        "progress (errors still come, with a null id).",
        [WsResponse],
        reply_channel="ws_agent",
    )
    operation(
        "ws_offer",
        "send",
        agent,
        [WsOffer],
        "An offer; answer with a claw.v1.ws.answer of the same id within the accept timeout.",
        [WsAnswer],
        reply_channel="ws_agent",
    )
    operation(
        "ws_push",
        "send",
        agent,
        [WsPush],
        "A Cancel: the hub took an attempt back; stop it.",
        None,
    )
    stream = channel(
        "ws_events",
        "/v1/ws/events",
        [WsPush],
        "The group's events as claw.v1.ws.push frames (`?after=SEQ`: the stored ones after "
        "SEQ first; `?kinds=task.,agent.`: only kinds with those prefixes).",
        server="gateway",
    )
    operation("ws_event", "send", stream, [WsPush], "Something happened in the group.", None)
