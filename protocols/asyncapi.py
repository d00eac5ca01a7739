"""AsyncAPI 3 document of the NATS subjects, generated from ``subjects`` and ``api``.

Pure: ``asyncapi()`` returns the document as a dict; ``clawhub schema`` writes it to
``protocols/asyncapi.json`` and a test fails when the committed file drifts. It describes
the bus from the hub's side: the hub *receives* on ``hub.*`` and ``api.*`` and replies,
and *sends* offers and cancels to each participant's inbox and events to everyone.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from . import subjects
from .api import AGENT_CALLS, API, Call
from .codec import MESSAGE_TYPES, type_name
from .control import ErrorReply
from .events import Event
from .work import Accept, Assignment, Cancel, Decline

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
        key: str, subject: str, models: list[type[BaseModel]], description: str
    ) -> dict[str, Any]:
        address = _address(subject)
        params = {p: _PARAMS[p] for p in _PARAMS if "{" + p + "}" in address}
        body: dict[str, Any] = {
            "address": address,
            "description": description,
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
    ) -> None:
        name = chan["$ref"].rsplit("/", 1)[1]
        op: dict[str, Any] = {
            "action": action,
            "channel": chan,
            "summary": summary,
            "messages": [{"$ref": f"#/channels/{name}/messages/{_name(m)}"} for m in models],
        }
        if reply:
            replies.update(reply)
            answers: list[type[BaseModel]] = [*reply, ErrorReply]
            op["reply"] = {
                "address": {"location": "$message.header#/replyTo"},
                "channel": {"$ref": "#/channels/reply"},
                "messages": [{"$ref": f"#/channels/reply/messages/{_name(m)}"} for m in answers],
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
        [Assignment, Cancel],
        "One participant's inbox: offers (request/reply) and cancels.",
    )
    operation(
        "offer",
        "send",
        inbox,
        [Assignment],
        "Offer an attempt; answer Accept or Decline.",
        [Accept, Decline],
    )
    operation("cancel", "send", inbox, [Cancel], "Stop an attempt; it is no longer yours.", None)
    events = channel(
        "events", subjects.events(_G, _K), [Event], "Every state change, published live."
    )
    operation("event", "send", events, [Event], "Something happened in the group.", None)
    ordered = [m for m in MESSAGE_TYPES if m in replies]
    channels["reply"] = {
        "address": None,
        "description": "The requester's reply inbox (NATS request/reply).",
        "messages": {_name(m): _ref_message(m) for m in ordered},
    }
    _, top = models_json_schema(
        [(m, "validation") for m in MESSAGE_TYPES], ref_template="#/components/schemas/{model}"
    )
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
            "description": "The subjects of one Claw Group, from the hub's side. Every "
            "request may be answered with claw.v1.error instead of its reply. Generated from "
            "protocols/subjects.py and protocols/api.py by `clawhub schema`.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": top.get("$defs", {})},
    }
