"""The packer (otelagent/_record.py) against the library's own span writer:
the same span made through the span-handle calls and through the Python
API must export the same OTLP span."""

import ctypes
import uuid

from conftest import attrs


def _c_span(ffi, name, parent_ctx):
    """A span made by the library's span calls, child of `parent_ctx`."""
    class Options(ctypes.Structure):
        _fields_ = [("struct_size", ctypes.c_uint32), ("kind", ctypes.c_int32),
                    ("parent", ctypes.c_char_p), ("scope_name", ffi.Str),
                    ("scope_version", ffi.Str), ("links", ctypes.c_void_p),
                    ("link_count", ctypes.c_size_t), ("attrs", ctypes.c_void_p),
                    ("attr_count", ctypes.c_size_t), ("start_time_unix_nano", ctypes.c_uint64),
                    ("parent_tracestate", ffi.Str)]
    opts = Options(struct_size=ctypes.sizeof(Options), kind=3, parent=parent_ctx,
                   scope_name=ffi.Str(b"packer-test", 11), scope_version=ffi.Str(b"1.0", 3),
                   parent_tracestate=ffi.Str(b"k=v", 3))
    handle = ctypes.c_void_p()
    n = name.encode()
    assert ffi.span_start(n, len(n), ctypes.cast(ctypes.pointer(opts), ctypes.c_void_p),
                          ctypes.byref(handle)) == 0
    h = handle.value
    assert ffi.span_set_str(h, b"s", 1, b"text \xc3\xa9", 7) == 0
    assert ffi.span_set_int64(h, b"i", 1, -7) == 0
    assert ffi.span_set_double(h, b"f", 1, 0.25) == 0
    assert ffi.span_set_bool(h, b"b", 1, 1) == 0
    arr = (ctypes.c_int64 * 3)(1, 2, 3)
    a = ffi.Attr(key=b"ints", key_len=4, type=8)
    a.value.array.items = ctypes.cast(arr, ctypes.c_void_p)
    a.value.array.count = 3
    assert ffi.span_set_attr(h, ctypes.byref(a)) == 0
    ev = ffi.Attr(key=b"n", key_len=1, type=3)
    ev.value.i64 = 5
    assert ffi.span_add_event(h, b"ev", 2, 0, ctypes.byref(ev), 1) == 0
    assert ffi.span_record_exception(h, b"ValueError", 10, b"bad", 3, b"trace", 5, 0) == 0
    assert ffi.span_set_status(h, 2, b"broken", 6) == 0
    buf = ctypes.create_string_buffer(64)
    written = ctypes.c_size_t()
    assert ffi.span_get_tracestate(h, buf, 64, ctypes.byref(written)) == 0
    assert buf.raw[:written.value] == b"k=v"
    assert ffi.span_end(h, 0) == 0
    assert ffi.span_end(h, 0) == -11  # ENDED: the handle is a validated token


def test_packed_span_exports_like_the_library_span(agent, exported):
    from otelagent import _ffi, SpanContext
    tracer = agent.get_tracer("packer-test", "1.0")
    parent_raw = bytes.fromhex(uuid.uuid4().hex) + bytes.fromhex("00f067aa0ba902b7") + b"\x01" \
        + bytes(7)
    c_name, py_name = "c-" + uuid.uuid4().hex[:6], "py-" + uuid.uuid4().hex[:6]
    _c_span(_ffi, c_name, parent_raw)
    s = tracer.start_span(py_name, parent=SpanContext(parent_raw, "k=v"), kind=3)
    s.set_attribute("s", "text é")
    s.set_attribute("i", -7)
    s.set_attribute("f", 0.25)
    s.set_attribute("b", True)
    s.set_attribute("ints", [1, 2, 3])
    s.add_event("ev", {"n": 5})
    s.add_event("exception", {"exception.type": "ValueError", "exception.message": "bad",
                              "exception.stacktrace": "trace"})
    s.set_status(2, "broken")
    s.end()
    got = exported.wait([c_name, py_name], parent_raw[0:16])
    c, p = got[c_name][0], got[py_name][0]
    assert attrs(c) == attrs(p)
    assert [(e.name, attrs(e)) for e in c.events] == [(e.name, attrs(e)) for e in p.events]
    for field in ("kind", "trace_state", "parent_span_id", "flags", "dropped_attributes_count"):
        assert getattr(c, field) == getattr(p, field), field
    assert (c.status.code, c.status.message) == (p.status.code, p.status.message)
    scopes = {}
    for r in exported.sink.requests:
        if r.request:
            for rs in r.request.resource_spans:
                for ss in rs.scope_spans:
                    for sp in ss.spans:
                        scopes[sp.name] = (ss.scope.name, ss.scope.version)
    assert scopes[c_name] == scopes[py_name] == ("packer-test", "1.0")
