"""An OpenTelemetry-API-compatible TracerProvider backed by otelagent: code
written against `opentelemetry.trace` and the contrib instrumentations
(requests, SQLAlchemy, redis, ...) export through the agent unchanged.

    import otelagent.otel
    otelagent.otel.install()        # sets the global TracerProvider (once)

Once installed, otelagent's own API, its integrations and the OpenTelemetry
API share one current span: the one in OpenTelemetry's context. Spans are
instances of the API's Span class (get_current_span() only returns those).

What differs from the SDK: span processors and exporters are the agent's
(configured by OTEL_* variables); add_span_processor() is accepted and
ignored with one warning, as the agent's own pipeline does the work."""

import logging
import types

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import propagation as otel_propagation
from opentelemetry.trace.status import Status, StatusCode as OtelStatusCode

from . import _agent
from . import _tracing as T
from ._otel_bridge import parent_of

_log = logging.getLogger("otelagent")
_SPAN_KEY = otel_propagation._SPAN_KEY
_get_value = otel_context.get_value
_set_value = otel_context.set_value
_attach = otel_context.attach
_detach = otel_context.detach


def _span_context(self):
    raw = self._ctx
    ts = self._tracestate
    return otel_trace.SpanContext(
        trace_id=int.from_bytes(raw[0:16], "big"), span_id=int.from_bytes(raw[16:24], "big"),
        is_remote=bool(raw[25]), trace_flags=otel_trace.TraceFlags(raw[24]),
        trace_state=otel_trace.TraceState.from_header([ts]) if ts else None)


def _set_status(self, status, description=None):
    if isinstance(status, Status):
        code, description = status.status_code, status.description
    else:
        code = status
    T.Span.set_status(self, code.value if isinstance(code, OtelStatusCode) else int(code),
                      description)


_API_KINDS = {k.value + 1: k for k in otel_trace.SpanKind}  # OTLP numbering -> API kind


class OtelSpan(T.Span, otel_trace.Span):
    """A recording span, also an opentelemetry.trace.Span. It also answers the
    read-only members of the SDK's span that instrumentations read from the
    current span (the contrib ASGI, WSGI and Flask instrumentations check
    `span.kind`): kind, attributes, parent, start_time, status."""

    __slots__ = ()
    get_span_context = _span_context
    set_status = _set_status
    # end, __enter__, __exit__ and the rest: otelagent's (first in the MRO).

    @property
    def kind(self):
        return _API_KINDS.get(self._kind, otel_trace.SpanKind.INTERNAL)

    @property
    def attributes(self):
        return types.MappingProxyType(self._attrs)

    @property
    def parent(self):
        p = self._parent
        if p is None:
            return None
        return otel_trace.SpanContext(
            trace_id=int.from_bytes(p[0:16], "big"), span_id=int.from_bytes(p[16:24], "big"),
            is_remote=bool(p[25]), trace_flags=otel_trace.TraceFlags(p[24]))

    @property
    def start_time(self):
        return self._start

    @property
    def status(self):
        x = self._x
        return Status(OtelStatusCode(self._status), x[2] if x is not None else None)


class OtelNonRecordingSpan(T.NonRecordingSpan, otel_trace.Span):
    __slots__ = ()
    get_span_context = _span_context


def _kind(kind):
    # The API numbers kinds from INTERNAL = 0; OTLP (and otelagent) from 1.
    return kind.value + 1 if isinstance(kind, otel_trace.SpanKind) else int(kind)


def _parent(context):
    if context is None:
        return T._CURRENT_PARENT
    return otel_trace.get_current_span(context)


