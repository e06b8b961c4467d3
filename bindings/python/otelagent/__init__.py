"""otelagent: OpenTelemetry tracing for Python through libotelagent.

    import otelagent
    otelagent.start(service_name="orders")
    with otelagent.start_as_current_span("work") as span:
        span.set_attribute("items", 3)

Spans are built in Python and handed to the library in one call when they end;
the library batches and exports them (OTLP/HTTP) on its own thread."""

from ._errors import AbiMismatch, LibraryNotFound, OtelAgentError
from ._ffi import LOADED_FROM
from ._agent import flush, route_logs_to_python, shutdown, start, stats, version
from ._tracing import (INVALID_SPAN, NonRecordingSpan, Span, SpanContext, SpanKind,
                       StatusCode, Tracer, attach, detach, get_current_span, get_tracer,
                       start_as_current_span, start_span, use_span)
from .propagation import extract, inject

__version__ = "0.2.0"
__all__ = ["AbiMismatch", "LibraryNotFound", "OtelAgentError", "LOADED_FROM", "flush",
           "route_logs_to_python", "shutdown", "start", "stats", "version", "INVALID_SPAN",
           "NonRecordingSpan", "Span", "SpanContext", "SpanKind", "StatusCode", "Tracer", "attach",
           "detach", "get_current_span", "get_tracer", "start_as_current_span", "start_span",
           "use_span", "extract", "inject"]
