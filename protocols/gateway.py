"""The WebSocket envelope: how the bus's request/reply travels over one socket.

A participant on a WebSocket (``/v1/agent`` of the gateway) sends and receives the same
JSON messages as on NATS, wrapped so that requests and replies can be matched::

    client → gateway   claw.v1.ws.request   {id, message}   any agent or API message
    gateway → client   claw.v1.ws.response  {id, message}   its reply (or claw.v1.error)
    gateway → client   claw.v1.ws.offer     {id, message}   an Assignment to answer
    client → gateway   claw.v1.ws.answer    {id, message}   Accept or Decline
    gateway → client   claw.v1.ws.push      {message}       a Cancel, a pushed Assignment
                                                             (credit), or an Event

Requests whose bus subject is publish-only (Heartbeat, Progress) are answered with ``Ok``
only when they carry an ``id``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, JsonValue

from ._base import WireModel
from .events import Event
from .work import Accept, Assignment, Cancel, Decline

CorrelationId = Annotated[str, Field(min_length=1, max_length=64)]

#: A W3C Trace Context ``traceparent`` (version-trace id-span id-flags, lower-case hex).
TraceParent = Annotated[
    str,
    Field(
        pattern=r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
        description="W3C Trace Context traceparent of the sender's span "
        "(https://www.w3.org/TR/trace-context/), as NATS carries it in a `traceparent` "
        "header; the hub's spans for this message become its children. Optional.",
    ),
]


class WsRequest(WireModel):
    """Client → gateway: one message the bus would carry from the participant to the hub."""

    type: Literal["claw.v1.ws.request"] = "claw.v1.ws.request"
    id: CorrelationId | None = Field(
        default=None,
        description="Chosen by the client; echoed in the response. Null: no response wanted "
        "(errors are still sent, with a null id).",
    )
    message: dict[str, JsonValue] = Field(
        description="A wire message with its `type`: Register, Heartbeat, Progress, Result, "
        "Deregister, or any API request (SubmitTasks, ListTasks, ...)."
    )
    traceparent: TraceParent | None = Field(
        default=None, description="The sender's span (W3C traceparent), when it traces."
    )


class WsResponse(WireModel):
    """Gateway → client: the reply to one ``WsRequest``."""

    type: Literal["claw.v1.ws.response"] = "claw.v1.ws.response"
    id: CorrelationId | None = Field(description="The request's id.")
    message: dict[str, JsonValue] = Field(
        description="The hub's reply (RegisterAck, ResultAck, TaskStatus, Ok, ...) or an "
        "ErrorReply (`claw.v1.error`)."
    )


class WsOffer(WireModel):
    """Gateway → client: the hub offers an attempt; answer with ``WsAnswer`` in time."""

    type: Literal["claw.v1.ws.offer"] = "claw.v1.ws.offer"
    id: CorrelationId = Field(description="Chosen by the gateway; echo it in the answer.")
    message: Assignment = Field(description="The offer.")
    traceparent: TraceParent | None = Field(
        default=None,
        description="The hub's span of this offer (W3C traceparent), when the hub traces: "
        "the parent of the participant's span for the attempt.",
    )


class WsAnswer(WireModel):
    """Client → gateway: the participant's answer to one ``WsOffer``."""

    type: Literal["claw.v1.ws.answer"] = "claw.v1.ws.answer"
    id: CorrelationId = Field(description="The offer's id.")
    message: Accept | Decline = Field(
        discriminator="type", description="Accept or Decline, as on the bus."
    )


class WsPush(WireModel):
    """Gateway → client: a message that needs no answer (a Cancel; an Assignment pushed to a
    participant that registered with ``credit``; an Event on the event stream)."""

    type: Literal["claw.v1.ws.push"] = "claw.v1.ws.push"
    message: Cancel | Assignment | Event = Field(discriminator="type", description="The message.")
    traceparent: TraceParent | None = Field(
        default=None,
        description="For a pushed Assignment: the hub's span of it (W3C traceparent), when "
        "the hub traces: the parent of the participant's span for the attempt.",
    )
