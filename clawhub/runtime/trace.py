"""Traces: OpenTelemetry spans for a task's path through the hub, joined to its caller's and
its agents' spans by a W3C ``traceparent`` (a NATS message header, the ``traceparent`` field
of the WebSocket envelope, the HTTP header of a REST call).

On when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set
(the OTLP/HTTP exporter is set up then, ``pip install 'clawhub[otel]'``) or when the process
configured an OpenTelemetry tracer provider itself (an application embedding the hub, a
test's in-memory exporter). Off otherwise: ``opentelemetry`` is never imported, ``hub_traces``
returns ``NO_TRACES`` whose hooks do nothing, and the hot path pays one attribute check.

The spans of one task (one trace; the agent's spans come from ``agents_sdk``)::

    clawhub.submit       SERVER    the submit call (parent: the caller's traceparent)
    └ clawhub.task       INTERNAL  submitted → done, failed or cancelled
      ├ clawhub.offer    PRODUCER  one attempt: matched (agent, score) → accepted, declined,
      │ │                          revoked or unanswered (pushed on credit: → sent); its
      │ │                          context rides on the Assignment
      │ └ claw.agent.handle        (the agent's process) the handler, its model and tool calls
      │   └ clawhub.result SERVER  the result taken (parent: the agent's traceparent, else
      │     └ clawhub.validation   the task's span); validating → done or rejected
      └ clawhub.done     INTERNAL  the task is done

Spans live in this process's memory: a task taken over by another replica, or still open when
the hub restarts, goes on in a new ``clawhub.task`` span (``clawhub.recovered`` = true) of a
new trace unless its next message carries a traceparent.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from protocols import ErrorReply, Event, ResultAck, Submitted

from .routes import Route

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span

__all__ = ["INCOMING", "NO_TRACES", "NoTraces", "TaskTraces", "enabled", "hub_traces", "receive"]

#: The environment variables that turn the OTLP exporter on (the OpenTelemetry SDK's own).
ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

#: The traceparent of the message being handled, set by whoever received it (the NATS
#: callback, the gateway) before ``Hub.handle``; None: it carried none.
INCOMING: ContextVar[str | None] = ContextVar("clawhub_traceparent", default=None)

#: Routes that get a span, by route name.
SERVED = {"api.submit": "clawhub.submit", "result": "clawhub.result"}

#: Span attribute values this module sets.
Attrs = dict[str, str | bool | int | float]

_TERMINAL = ("done", "failed", "cancelled")
_OFFER_ENDS = ("running", "declined", "revoked")
_CHECK_ENDS = ("rejected", "retry", "needs_human")

_configured = False


def receive(headers: Mapping[str, str] | None) -> None:
    """Note the traceparent of the message about to be handled (None: it has none). Set for
    every message, so one carried by the last never leaks into the next."""
    INCOMING.set(headers.get("traceparent") if headers else None)


def enabled() -> bool:
    """True when spans are wanted: an OTLP endpoint is set, or a tracer provider is set up.
    Imports nothing unless one of them is true."""
    if any(os.environ.get(name) for name in ENDPOINT_VARS):
        return True
    if "opentelemetry.trace" not in sys.modules:
        return False
    from opentelemetry import trace  # noqa: PLC0415 - loaded already

    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _configure(service: str) -> None:
    """Set up the OTLP/HTTP exporter when an endpoint is set and no provider is (once)."""
    global _configured  # noqa: PLW0603 - the process's one tracer provider
    if _configured or not any(os.environ.get(name) for name in ENDPOINT_VARS):
        return
    _configured = True
    from opentelemetry import trace  # noqa: PLC0415 - only when tracing is on

    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return  # the application set one up: use it
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415
    except ImportError as exc:
        raise RuntimeError(
            f"{ENDPOINT_VARS[0]} is set but the OpenTelemetry SDK is not installed "
            f"({exc.name}): pip install 'clawhub[otel]', or unset it"
        ) from None
    named = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service}
    provider = TracerProvider(resource=Resource.create(named))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


class NoTraces:
    """Tracing off: every hook does nothing."""

    on = False

    def wrap_routes(self, routes: dict[str, Route]) -> dict[str, Route]:
        """The routes as they are."""
        return routes

    def observers(self) -> list[Callable[[Event], None]]:
        """No event observer."""
        return []

    def observe(self, event: Event) -> None:
        """Nothing to record."""

    def headers(self, task_id: str, attempt: int) -> dict[str, str] | None:
        """No headers for an offer."""
        return None


NO_TRACES = NoTraces()


def hub_traces(service: str = "clawhub") -> NoTraces | TaskTraces:
    """The hub's tracing: ``TaskTraces`` when ``enabled``, else ``NO_TRACES``."""
    if not enabled():
        return NO_TRACES
    _configure(service)
    return TaskTraces()


