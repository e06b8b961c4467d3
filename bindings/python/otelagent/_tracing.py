"""Spans, tracers and the current span.

A span lives in Python while it is open (a few slots, a dict of attributes);
it gets its ids and the sampling decision when it starts (from Python for the
default samplers, from otelagent_span_context_new() otherwise: see
_make_span), and crosses into the library once, packed whole, when it ends
(otelagent_record_span()). A span sampled out never crosses: it is a
NonRecordingSpan that only carries its context for its children and for
propagation.

The current span is kept in a contextvars.ContextVar, so threads and asyncio
tasks each see their own."""

import contextvars
import ctypes
import enum
import functools
import inspect
import os
import time
import traceback
from random import getrandbits as _rand

from . import _ffi
from . import _record as R

_time_ns = time.time_ns
_ctx_new = _ffi.span_context_new
_record_span = _ffi.record_span
_buffers = _ffi.buffers

_ZERO8 = bytes(8)
_INVALID_CTX = bytes(32)


class SpanKind(enum.IntEnum):
    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5


class StatusCode(enum.IntEnum):
    UNSET = 0
    OK = 1
    ERROR = 2


_current = contextvars.ContextVar("otelagent.current_span", default=None)
_cur_get = _current.get
_cur_set = _current.set
_cur_reset = _current.reset


class SpanContext:
    """A span's identity as it propagates: the 32-byte otelagent_span_context
    (`raw`) and its W3C tracestate."""

    __slots__ = ("raw", "tracestate")

    def __init__(self, raw, tracestate=""):
        self.raw = raw
        self.tracestate = tracestate

    @property
    def trace_id(self):
        return int.from_bytes(self.raw[0:16], "big")

    @property
    def span_id(self):
        return int.from_bytes(self.raw[16:24], "big")

    @property
    def trace_flags(self):
        return self.raw[24]

    @property
    def is_remote(self):
        return bool(self.raw[25])

    @property
    def is_valid(self):
        return self.raw[0:16] != bytes(16) and self.raw[16:24] != _ZERO8

    @property
    def sampled(self):
        return bool(self.raw[24] & 1)

    def __repr__(self):
        r = self.raw
        return (f"SpanContext(trace_id={r[0:16].hex()}, span_id={r[16:24].hex()}, "
                f"flags={r[24]:02x}, remote={bool(r[25])})")


class NonRecordingSpan:
    """A span that records nothing: sampled out, an extracted remote parent, or
    the invalid span returned when there is no current span. It propagates its
    context; every setter does nothing."""

    __slots__ = ("_ctx", "_tracestate", "__weakref__")
    _records = False  # a class attribute: the cheap "does this span record?"

    def __init__(self, ctx=_INVALID_CTX, tracestate=""):
        self._ctx = ctx
        self._tracestate = tracestate

    def get_span_context(self):
        return SpanContext(self._ctx, self._tracestate)

    context = property(get_span_context)

    def is_recording(self):
        return False

    def set_attribute(self, key, value):
        pass

    def set_attributes(self, attributes):
        pass

    def add_event(self, name, attributes=None, timestamp=None):
        pass

    def add_link(self, context, attributes=None):
        pass

    def record_exception(self, exception, attributes=None, timestamp=None, escaped=False):
        pass

    def set_status(self, status, description=None):
        pass

    def update_name(self, name):
        pass

    def end(self, end_time=None):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __repr__(self):
        return f"NonRecordingSpan({SpanContext(self._ctx, self._tracestate)!r})"


INVALID_SPAN = NonRecordingSpan()


def _message(exc):
    """str(exc), which runs the application's __str__: when that raises, a
    placeholder, never the host's exception replaced by ours."""
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__}: str() failed>"


def _describe(exc):
    """An exception's status description: `Type: message`."""
    return f"{type(exc).__name__}: {_message(exc)}"


def _exception_attributes(exc):
    et = type(exc)
    mod = et.__module__
    name = et.__qualname__ if mod in ("builtins", "__main__") else f"{mod}.{et.__qualname__}"
    return {
        "exception.type": name,
        "exception.message": _message(exc),
        "exception.stacktrace": "".join(traceback.format_exception(et, exc, exc.__traceback__)),
    }


