"""W3C Trace Context, W3C Baggage and AWS X-Ray headers.

Parsing goes through the library (otelagent_traceparent_parse,
otelagent_tracestate_normalize, otelagent_xray_parse: one call each, every rule
of the specs); formatting a traceparent is a Python f-string, which is faster
than a crossing. The propagators are those of OTEL_PROPAGATORS (default
"tracecontext,baggage"), as the agent was started with."""

import contextvars

from . import _agent, _ffi
from . import _tracing as T
from ._tracing import NonRecordingSpan

_buffers = _ffi.buffers

# The baggage that came with the request being handled (a W3C baggage value,
# normalised); injected again into outbound calls.
_baggage = contextvars.ContextVar("otelagent.baggage", default="")

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
BAGGAGE = "baggage"
XRAY = "x-amzn-trace-id"

_cached = [-1, None]  # (_agent.generation when parsed, the set of propagators)


def propagators():
    """The configured propagators, parsed once per start()."""
    if _cached[0] != _agent.generation[0]:
        value = _agent.setting("OTEL_PROPAGATORS", "tracecontext,baggage")
        props = frozenset(p.strip().lower() for p in value.split(",") if p.strip())
        if T.native is not None:  # its server-span path extracts headers itself
            T.native.set_propagators("tracecontext" in props, "xray" in props,
                                     "baggage" in props)
        _cached[1] = props
        _cached[0] = _agent.generation[0]
    return _cached[1]


def _get(headers, name):
    """A header from a dict-like carrier; several values (a list, or a
    multi-dict's getall) are joined with ',' (RFC 9110)."""
    getall = getattr(headers, "get_all", None) or getattr(headers, "getall", None)
    if getall is not None:
        try:
            vals = getall(name)
        except KeyError:
            vals = None
        if vals:
            return ",".join(vals)
        return None
    v = headers.get(name)
    if v is None:
        v = headers.get(name.title())
    if isinstance(v, (list, tuple)):
        v = ",".join(v)
    return v


def _normalize(fn, value):
    b = value.encode("latin-1", "replace") if isinstance(value, str) else value
    bufs = _buffers
    text = bufs.text
    if fn(b, len(b), text, len(text), bufs.pwritten) != 0:
        return ""
    return text.raw[:bufs.written.value].decode("ascii", "replace")


# The native module's parsers call the same library functions without the
# ctypes machinery (several times cheaper inside a busy request).
_native_traceparent = T.native.traceparent if T.native else None
_native_xray = T.native.xray if T.native else None


def _parse(fn, native_fn, value):
    """The 32-byte context parsed from a header value (bytes), or None."""
    if native_fn is not None:
        return native_fn(value)
    out = _buffers.ctx
    return out.raw if fn(value, len(value), out) == 0 else None


def extract_values(traceparent=None, tracestate=None, baggage=None, xray=None):
    """A NonRecordingSpan for the remote parent described by these header
    values, or None; and the normalised baggage ("" when none)."""
    props = propagators()
    parent = None
    if traceparent and "tracecontext" in props:
        b = traceparent.encode("latin-1", "replace") if isinstance(traceparent, str) else traceparent
        raw = _parse(_ffi.traceparent_parse, _native_traceparent, b)
        if raw is not None:
            ts = _normalize(_ffi.tracestate_normalize, tracestate) if tracestate else ""
            parent = NonRecordingSpan(raw, ts)
    if parent is None and xray and "xray" in props:
        b = xray.encode("latin-1", "replace") if isinstance(xray, str) else xray
        raw = _parse(_ffi.xray_parse, _native_xray, b)
        if raw is not None:
            parent = NonRecordingSpan(raw, "")
    bag = ""
    if baggage and "baggage" in props:
        bag = _normalize(_ffi.baggage_normalize, baggage)
    return parent, bag


def extract(headers):
    """The remote parent in `headers` (a mapping with lower-case or
    Title-Case names), as a NonRecordingSpan to pass as `parent=`, or None.
    The baggage found is made current."""
    parent, bag = extract_values(_get(headers, TRACEPARENT), _get(headers, TRACESTATE),
                                 _get(headers, BAGGAGE), _get(headers, XRAY))
    if bag:
        _baggage.set(bag)
    return parent


def set_baggage(value):
    """Sets the current baggage (a W3C baggage header value); returns a token."""
    return _baggage.set(value)


def get_baggage():
    return _baggage.get()


def headers_for(span=None):
    """The propagation headers for `span` (default: the current span) as a list
    of (name, value) pairs; empty when there is no valid span."""
    if span is None:
        span = T._cur_get()
        if span is None:
            return []
    ctx = span._ctx
    if ctx[16:24] == b"\0\0\0\0\0\0\0\0":
        return []
    props = propagators()
    out = []
    if "tracecontext" in props:
        out.append((TRACEPARENT, f"00-{ctx[0:16].hex()}-{ctx[16:24].hex()}-{ctx[24]:02x}"))
        if span._tracestate:
            out.append((TRACESTATE, span._tracestate))
    if "xray" in props:
        bufs = _buffers
        text = bufs.text
        if _ffi.xray_format(ctx, text, len(text), bufs.pwritten) == 0:
            out.append(("X-Amzn-Trace-Id", text.raw[:bufs.written.value].decode("ascii")))
    if "baggage" in props:
        bag = _baggage.get()
        if bag:
            out.append((BAGGAGE, bag))
    return out


def inject(carrier, span=None):
    """Sets the propagation headers of `span` (default: the current span) in
    the dict-like `carrier`."""
    for k, v in headers_for(span):
        carrier[k] = v
    return carrier