class TaskTraces:
    """The open spans of the tasks this hub is serving, fed by its events (``observe``),
    its served routes (``wrap``) and its offers (``headers``)."""

    on = True

    def __init__(self) -> None:
        from opentelemetry import trace  # noqa: PLC0415 - only when tracing is on
        from opentelemetry.trace.propagation.tracecontext import (  # noqa: PLC0415
            TraceContextTextMapPropagator,
        )

        self._api = trace
        self._w3c = TraceContextTextMapPropagator()
        self._tracer = trace.get_tracer("clawhub")
        self._tasks: dict[str, Span] = {}
        self._offers: dict[tuple[str, int], Span] = {}
        self._unsent: set[tuple[str, int]] = set()
        """Pushed attempts (credit) running before they are sent: their offer span ends
        once ``headers`` gave the assignment its traceparent."""
        self._checks: dict[str, Span] = {}

    # -- contexts ---------------------------------------------------------------------------

    def parent(self, traceparent: str | None) -> Context | None:
        """The context a traceparent names; None when absent or malformed (ignored)."""
        if not traceparent:
            return None
        ctx = self._w3c.extract({"traceparent": traceparent})
        return ctx if self._api.get_current_span(ctx).get_span_context().is_valid else None

    def _current(self) -> Context | None:
        span = self._api.get_current_span()
        return self._api.set_span_in_context(span) if span.get_span_context().is_valid else None

    def _task(self, task_id: str) -> Span:
        span = self._tasks.get(task_id)
        if span is None:  # recovered from the store, or taken over: a span of its own
            attrs: Attrs = {"clawhub.task_id": task_id, "clawhub.recovered": True}
            span = self._tracer.start_span("clawhub.task", self._current(), attributes=attrs)
            self._tasks[task_id] = span
        return span

    def _in_task(self, task_id: str) -> Context:
        return self._api.set_span_in_context(self._task(task_id))

    # -- hooks ------------------------------------------------------------------------------

    def headers(self, task_id: str, attempt: int) -> dict[str, str] | None:
        """The NATS headers of an offer: the traceparent of its ``clawhub.offer`` span."""
        key = (task_id, attempt)
        span = self._offers.get(key)
        ctx = self._api.set_span_in_context(span) if span else self._in_task(task_id)
        carrier: dict[str, str] = {}
        self._w3c.inject(carrier, ctx)
        if key in self._unsent:  # a pushed attempt, sent now: its offer span is over
            self._unsent.discard(key)
            self._end(self._offers.pop(key, None), "running")
        return carrier or None

    def observers(self) -> list[Callable[[Event], None]]:
        """The hub's first event observers: ``observe``."""
        return [self.observe]

    def wrap_routes(self, routes: dict[str, Route]) -> dict[str, Route]:
        """The routes, those in ``SERVED`` with their handler in a span (``wrap``)."""
        return {
            name: dataclasses.replace(route, fn=self.wrap(name, route.fn))
            for name, route in routes.items()
        }

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Route ``name``'s handler in a span (for the routes in ``SERVED``; synchronous
        handlers only), a child of the ``INCOMING`` traceparent."""
        span_name = SERVED.get(name)
        if span_name is None:
            return fn
        kind = self._api.SpanKind.SERVER

        def traced(message: BaseModel, *rest: Any) -> Any:
            parent = self.parent(INCOMING.get())
            task_id = getattr(message, "task_id", None)
            if parent is None and isinstance(task_id, str):
                parent = self._in_task(task_id)
            with self._tracer.start_as_current_span(span_name, parent, kind) as span:
                if isinstance(task_id, str):
                    span.set_attribute("clawhub.task_id", task_id)
                    span.set_attribute("clawhub.attempt", getattr(message, "attempt", 0))
                reply = fn(message, *rest)
                if isinstance(reply, Submitted):
                    span.set_attribute("clawhub.task_ids", reply.ids)
                elif isinstance(reply, ResultAck):
                    span.set_attribute("clawhub.accepted", reply.accepted)
                    span.set_attribute("clawhub.state", reply.state.value)
                elif isinstance(reply, ErrorReply):
                    span.set_status(self._api.StatusCode.ERROR, reply.message)
                return reply

        return traced

    def observe(self, event: Event) -> None:
        """Open and close the task's spans as its events happen (called in the handler
        that caused them, so the current span is their cause)."""
        task_id = event.task_id
        if task_id is None or not event.kind.startswith("task."):
            return
        kind = event.kind[5:]
        attempt = event.attempt or 0
        attrs: Attrs
        if kind == "submitted":
            attrs = {"clawhub.task_id": task_id, "clawhub.title": event.message}
            self._tasks[task_id] = self._tracer.start_span(
                "clawhub.task", self._current(), attributes=attrs
            )
        elif kind == "assigned":
            attrs = {"clawhub.attempt": attempt, "clawhub.agent_id": event.agent_id or ""}
            for key, value in event.data.items():
                if isinstance(value, str | int | float | bool):
                    attrs[f"clawhub.match.{key}"] = value
            self._end(self._offers.pop((task_id, attempt), None), "superseded")
            self._offers[(task_id, attempt)] = self._tracer.start_span(
                "clawhub.offer", self._in_task(task_id), self._api.SpanKind.PRODUCER, attrs
            )
            if event.data.get("pushed"):  # assigned and running at once (credit)
                self._unsent.add((task_id, attempt))  # ends in ``headers``, once it is sent
        elif kind in _OFFER_ENDS:
            self._unsent.discard((task_id, attempt))
            self._end(self._offers.pop((task_id, attempt), None), kind, event.message)
        elif kind == "validating":
            self._end(self._checks.pop(task_id, None), "superseded")
            attrs = {"clawhub.attempt": attempt, "clawhub.agent_id": event.agent_id or ""}
            self._checks[task_id] = self._tracer.start_span(
                "clawhub.validation", self._current() or self._in_task(task_id), attributes=attrs
            )
        elif kind in _CHECK_ENDS:
            self._end(self._checks.pop(task_id, None), kind, event.message)
        elif kind in _TERMINAL:
            self._finish(task_id, kind, event.message)

    def _finish(self, task_id: str, kind: str, why: str) -> None:
        self._end(self._checks.pop(task_id, None), kind, why)
        for key in [k for k in self._offers if k[0] == task_id]:
            self._unsent.discard(key)
            self._end(self._offers.pop(key), kind, why)
        span = self._task(task_id)
        if kind == "done":
            attrs: Attrs = {"clawhub.task_id": task_id}
            self._tracer.start_span("clawhub.done", self._in_task(task_id), attributes=attrs).end()
        self._end(self._tasks.pop(task_id, span), kind, why)

    def _end(self, span: Span | None, outcome: str, why: str = "") -> None:
        if span is None:
            return
        span.set_attribute("clawhub.outcome", outcome)
        if outcome in ("failed", "cancelled", "rejected", "revoked"):
            span.set_status(self._api.StatusCode.ERROR, why[:500] or outcome)
        span.end()