class Span:
    """A recording span. Not shared between threads without a hand-off, as
    with any object; end() may be called from any thread, once (later calls do
    nothing)."""

    # _x holds what few spans have, made on first use: [events, links,
    # status message, dropped events, dropped links]. _token is the
    # contextvars token while the span is current through `with`, or
    # _ACTIVATE before: spans from start_as_current_span become current when
    # entered, spans from start_span do not. _forks is the process's fork
    # count when the span started (see _after_fork_in_child).
    __slots__ = ("_name", "_ctx", "_parent", "_tracestate", "_kind", "_start", "_scope",
                 "_attrs", "_status", "_ended", "_x", "_token", "_forks", "__weakref__")
    _records = True

    def get_span_context(self):
        return SpanContext(self._ctx, self._tracestate)

    context = property(get_span_context)

    @property
    def name(self):
        return self._name

    def is_recording(self):
        return not self._ended

    def set_attribute(self, key, value):
        if not self._ended:
            self._attrs[key] = value

    def set_attributes(self, attributes):
        if not self._ended:
            self._attrs.update(attributes)

    def _extra(self):
        x = self._x
        if x is None:
            x = self._x = [[], [], None, 0, 0]
        return x

    def add_event(self, name, attributes=None, timestamp=None):
        if self._ended:
            return
        x = self._extra()
        if len(x[0]) >= R.MAX_EVENTS:
            x[3] += 1
            return
        x[0].append((name, timestamp or _time_ns(), attributes))

    def add_link(self, context, attributes=None):
        if self._ended:
            return
        x = self._extra()
        if len(x[1]) >= R.MAX_LINKS:
            x[4] += 1
            return
        x[1].append((_link_ctx(context), attributes))

    def record_exception(self, exception, attributes=None, timestamp=None, escaped=False):
        if self._ended:
            return
        attrs = _exception_attributes(exception)
        if attributes:
            attrs.update(attributes)
        self.add_event("exception", attrs, timestamp)

    def set_status(self, status, description=None):
        if self._ended or self._status == 1:  # OK is final (OpenTelemetry API)
            return
        self._status = int(status)
        if self._status == 2 and description:
            self._extra()[2] = description
        elif self._x is not None:
            self._x[2] = None

    def update_name(self, name):
        if not self._ended:
            self._name = name

    def end(self, end_time=None):
        if self._ended:
            return
        self._ended = True
        if self._forks != _forks:
            return  # the parent's span, copied by a fork: the parent sends it
        end = end_time or _time_ns()
        # The native packer takes the common span whole (no events or links,
        # basic attribute values) or returns None and leaves it to _pack.
        # RING_FULL and NOT_STARTED are counted by the library (or moot): the
        # host is never disturbed by a span it could not keep.
        if (self._x is None and _native_record is not None
                and _native_record(self._scope, self._name, self._ctx, self._parent,
                                   self._tracestate, self._kind, self._status, self._start,
                                   end, self._attrs) is not None):
            return
        rec = self._pack(end)
        _record_span(rec, len(rec))

    def _pack(self, end):
        """The span as one record of otelagent_record_span(), packed in
        Python (every case the native packer leaves over)."""
        ctx = self._ctx
        parent = self._parent
        name = self._name
        try:
            entry = _names.get(name)
        except TypeError:  # not even hashable: written as str(name)
            entry = R.string_entry(R.TAG_NAME, name)
        if entry is None:
            entry = R.string_entry(R.TAG_NAME, name)
            if len(_names) < 1024:  # names are nearly always constants
                _names[name] = entry
        parts = [self._scope, entry]
        if self._tracestate:
            parts.append(R.string_entry(R.TAG_TRACESTATE, self._tracestate))
        x = self._x
        if x is not None and x[2]:
            parts.append(R.string_entry(R.TAG_STATUS_MESSAGE, x[2]))
        attrs = self._attrs
        dropped = 0
        if attrs:
            if len(attrs) > R.MAX_ATTRS:
                dropped = R.attrs_entries(R.TAG_ATTR, attrs, parts)
            else:
                # The common scalar types inline (this loop is most of the
                # cost of a span); anything else through _record.entry.
                ap = parts.append
                for k, v in attrs.items():
                    t = type(v)
                    if t is _Packed:
                        ap(v)
                        continue
                    p = _packers.get(k) or _attr_packers(k)
                    if p is not None:
                        if t is str:
                            if len(v) <= _MAX_CHARS:
                                try:
                                    vb = v.encode()
                                except UnicodeEncodeError:
                                    vb = v.encode("utf-8", "surrogatepass")
                                ap(p[0](6, 1, p[6], len(vb), p[5]))
                                ap(vb)
                                continue
                        elif t is int:
                            if _INT_MIN <= v <= _INT_MAX:
                                ap(p[1](6, 3, p[6], 8, p[5], v))
                                continue
                        elif t is bool:
                            ap(p[4] if v else p[3])
                            continue
                        elif t is float:
                            ap(p[2](6, 4, p[6], 8, p[5], v))
                            continue
                    e = _entry(6, k, v)
                    if e is None:
                        dropped += 1
                    else:
                        ap(e)
        if x is not None:
            for ename, ts, eattrs in x[0]:
                R.event_entries(ename, ts, eattrs, parts)
            for lctx, lattrs in x[1]:
                raw = lctx.raw
                R.link_entries(raw[0:16], raw[16:24],
                               raw[24] | R.FLAG_HAS_IS_REMOTE | (R.FLAG_IS_REMOTE if raw[25] else 0),
                               lctx.tracestate, lattrs, parts)
            dropped_events, dropped_links = x[3], x[4]
        else:
            dropped_events = dropped_links = 0
        body = b"".join(parts)
        total = R.HEADER_LEN + len(body)
        if parent is None:
            parent_id = _ZERO8
            flags = ctx[24] | 0x100  # parent remoteness known (no parent)
        else:
            parent_id = parent[16:24]
            flags = ctx[24] | (0x300 if parent[25] else 0x100)
        if total > R.RECORD_MAX:
            body, dropped, dropped_events, dropped_links = _shrink(self)
            total = R.HEADER_LEN + len(body)
        return R.pack_header(total, self._kind, self._status, flags, ctx[0:16], ctx[16:24],
                             parent_id, self._start, end, dropped, dropped_events,
                             dropped_links) + body

    def __enter__(self):
        if self._token is _ACTIVATE:
            self._token = _cur_set(self)
        return self

    def __exit__(self, et, ev, tb):
        token = self._token
        if token is not None and token is not _ACTIVATE:
            self._token = None
            try:
                _cur_reset(token)
            except ValueError:
                # Exited in another context than it was entered in (e.g. a
                # generator resumed elsewhere): leave that context alone.
                pass
        if ev is not None and isinstance(ev, Exception):
            self.record_exception(ev)
            self.set_status(2, _describe(ev))
        self.end()
        return False

    async def __aenter__(self):
        return self.__enter__()

    async def __aexit__(self, et, ev, tb):
        return self.__exit__(et, ev, tb)

    def __call__(self, fn):
        """start_as_current_span used as a decorator: this span, made when the
        decorator was, is dropped unrecorded; each call gets its own."""
        self._ended = True
        x = self._x
        template = _Scope(self._scope, self._name, _CURRENT_PARENT, self._kind,
                          dict(self._attrs) or None, x[1] if x else None, None, True, True, True)
        return template(fn)

    def __repr__(self):
        return f"Span({self._name!r}, {SpanContext(self._ctx, self._tracestate)!r})"


