"""Conversions between OpenTelemetry API objects and otelagent's contexts.
Imported only when such an object is met (the API package is optional)."""


def raw_of(sc):
    """(32-byte otelagent_span_context, tracestate) of an OpenTelemetry API
    SpanContext; (None, "") when it is not valid."""
    if sc is None or not sc.is_valid:
        return None, ""
    raw = (sc.trace_id.to_bytes(16, "big") + sc.span_id.to_bytes(8, "big")
           + bytes((int(sc.trace_flags) & 0xFF, 1 if sc.is_remote else 0)) + bytes(6))
    ts = sc.trace_state.to_header() if sc.trace_state else ""
    return raw, ts


def parent_of(obj):
    """(raw context or None, tracestate) of an OpenTelemetry API span, span
    context or Context."""
    from opentelemetry import trace

    if isinstance(obj, dict):  # an opentelemetry.context.Context
        obj = trace.get_current_span(obj)
    get = getattr(obj, "get_span_context", None)
    sc = get() if get is not None else obj
    if not isinstance(sc, trace.SpanContext):
        return None, ""
    return raw_of(sc)
