"""Traces on the agent's side: OpenTelemetry spans for the handler of each attempt and for
each model and tool call the SDK makes, joined to the hub's trace by the W3C ``traceparent``
that came with the offer (a NATS header, or the WebSocket envelope's field); every request
and publish the agent makes inside a span carries that span's traceparent the same way.

On when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set
(the OTLP/HTTP exporter is set up at the first span, ``pip install 'clawhub[otel]'``) or when
the program set up an OpenTelemetry tracer provider itself. Off otherwise: ``opentelemetry``
is never imported (``import agents_sdk`` stays light) and ``span`` yields None.

Spans: ``claw.agent.handle`` (CONSUMER; the attempt, its handler, the result's delivery),
``claw.model.call`` (CLIENT; one call to the model, ``gen_ai.*`` attributes), and
``claw.tool.call`` (INTERNAL; one tool call of the tool loop).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from opentelemetry.trace import Span

#: The environment variables that turn the OTLP exporter on (the OpenTelemetry SDK's own).
ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

Kind = Literal["internal", "client", "consumer"]
Attribute = str | bool | int | float

_configured = False
_endpoint: bool | None = None


def _endpoint_set() -> bool:
    """True when an OTLP endpoint is set (the environment is read once, at the first use)."""
    global _endpoint  # noqa: PLW0603 - read once: this is asked for every handler run
    if _endpoint is None:
        _endpoint = any(os.environ.get(name) for name in ENDPOINT_VARS)
    return _endpoint


def enabled() -> bool:
    """True when spans are wanted; imports nothing unless an endpoint is set or
    OpenTelemetry is loaded already."""
    if _endpoint_set():
        return True
    if "opentelemetry.trace" not in sys.modules:
        return False
    from opentelemetry import trace  # noqa: PLC0415 - loaded already

    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _configure() -> None:
    """Set up the OTLP/HTTP exporter when an endpoint is set and no provider is (once)."""
    global _configured  # noqa: PLW0603 - the process's one tracer provider
    if _configured or not _endpoint_set():
        return
    _configured = True
    from opentelemetry import trace  # noqa: PLC0415 - only when tracing is on

    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return  # the program set one up: use it
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
    named = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "clawhub-agent"}
    provider = TracerProvider(resource=Resource.create(named))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def traceparent() -> str | None:
    """The W3C traceparent of the current span; None when there is none (or tracing is off)."""
    if "opentelemetry.trace" not in sys.modules:
        return None
    from opentelemetry.trace.propagation.tracecontext import (  # noqa: PLC0415
        TraceContextTextMapPropagator,
    )

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")


def headers() -> dict[str, str] | None:
    """NATS headers carrying the current span's traceparent; None when there is none."""
    value = traceparent()
    return {"traceparent": value} if value else None


def span(
    name: str,
    *,
    parent: str | None = None,
    kind: Kind = "internal",
    attributes: dict[str, Attribute] | None = None,
) -> contextlib.AbstractContextManager[Span | None]:
    """A span around the block, made current (a child of ``parent``, a traceparent, when
    given and valid, else of the current span); None and nothing done when tracing is off.
    An exception leaving the block is recorded on the span and passes on."""
    if not enabled():
        return contextlib.nullcontext()
    return _span(name, parent, kind, attributes)


@contextlib.contextmanager
def _span(
    name: str, parent: str | None, kind: Kind, attributes: dict[str, Attribute] | None
) -> Iterator[Span | None]:
    _configure()
    from opentelemetry import trace  # noqa: PLC0415 - only when tracing is on
    from opentelemetry.trace.propagation.tracecontext import (  # noqa: PLC0415
        TraceContextTextMapPropagator,
    )

    ctx = TraceContextTextMapPropagator().extract({"traceparent": parent}) if parent else None
    kinds = {
        "internal": trace.SpanKind.INTERNAL,
        "client": trace.SpanKind.CLIENT,
        "consumer": trace.SpanKind.CONSUMER,
    }
    tracer = trace.get_tracer("agents_sdk")
    with tracer.start_as_current_span(name, ctx, kinds[kind], attributes) as current:
        yield current


def note(current: Span | None, **attributes: Attribute) -> None:
    """Set attributes on a span from ``span`` (nothing when it is None); a dotted name is
    given with ``__`` for each dot (``gen_ai__usage__input_tokens``)."""
    if current is not None:
        for key, value in attributes.items():
            current.set_attribute(key.replace("__", "."), value)


def failed(current: Span | None, why: str) -> None:
    """Mark a span as failed (an attempt whose handler failed); nothing when it is None."""
    if current is not None:
        from opentelemetry.trace import StatusCode  # noqa: PLC0415 - a span exists: loaded

        current.set_status(StatusCode.ERROR, why[:500])
