"""The native packer (otelagent/_native.c) against the Python one
(Span._pack): for every span the native packer takes, both write the same
bytes; every span it leaves over (other value types, long strings, lone
surrogates, too many attributes, an oversized record) it leaves whole to the
Python packer, recording nothing itself. And the spans it records arrive."""

import enum
import random
import uuid

import pytest

from conftest import attrs

_native = pytest.importorskip("otelagent._native")


@pytest.fixture(autouse=True)
def bound(agent):
    """pack() needs the Packed class; bound here also when the package runs
    with the native packer turned off (OTELAGENT_PYTHON_NATIVE=0)."""
    import ctypes

    from otelagent import _ffi, _record
    _native.bind(_record.Packed, *(ctypes.cast(fn, ctypes.c_void_p).value for fn in (
        _ffi.record_span, _ffi.span_context_new, _ffi.traceparent_parse, _ffi.xray_parse)))


def _args(span, end):
    return (span._scope, span._name, span._ctx, span._parent, span._tracestate, span._kind,
            span._status, span._start, end, span._attrs)


def _python_record(span, end):
    return span._pack(end)


def _span(agent, name="op", attributes=None, parent=None, tracestate=""):
    from otelagent import SpanContext
    tracer = agent.get_tracer("native-test", "3.1")
    p = None
    if parent is not None:
        p = SpanContext(parent, tracestate)
    s = tracer.start_span(name, parent=p, kind=2, attributes=attributes)
    assert s.is_recording()
    return s


class Color(enum.IntEnum):
    RED = 1


def _random_value(rng):
    kind = rng.randrange(8)
    if kind == 0:
        return "".join(rng.choice("abcé€😀 \x00\n") for _ in range(rng.randrange(0, 40)))
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.randrange(-(1 << 63), 1 << 63)
    if kind == 3:
        return rng.uniform(-1e300, 1e300)
    if kind == 4:
        return float("nan") if rng.random() < 0.5 else float("-inf")
    if kind == 5:
        return rng.randrange(-5, 5)
    if kind == 6:
        return ""
    return "x" * rng.randrange(4090, 4097)  # either side of the 4096-character cut


def test_native_and_python_packers_write_the_same_records(agent):
    from otelagent._record import PackedCache
    rng = random.Random(1234)
    cache = PackedCache("http.route")
    parent = bytes.fromhex(uuid.uuid4().hex) + bytes.fromhex("00f067aa0ba902b7") + b"\x01\x01" \
        + bytes(6)
    compared = 0
    for i in range(400):
        attributes = {}
        for _ in range(rng.randrange(0, 12)):
            key = rng.choice(["k", "http.method", "é.key", "", "k" * 300, f"key{i}"])
            attributes[key] = _random_value(rng)
        if rng.random() < 0.3:
            attributes["http.route"] = cache(rng.choice(["/a", "/b/{id}"]))
        s = _span(agent, rng.choice(["op", "GET /api/users/{user_id}", "ñ" * 5000, ""]),
                  attributes, parent if i % 2 else None, "k=v,a=b" if i % 3 == 0 else "")
        s.set_status(rng.choice([0, 1, 2]))
        end = s._start + rng.randrange(1, 10**9)
        native = _native.pack(*_args(s, end))
        python = _python_record(s, end)
        s._ended = True
        if native is not None:
            assert native == python, (i, attributes)
            compared += 1
    assert compared > 200  # most spans are the native packer's


@pytest.mark.parametrize("value", [
    Color.RED,                    # an int subclass: its base value, by the Python packer
    1 << 64,                      # out of int64: dropped and counted by the Python packer
    "lone \ud800 surrogate",      # encoded with surrogatepass by the Python packer
    "y" * 4097,                   # cut by characters by the Python packer
    [1, 2, 3],                    # arrays
    b"bytes",
    None,                         # invalid: dropped and counted
])
def test_values_outside_the_common_types_are_left_to_the_python_packer(agent, value):
    s = _span(agent, attributes={"a": "b", "v": value})
    assert _native.pack(*_args(s, s._start + 1)) is None
    assert _native.record(*_args(s, s._start + 1)) is None
    s._ended = True


def test_spans_the_native_packer_cannot_take_are_left_whole(agent):
    many = _span(agent, attributes={f"k{i}": i for i in range(129)})
    huge = _span(agent, attributes={f"k{i}": "z" * 4000 for i in range(20)})  # > 64 KiB
    odd_name = _span(agent, name="\udc80")
    for s in (many, huge, odd_name):
        assert _native.pack(*_args(s, s._start + 1)) is None
        s._ended = True


def test_times_over_int64_pack_as_the_python_packer_does(agent):
    """Times are unsigned 64-bit: values past int64 (the C packer's quick
    conversion stops there) and an int subclass pack as in Python."""
    s = _span(agent)
    for start, end in ((s._start, 1 << 63), (s._start, (1 << 64) - 1),
                       ((1 << 63) + 5, (1 << 64) - 1), (True, 2)):
        args = list(_args(s, end))
        args[7] = start
        s._start = start
        assert _native.pack(*args) == s._pack(end)
    s._ended = True