class Tracer(otel_trace.Tracer):
    def __init__(self, name, version=None):
        self._tracer = T.Tracer(name, version)

    def start_span(self, name, context=None, kind=otel_trace.SpanKind.INTERNAL, attributes=None,
                   links=None, start_time=None, record_exception=True,
                   set_status_on_exception=True):
        return self._tracer.start_span(name, parent=_parent(context), kind=_kind(kind),
                                       attributes=attributes, links=links,
                                       start_time=start_time)

    def start_as_current_span(self, name, context=None, kind=otel_trace.SpanKind.INTERNAL,
                              attributes=None, links=None, start_time=None,
                              record_exception=True, set_status_on_exception=True,
                              end_on_exit=True):
        # otelagent's scope is a context manager (sync and async) and a
        # decorator, as the API's is.
        return self._tracer.start_as_current_span(
            name, parent=_parent(context), kind=_kind(kind), attributes=attributes, links=links,
            start_time=start_time, end_on_exit=end_on_exit, record_exception=record_exception,
            set_status_on_exception=set_status_on_exception)


class _Resource:
    """provider.resource for code that reads it (the logging instrumentation
    reads resource.attributes["service.name"])."""

    def __init__(self, attributes):
        self.attributes = attributes
        self.schema_url = ""


def _make_resource():
    service = _agent.setting("OTEL_SERVICE_NAME")
    try:
        from opentelemetry.sdk.resources import Resource
        attrs = {"service.name": service} if service else {}
        return Resource.create(attrs)
    except ImportError:
        attrs = {}
        for item in (_agent.setting("OTEL_RESOURCE_ATTRIBUTES", "") or "").split(","):
            k, eq, v = item.partition("=")
            if eq and k.strip():
                attrs[k.strip()] = v.strip()
        attrs["service.name"] = service or attrs.get("service.name", "unknown_service")
        return _Resource(attrs)


class TracerProvider(otel_trace.TracerProvider):
    """The OpenTelemetry API's TracerProvider, backed by otelagent. Also has
    the SDK-only members user code reaches for: resource, add_span_processor,
    force_flush, shutdown."""

    def __init__(self, start_agent=True):
        if start_agent:
            _agent.start()
        self._resource = None
        self._warned = False

    def get_tracer(self, instrumenting_module_name, instrumenting_library_version=None,
                   schema_url=None, attributes=None):
        return Tracer(instrumenting_module_name or "", instrumenting_library_version)

    @property
    def resource(self):
        if self._resource is None:
            self._resource = _make_resource()
        return self._resource

    def add_span_processor(self, span_processor):
        if not self._warned:
            self._warned = True
            _log.warning("otelagent: add_span_processor(%r) ignored: the agent exports spans "
                         "itself (configure it with OTEL_* variables)", span_processor)

    def force_flush(self, timeout_millis=30000):
        return _agent.flush(timeout_millis)

    def shutdown(self):
        _agent.shutdown()


def _cur_get():
    span = _get_value(_SPAN_KEY)
    if span is None or hasattr(span, "_ctx"):
        return span
    # A span from elsewhere (e.g. a NonRecordingSpan the API made from
    # extracted headers): seen through its context.
    raw, ts = parent_of(span)
    return OtelNonRecordingSpan(raw, ts) if raw is not None else None


def _cur_set(span):
    return _attach(_set_value(_SPAN_KEY, span))


def _installed():
    return T._classes[0] is OtelSpan


def enable_bridge():
    """Makes otelagent keep its current span in OpenTelemetry's context and
    create API-compatible spans (install() does it)."""
    T._classes[0] = OtelSpan
    T._classes[1] = OtelNonRecordingSpan
    T._cur_get = _cur_get
    T._cur_set = _cur_set
    T._cur_reset = _detach
    T.INVALID_SPAN = otel_trace.INVALID_SPAN


def install(start_agent=True):
    """Creates the provider, sets it as the global TracerProvider and bridges
    the current span. Returns the provider. The API allows setting the global
    provider once: when another one is already set, this warns and returns
    None (the spans of code using the API then do not come here)."""
    enable_bridge()
    current = otel_trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = TracerProvider(start_agent)
    otel_trace.set_tracer_provider(provider)
    if otel_trace.get_tracer_provider() is not provider:
        _log.warning("otelagent: a TracerProvider (%r) was already set; OpenTelemetry API "
                     "spans will not go through otelagent", otel_trace.get_tracer_provider())
        return None
    return provider