_NATIVE_INTERFACE = 7  # the INTERFACE constant of the _native.c this module speaks to


def _load_native():
    """The native packer (otelagent/_native.c, built when the package is
    installed with a C compiler at hand), bound to the functions of the copy
    of the library this package loaded; None when it is
    absent or turned off by OTELAGENT_PYTHON_NATIVE=0."""
    if os.environ.get("OTELAGENT_PYTHON_NATIVE", "1").strip().lower() in ("0", "false", "no",
                                                                          "off"):
        return None
    try:
        from . import _native
        if getattr(_native, "INTERFACE", None) != _NATIVE_INTERFACE:
            raise ImportError(f"{_native.__file__} is a build of another _native.c")
        if not _native.bind(R.Packed, *(ctypes.cast(fn, ctypes.c_void_p).value for fn in (
                _record_span, _ctx_new, _ffi.traceparent_parse, _ffi.xray_parse))):
            return None  # another interpreter of this process has it (see _native.c)
    except ImportError:
        return None
    except Exception as e:  # never a reason for the host's import to fail
        import logging
        logging.getLogger("otelagent").warning(
            "otelagent: the native packer cannot be used (%s); packing in Python", e)
        return None
    return _native


native = _load_native()  # the module, or None
_native_record = native.record if native else None
_native_context = native.context if native else None
NATIVE = native is not None  # which packer serves spans (for stats and tests)