def test_wrong_arguments_fall_back_or_raise_instead_of_crashing(agent):
    s = _span(agent)
    good = list(_args(s, s._start + 1))
    for index, bad in ((0, "scope"), (2, b"short"), (3, b"x" * 31), (4, None), (5, "x"),
                       (6, -1), (7, None), (7, -1), (8, 1 << 70), (8, 1 << 64), (9, [])):
        args = list(good)
        args[index] = bad
        assert _native.pack(*args) is None  # left to the Python packer
    with pytest.raises(TypeError):
        _native.pack(*good[:9])
    with pytest.raises(TypeError):
        _native.context(b"too short")
    s._ended = True


def test_native_records_arrive(agent, exported):
    from otelagent import _tracing
    if not _tracing.NATIVE:
        pytest.skip("the native packer is turned off (OTELAGENT_PYTHON_NATIVE=0)")
    tracer = agent.get_tracer("native-test", "3.1")
    name = "native-" + uuid.uuid4().hex[:8]
    with tracer.start_as_current_span(name, kind=2) as outer:
        outer.set_attribute("s", "text é")
        outer.set_attribute("i", -7)
        outer.set_attribute("f", 0.25)
        outer.set_attribute("b", True)
        with tracer.start_as_current_span(name + "-child") as inner:
            inner.set_attribute("n", 1)
    found = exported.wait([name, name + "-child"], outer.context.trace_id.to_bytes(16, "big"))
    o, c = found[name][0], found[name + "-child"][0]
    assert attrs(o) == {"s": "text é", "i": -7, "f": 0.25, "b": True}
    assert c.parent_span_id == o.span_id and c.trace_id == o.trace_id
    assert o.kind == 2  # SPAN_KIND_SERVER


@pytest.mark.parametrize("value", [
    b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
    b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-extra",
    b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    b"", b"\x00" * 600, b"garbage",
])
def test_native_traceparent_parse_is_the_library_one(agent, value):
    from otelagent import _ffi
    out = _ffi.buffers.ctx
    expected = out.raw if _ffi.traceparent_parse(value, len(value), out) == 0 else None
    assert _native.traceparent(value) == expected


@pytest.mark.parametrize("value", [
    b"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    b"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?",
    b"Root=1-5759e988-bd862e3fe1be46a994272793",
    b"Root=;Parent=;", b"", b"\xff" * 9000,
])
def test_native_xray_parse_is_the_library_one(agent, value):
    from otelagent import _ffi
    out = _ffi.buffers.ctx
    expected = out.raw if _ffi.xray_parse(value, len(value), out) == 0 else None
    assert _native.xray(value) == expected
    with pytest.raises(TypeError):
        _native.xray(value.decode("latin-1"))


def test_a_record_reentered_from_inside_the_library_leaves_the_buffer_alone(agent):
    """otelagent_record_span() may log, and a Python log handler may end a
    span: the inner span must not overwrite the record the library is still
    reading (the inner one goes to the Python packer instead)."""
    import ctypes

    from otelagent import _ffi, _record
    outer = _span(agent, "outer", {"k": "outer-value", "n": 1})
    inner = _span(agent, "inner", {"k": "inner-value"})
    end = outer._start + 5
    expected = outer._pack(end)
    seen = []

    @ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t)
    def record(ptr, n):
        # As a log handler would: another span ends inside the call.
        seen.append(_native.record(*_args(inner, inner._start + 1)))
        seen.append(ctypes.string_at(ptr, n))
        return 0

    addr = ctypes.cast(record, ctypes.c_void_p).value
    others = [ctypes.cast(fn, ctypes.c_void_p).value for fn in (
        _ffi.span_context_new, _ffi.traceparent_parse, _ffi.xray_parse)]
    try:
        _native.bind(_record.Packed, addr, *others)
        assert _native.record(*_args(outer, end)) == 0
    finally:
        _native.bind(_record.Packed, ctypes.cast(_ffi.record_span, ctypes.c_void_p).value,
                     *others)
    assert seen[0] is None  # busy: the Python packer takes the inner span
    assert seen[1] == expected  # the outer record, intact
    outer._ended = inner._ended = True


def test_unexpected_span_field_types_fall_back_instead_of_raising(agent):
    from otelagent import SpanContext
    tracer = agent.get_tracer("native-test")
    raw = bytes.fromhex(uuid.uuid4().hex) + bytes.fromhex("00f067aa0ba902b7") + b"\x01" + bytes(7)
    # A tracestate that is not a str, a parent context held in a bytearray.
    for parent in (SpanContext(raw, None), SpanContext(bytearray(raw), "")):
        s = tracer.start_span("odd", parent=parent)
        assert s.is_recording() and s._parent == raw
        assert _native.pack(*_args(s, s._start + 1)) in (None, s._pack(s._start + 1))
        s.end()  # must not raise into the host
    assert _native.INTERFACE == __import__("otelagent._tracing").\
        _tracing._NATIVE_INTERFACE
