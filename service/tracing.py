"""OpenTelemetry tracing (docs/service.md "Tracing"): optional, off by default (`SI_TRACING=off`).

`pip install 'session-intent[tracing]'` brings opentelemetry-sdk and the OTLP/HTTP exporter; then
`SI_TRACING=otlp` exports to `OTEL_EXPORTER_OTLP_ENDPOINT` (the SDK's own `OTEL_*` variables apply) and
`SI_TRACING=console` prints spans. Spans:

    http request (SERVER; the caller's W3C `traceparent` is its parent; attribute request.id)
      ├─ redis append_event   the click's one Redis call
      └─ batch wait           queue + engine, until the click's scores are back
    engine batch              on the engine thread, one per batch (attribute batch.size): a root span,
                              since a batch serves many clicks

Off, every hook is one module-global check (`ACTIVE is None`) and a shared no-op context: the click pays
nothing measurable (docs/benchmarks/tracing.md).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, MutableMapping
from contextlib import AbstractContextManager
from typing import Any, Literal

log = logging.getLogger(__name__)

TracingMode = Literal["off", "otlp", "console"]
_NOTHING = contextlib.nullcontext()


class Tracing:
    """A TracerProvider of this process with a batching exporter; `ACTIVE` while the app runs."""

    def __init__(self, exporter: Any, service_name: str = "session-intent") -> None:
        from opentelemetry.propagators.textmap import DefaultGetter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import SpanKind
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("session_intent.service")
        self.propagator = TraceContextTextMapPropagator()
        self._getter = DefaultGetter()
        self._server = SpanKind.SERVER

    @contextlib.contextmanager
    def request(self, scope: MutableMapping[str, Any], request_id: str) -> Iterator[None]:
        """The request's SERVER span, a child of the caller's `traceparent` when it sent a valid one."""
        carrier = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope.get("headers", ())
                   if name in (b"traceparent", b"tracestate")}
        parent = self.propagator.extract(carrier, getter=self._getter) if carrier else None
        name = f"{scope.get('method', '')} {scope.get('path', '')}"
        with self.tracer.start_as_current_span(name, context=parent, kind=self._server,
                                               attributes={"request.id": request_id}) as span:
            yield
            route = getattr(scope.get("route"), "path_format", None)
            if route is not None:  # the template, not the path: a session id stays out of traces too
                span.update_name(f"{scope.get('method', '')} {route}")
                span.set_attribute("http.route", route)

    def shutdown(self) -> None:
        self.provider.shutdown()  # flushes the spans still batched


ACTIVE: Tracing | None = None


def span(name: str, attributes: dict[str, Any] | None = None) -> AbstractContextManager[Any]:
    """A child span of whatever runs now; a shared no-op while tracing is off."""
    if ACTIVE is None:
        return _NOTHING
    return ACTIVE.tracer.start_as_current_span(name, attributes=attributes)


def exporter_for(mode: TracingMode) -> Any:
    if mode == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def start_tracing(mode: TracingMode) -> Tracing | None:
    """Tracing for this process as `mode` says; None when off."""
    global ACTIVE
    if mode == "off":
        return None
    ACTIVE = Tracing(exporter_for(mode))
    log.info("tracing on: spans go to the %s exporter", mode)
    return ACTIVE


def stop_tracing() -> None:
    global ACTIVE
    if ACTIVE is not None:
        ACTIVE.shutdown()
        ACTIVE = None