_ACTIVATE = object()
_names = {}  # span name -> its packed NAME entry
_Packed = R.Packed
_packers = R._attr_packers
_attr_packers = R.attr_packers
_entry = R.entry
_INT_MIN, _INT_MAX = R._INT_MIN, R._INT_MAX
_MAX_CHARS = R.MAX_VALUE_CHARS


def _shrink(span):
    """Rare path: the packed span is over the record maximum. Keeps the name,
    scope, tracestate, status message and as many attributes as fit; drops
    events and links (all counted). Returns (body, dropped attributes,
    dropped events, dropped links)."""
    keep = [span._scope, R.string_entry(R.TAG_NAME, span._name)]
    if span._tracestate:
        keep.append(R.string_entry(R.TAG_TRACESTATE, span._tracestate))
    x = span._x
    if x is not None and x[2]:
        keep.append(R.string_entry(R.TAG_STATUS_MESSAGE, x[2]))
    entries = []
    dropped = R.attrs_entries(R.TAG_ATTR, span._attrs, entries)
    size = sum(len(p) for p in keep)
    budget = R.RECORD_MAX - R.HEADER_LEN
    for e in entries:
        if size + len(e) > budget:
            dropped += 1
            continue
        keep.append(e)
        size += len(e)
    return (b"".join(keep), dropped, x[3] + len(x[0]) if x else 0,
            x[4] + len(x[1]) if x else 0)


def _parent_of(parent):
    """(raw context or None, tracestate) of an explicit or current parent."""
    if parent is None:
        return None, ""
    ctx = getattr(parent, "_ctx", None)
    if ctx is None:
        if isinstance(parent, SpanContext):
            return parent.raw, parent.tracestate
        from . import _otel_bridge  # an OpenTelemetry API span or context
        return _otel_bridge.parent_of(parent)
    return ctx, parent._tracestate


_CURRENT_PARENT = object()  # "use the current span" (None means: a new root)

# The classes of new recording and non-recording spans; otelagent.otel
# replaces them with subclasses of the OpenTelemetry API's Span.
_classes = [Span, NonRecordingSpan]


# Ids and the sampling decision made in Python (no crossing) when the sampler
# makes that trivial: always_on, or parentbased_always_on with no parent or a
# parent that is sampled or left the decision open; and random ids. Set by
# otelagent.start() from the settings the library was started with; every
# other case asks the library (otelagent_span_context_new), which stays the
# one sampler. Python's random module is reseeded in a forked child.
_fast = [False, False]  # [ids in Python, sampler is parent-based]
_sampled_out = [0]  # spans sampled out by the Python side
_ROOT_TAIL = b"\x01" + bytes(7)  # flags sampled, not remote, decided
_ZERO7 = bytes(7)
_ZERO16 = bytes(16)


# How many times this process's ancestry forked since the import: a span
# started before a fork is open in both processes, and a child that leaves the
# forking thread's `with` block ends its copy, which must not be sent again
# (same ids, a different end). Only os.fork() and what calls Python's fork
# hooks count; a C fork that does not call PyOS_AfterFork_Child (uWSGI by
# default) is not seen, and uWSGI forks from its master loop, never inside a
# span of the forking thread.
_forks = 0


def _after_fork_in_child():
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_after_fork_in_child)


def set_fast_path(enabled, parent_based=True):
    _fast[0] = enabled
    _fast[1] = parent_based


def _make_span(scope, name, parent, kind, attributes, links, start_time):
    if parent is _CURRENT_PARENT:
        parent = _cur_get()
    if parent is None:
        pctx, ts = None, ""
    else:
        pctx = getattr(parent, "_ctx", None)
        if pctx is not None:
            ts = parent._tracestate
        else:
            pctx, ts = _parent_of(parent)
        if pctx is not None and (type(pctx) is not bytes or len(pctx) != 32):
            pctx = _as_context(pctx)
        if pctx is not None and pctx[16:24] == _ZERO8:
            pctx = None  # an invalid parent: a new root
    ctx = None
    if _native_context is not None:
        # One C call to otelagent_span_context_new(): ids and the library's
        # sampler, cheaper than the Python fast path below.
        ctx = _native_context(pctx)
        if ctx is None:
            return _classes[1](pctx or _INVALID_CTX, ts)
        if not ctx[24] & 1:
            return _classes[1](ctx, ts)
    elif _fast[0]:
        if pctx is None:
            ctx = _rand(192).to_bytes(24, "big") + _ROOT_TAIL
            if ctx[0:16] == _ZERO16 or ctx[16:24] == _ZERO8:  # 2^-64: draw again
                ctx = None
        elif pctx[24] & 1 or pctx[26] == 1 or not _fast[1]:
            ctx = (pctx[0:16] + (_rand(64) or 1).to_bytes(8, "big")
                   + bytes((pctx[24] | 1,)) + _ZERO7)
        else:
            # Parent-based, and the parent decided not to sample: so do we
            # (counted here, added to the library's count by stats()).
            _sampled_out[0] += 1
            return _classes[1](pctx[0:16] + (_rand(64) or 1).to_bytes(8, "big")
                               + bytes((pctx[24] & 0xFE,)) + _ZERO7, ts)
    if ctx is None:
        out = _buffers.ctx
        if _ctx_new(pctx, out) != 0:
            # Not started or disabled: nothing records; the parent's context
            # (if any) still propagates.
            return _classes[1](pctx or _INVALID_CTX, ts)
        ctx = out.raw
        if not ctx[24] & 1:
            return _classes[1](ctx, ts)
    cls = _classes[0]
    span = cls.__new__(cls)
    span._name = name
    span._ctx = ctx
    span._parent = pctx
    span._tracestate = ts
    span._kind = kind
    span._start = start_time or _time_ns()
    span._scope = scope
    span._attrs = dict(attributes) if attributes else {}
    span._status = 0
    span._ended = False
    span._x = None
    span._token = None
    span._forks = _forks
    if links:
        span._x = [[], [(_link_ctx(c), a) for c, a in links], None, 0, 0]
    return span


def _as_context(raw):
    """A caller's raw parent context (a bytearray, a memoryview...) as the
    32-byte bytes every packer expects; None (a new root) when it is not one."""
    try:
        b = bytes(raw)
    except TypeError:
        return None
    return b if len(b) == 32 else None


def _link_ctx(c):
    if isinstance(c, SpanContext):
        return c
    if hasattr(c, "_ctx"):
        return SpanContext(c._ctx, c._tracestate)
    from . import _otel_bridge
    raw, ts = _otel_bridge.parent_of(c)
    return SpanContext(raw or _INVALID_CTX, ts)


def _normalize_links(links):
    """Accepts SpanContexts, spans, (context, attributes) pairs or objects with
    .context/.attributes (OpenTelemetry Link)."""
    out = []
    for link in links:
        if isinstance(link, tuple):
            out.append(link)
        elif hasattr(link, "context") and hasattr(link, "attributes") and not hasattr(link, "_ctx"):
            out.append((link.context, link.attributes))
        else:
            out.append((link, None))
    return out


class _Scope:
    """What start_as_current_span returns: a context manager (sync and async)
    that starts a span, makes it current, and ends it; also a decorator."""

    __slots__ = ("_scope", "_name", "_parent", "_kind", "_attrs", "_links", "_start",
                 "_end_on_exit", "_record_exception", "_set_status_on_exception", "_span",
                 "_token", "_ready")

    def __init__(self, scope, name, parent, kind, attributes, links, start_time, end_on_exit,
                 record_exception, set_status_on_exception, ready=None):
        self._ready = ready  # a span already made for the first __enter__
        self._scope = scope
        self._name = name
        self._parent = parent
        self._kind = kind
        self._attrs = attributes
        self._links = links
        self._start = start_time
        self._end_on_exit = end_on_exit
        self._record_exception = record_exception
        self._set_status_on_exception = set_status_on_exception

    def __enter__(self):
        span = self._ready
        if span is None:
            span = _make_span(self._scope, self._name, self._parent, self._kind, self._attrs,
                              self._links, self._start)
        else:
            self._ready = None
        self._span = span
        self._token = _cur_set(span)
        return span

    def __exit__(self, et, ev, tb):
        span = self._span
        try:
            _cur_reset(self._token)
        except ValueError:
            # Exited in another context than it was entered in (e.g. a
            # generator resumed elsewhere): leave that context alone.
            pass
        if ev is not None and isinstance(ev, Exception) and span._records:
            if self._record_exception:
                span.record_exception(ev)
            if self._set_status_on_exception:
                span.set_status(2, _describe(ev))
        if self._end_on_exit:
            span.end()
        return False

    async def __aenter__(self):
        return self.__enter__()

    async def __aexit__(self, et, ev, tb):
        return self.__exit__(et, ev, tb)

    def _fresh(self):
        return _Scope(self._scope, self._name, self._parent, self._kind, self._attrs,
                      self._links, self._start, self._end_on_exit, self._record_exception,
                      self._set_status_on_exception)

    def __call__(self, fn):
        """Decorator: each call of `fn` runs in a new span (awaited for
        coroutine functions, iterated for async generators)."""
        template = self
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args, **kwargs):
                with template._fresh():
                    return await fn(*args, **kwargs)
            return async_wrapper
        if inspect.isasyncgenfunction(fn):
            @functools.wraps(fn)
            async def agen_wrapper(*args, **kwargs):
                with template._fresh():
                    async for item in fn(*args, **kwargs):
                        yield item
            return agen_wrapper

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with template._fresh():
                return fn(*args, **kwargs)
        return wrapper


class Tracer:
    """Creates spans under one instrumentation scope (name, version)."""

    __slots__ = ("_scope", "name", "version")

    def __init__(self, name="otelagent", version=None):
        self.name = name
        self.version = version
        scope = R.string_entry(R.TAG_SCOPE_NAME, name or "")
        if version:
            scope += R.string_entry(R.TAG_SCOPE_VERSION, version)
        self._scope = scope

    def start_span(self, name, context=_CURRENT_PARENT, kind=1, attributes=None,
                   links=None, start_time=None, parent=_CURRENT_PARENT):
        """Starts a span (not made current). `parent` (or `context`): a span, a
        SpanContext, None for a new root; by default the current span."""
        p = parent if parent is not _CURRENT_PARENT else context
        return _make_span(self._scope, name, p, kind, attributes,
                          _normalize_links(links) if links else None, start_time)

    def start_as_current_span(self, name, context=_CURRENT_PARENT, kind=1,
                              attributes=None, links=None, start_time=None, end_on_exit=True,
                              record_exception=True, set_status_on_exception=True,
                              parent=_CURRENT_PARENT):
        """A context manager (with / async with) and decorator: starts a span,
        makes it current, ends it on exit; an exception escaping it is recorded
        as an event and sets the status to ERROR."""
        p = parent if parent is not _CURRENT_PARENT else context
        if links:
            links = _normalize_links(links)
        if end_on_exit and record_exception and set_status_on_exception:
            # The common case, made cheap: the span itself is the context
            # manager, made current when entered.
            span = _make_span(self._scope, name, p, kind, attributes, links, start_time)
            if span._records:
                span._token = _ACTIVATE
                return span
            return _Scope(self._scope, name, p, kind, attributes, links, start_time, True, True,
                          True, span)
        return _Scope(self._scope, name, p, kind, attributes, links, start_time, end_on_exit,
                      record_exception, set_status_on_exception)


class use_span:
    """Makes `span` current inside a with block; ends it on exit only when
    end_on_exit is true."""

    __slots__ = ("_span", "_end", "_token")

    def __init__(self, span, end_on_exit=False):
        self._span = span
        self._end = end_on_exit

    def __enter__(self):
        self._token = _cur_set(self._span)
        return self._span

    def __exit__(self, et, ev, tb):
        try:
            _cur_reset(self._token)
        except ValueError:
            pass
        if ev is not None and isinstance(ev, Exception) and self._span.is_recording():
            self._span.record_exception(ev)
            self._span.set_status(StatusCode.ERROR, _describe(ev))
        if self._end:
            self._span.end()
        return False


def get_current_span():
    """The current span (INVALID_SPAN when there is none)."""
    span = _cur_get()
    return INVALID_SPAN if span is None else span


def attach(span):
    """Makes `span` current; returns a token for detach()."""
    return _cur_set(span)


def detach(token):
    _cur_reset(token)


if native is not None:
    # The common `with start_as_current_span(...)` in C (_native.c,
    # bind_spans): Span's __enter__, __exit__ and set_attribute and
    # Tracer.start_as_current_span, a Python frame fewer each. The Python
    # methods serve the pure-Python packer, and the C ones hand them every
    # case they do not take.
    _span_methods = native.bind_spans(Span, NonRecordingSpan, Tracer, _Scope, _current,
                                      globals())
    if _span_methods is not None:
        (Span.set_attribute, Span.__enter__, Span.__exit__,
         Tracer.start_as_current_span) = _span_methods

_default_tracer = Tracer("otelagent")


def get_tracer(name="otelagent", version=None):
    return Tracer(name, version)


def start_span(name, **kwargs):
    return _default_tracer.start_span(name, **kwargs)


def start_as_current_span(name, **kwargs):
    return _default_tracer.start_as_current_span(name, **kwargs)
