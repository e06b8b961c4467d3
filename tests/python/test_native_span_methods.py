"""The C methods of the common span (_native.c, bind_spans):
Tracer.start_as_current_span and Span's __enter__, __exit__ and
set_attribute. They must behave as the Python methods they stand in for (the
whole API suite runs with and without them); these are the cases a review
found them to differ in. Every test runs in both modes."""

import inspect
import os
import subprocess
import sys

import pytest

from conftest import attrs


def test_the_c_methods_are_in_place_with_the_native_module(agent):
    from otelagent import _tracing as T
    methods = (T.Tracer.__dict__["start_as_current_span"], T.Span.__dict__["__enter__"],
               T.Span.__dict__["__exit__"], T.Span.__dict__["set_attribute"])
    if T.native is None:
        assert all(inspect.isfunction(m) for m in methods)
    else:
        assert all(type(m).__name__ == "NativeMethod" for m in methods)
        assert all(inspect.isfunction(m.__wrapped__) for m in methods)


def test_arguments_by_keyword(agent, exported):
    """set_attribute(key=..., value=...) and __exit__ by keyword, as the
    Python methods take them (the C ones raised TypeError), also through the
    OpenTelemetry API's signature."""
    import otelagent
    tracer = otelagent.get_tracer("kw")
    span = tracer.start_as_current_span("kw")
    span.__enter__()
    span.set_attribute(key="a", value=1)
    span.set_attribute("b", value=2)
    assert span.__exit__(et=None, ev=None, tb=None) is False
    got = exported.wait(["kw"], span._ctx[0:16])["kw"][0]
    assert attrs(got) == {"a": 1, "b": 2}
    assert otelagent.get_current_span() is otelagent.INVALID_SPAN


def test_signatures_and_docs_are_the_python_methods(agent):
    from otelagent import _tracing as T
    tracer = T.Tracer("sig")
    for obj, name in ((T.Tracer, "start_as_current_span"), (T.Span, "set_attribute"),
                      (T.Span, "__exit__"), (T.Span, "__enter__")):
        method = obj.__dict__[name]
        python = getattr(method, "__wrapped__", method)
        assert inspect.signature(method) == inspect.signature(python)
        assert method.__doc__ == python.__doc__ and method.__name__ == name
    assert (str(inspect.signature(tracer.start_as_current_span))
            == str(inspect.signature(T.Tracer.start_as_current_span)).replace("(self, ", "("))


def test_replaced_module_functions_are_called(agent):
    """A spy on the sampler call, the packer or Span.end (a test's, an
    instrumentation wrapper's) sees the span as with the Python methods:
    the C ones stand aside when a function they would bypass is replaced."""
    from otelagent import _tracing as T
    calls = []
    saved = T._native_context, T._native_record, T.Span.end
    real_ctx, real_rec, real_end = saved

    def end_spy(self, end_time=None):
        calls.append("end")
        return real_end(self, end_time)
    try:
        if real_ctx is not None:
            T._native_context = lambda p: calls.append("context") or real_ctx(p)
            T._native_record = lambda *a: calls.append("record") or real_rec(*a)
        T.Span.end = end_spy
        with T.Tracer("spy").start_as_current_span("one", attributes={"a": 1}):
            pass
    finally:
        T._native_context, T._native_record = saved[:2]
        T.Span.end = real_end
    assert calls == (["end"] if real_ctx is None else ["context", "end", "record"])


# Python code run while an attribute is stored (a key's __eq__ on a hash
# collision) or the attributes copied replaces the containers the C code
# works on: it must hold them (a borrowed dict was freed while being written:
# a crash, a hang, or a write into an unrelated dict).
REPLACED_WHILE_STORING = r"""
import gc
import otelagent
from otelagent import _tracing as T
otelagent.start({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})  # spans record
tracer = otelagent.get_tracer("r")

class Key:
    def __init__(self, span=None):
        self.span = span
    def __hash__(self):
        return 42
    def __eq__(self, other):
        if self.span is not None:
            span, self.span = self.span, None
            span._attrs = {}
            gc.collect()
            global junk
            junk = [{"x%d" % i: i} for i in range(200)]
        return False

with tracer.start_as_current_span("s") as span:
    span.set_attribute(Key(), 1)
    for _ in range(3):
        span.set_attribute(Key(span), 2)
print(sum(isinstance(k, Key) for d in junk for k in d))

parent_ctx = bytes(range(1, 25)) + b"\x01" + bytes(7)
tracestate = "".join(["vendor=", "abc"])
token = T.attach(T.NonRecordingSpan(parent_ctx, tracestate))
del tracestate
current = otelagent.get_current_span()

class Copied:
    armed = False
    def __hash__(self):
        return 7
    def __eq__(self, other):
        if Copied.armed:
            Copied.armed = False
            current._tracestate = "replaced"
            current._ctx = bytes(32)
            tracer._scope = b"x"
            gc.collect()
            global filler
            filler = ["J%06d" % i for i in range(2000)] + [bytes([i % 256]) * 32 for i in range(2000)]
        return False

attributes = {Copied(): i for i in range(6)}
for _ in range(4):  # deleted entries: the copy compares keys
    del attributes[next(iter(attributes))]
Copied.armed = True
span = tracer.start_as_current_span("t", attributes=attributes)
print(span._tracestate, span._parent == parent_ctx, span._scope != b"x")
"""


def test_containers_replaced_while_the_c_code_works_on_them():
    env = dict(os.environ, PYTHONMALLOC="debug")
    p = subprocess.run([sys.executable, "-c", REPLACED_WHILE_STORING], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.splitlines() == ["0", "vendor=abc True True"]


@pytest.mark.parametrize("mode", ["native", "pure"])
def test_the_per_span_bench_floor_still_captures_the_python_record(mode):
    """bench.py's ctypes floor replaces _tracing._native_record with None to
    capture the Python packer's record: the C __exit__ must leave such a
    span to the Python methods."""
    code = ("import otelagent\nfrom otelagent import _ffi, _tracing as T\n"
            "otelagent.start({'OTEL_EXPORTER_OTLP_ENDPOINT': 'http://127.0.0.1:9'})\n"
            "got = []\n_ffi.record_span = lambda rec, n: got.append(rec)\n"
            "T._record_span = _ffi.record_span\nT._native_record = None\n"
            "with otelagent.start_as_current_span('op') as s:\n"
            "    s.set_attribute('k', 'v')\nprint(len(got))\n")
    env = dict(os.environ, OTELAGENT_PYTHON_NATIVE="1" if mode == "native" else "0")
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split() == ["1"]


def test_a_replaced_clock_is_read(agent, exported):
    """A test's frozen clock (freezegun replaces _tracing._time_ns): spans
    started and ended by the C methods, and server spans, read it as the
    Python methods do (they read the real clock: negative durations)."""
    from otelagent import _tracing as T
    from otelagent.integrations.wsgi import SPAN_KEY, OtelAgentWSGIMiddleware
    real = T._time_ns
    T._time_ns = lambda: 1326542400000000000
    try:
        tracer = T.Tracer("clock")
        with tracer.start_as_current_span("with") as a:
            pass
        b = tracer.start_as_current_span("explicit")
        b.end()
        c = tracer.start_span("start_span")
        with c:
            pass
        env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.url_scheme": "http",
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
               "HTTP_TRACEPARENT": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
        OtelAgentWSGIMiddleware(lambda e, s: s("200 OK", []) or [b"x"])(env, lambda *a: None)
    finally:
        T._time_ns = real
    for name, span in (("with", a), ("explicit", b), ("start_span", c), ("GET", env[SPAN_KEY])):
        got = exported.wait([name], span._ctx[0:16])[name][0]
        assert got.start_time_unix_nano == got.end_time_unix_nano == 1326542400000000000


def test_changes_between_spans_are_seen_and_undone(agent, exported):
    """The C methods read _tracing's functions, clock and fork counter once
    per change of the module's globals (their dictionary's version or a
    watcher), not per span: a replacement made between two spans is seen by
    the second, and once it is undone the C methods take the spans again."""
    import otelagent
    from otelagent import _tracing as T
    tracer = T.Tracer("between")

    def python_frames(fn):
        """The _tracing functions fn runs in Python (the C methods run none)."""
        seen = []

        def profile(frame, event, arg):
            if event == "call" and frame.f_code.co_filename == T.__file__:
                seen.append(frame.f_code.co_name)
        sys.setprofile(profile)
        try:
            fn()
        finally:
            sys.setprofile(None)
        return seen

    def span():
        with tracer.start_as_current_span("between", attributes={"k": 1}):
            pass
    native = T.native is not None
    assert (python_frames(span) == []) == native
    real_get, real_clock, forks = T._cur_get, T._time_ns, T._forks
    calls = []
    T._cur_get = lambda: calls.append(1) or real_get()
    try:
        frames = python_frames(span)
    finally:
        T._cur_get = real_get
    assert "start_as_current_span" in frames and calls
    assert (python_frames(span) == []) == native
    T._time_ns = lambda: 1326542400000000000
    try:
        with tracer.start_as_current_span("frozen") as frozen:
            pass
    finally:
        T._time_ns = real_clock
    # A fork (the counter moved) after a span started: ended by Span.end,
    # which leaves it unrecorded (it belongs to the parent process).
    orphan = tracer.start_as_current_span("orphan").__enter__()
    T._forks = forks + 1
    try:
        frames = python_frames(lambda: orphan.__exit__(None, None, None))
    finally:
        T._forks = forks
    assert "end" in frames
    with tracer.start_as_current_span("after") as after:
        pass
    got = exported.wait(["frozen"], frozen._ctx[0:16])
    assert got["frozen"][0].start_time_unix_nano == 1326542400000000000
    assert exported.wait(["after"], after._ctx[0:16])["after"][0].end_time_unix_nano > 0
    assert not exported.spans(orphan._ctx[0:16]) and otelagent.get_current_span() is T.INVALID_SPAN


# A change of _tracing's globals made while the C code reads them (Python
# code run by a lookup: a key whose hash collides with "_forks") must not be
# cached as seen (the version was taken after the lookups).
CHANGED_WHILE_READ = r"""
import otelagent
from otelagent import _tracing as T
otelagent.start({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
FROZEN = 1326542400000000000
armed, fired = [], []

class Colliding:
    def __hash__(self):
        return hash("_forks")
    def __eq__(self, other):
        if armed and not fired and other == "_forks":
            fired.append(1)
            T._time_ns = lambda: FROZEN
        return False

g = vars(T)
forks = g.pop("_forks")
g[Colliding()] = None  # first on the probe chain of "_forks"
g["_forks"] = forks
tracer = T.Tracer("x")
armed.append(1)
with tracer.start_as_current_span("first"):  # reads the globals: the clock changes
    pass
with tracer.start_as_current_span("second") as s:
    pass
print(bool(fired), s._start == FROZEN)
"""

# 3.12 on: the globals are watched by a dict watcher; with none free when
# _tracing was imported they are read on every use, and one freed later
# must watch them before the cache is trusted (it was trusted unwatched).
WATCHER_FREED_LATER = r"""
import _testcapi
ids = []
while True:
    try:
        ids.append(_testcapi.add_dict_watcher(0))
    except RuntimeError:
        break
import otelagent
from otelagent import _tracing as T
otelagent.start({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
_testcapi.clear_dict_watcher(ids[-1])
from otelagent.integrations import _http  # binds the server path: takes the watcher
tracer = T.Tracer("x")
with tracer.start_as_current_span("warm"):
    pass
T._time_ns = lambda: 1326542400000000000
with tracer.start_as_current_span("frozen") as s:
    pass
print(s._start == 1326542400000000000)
"""


def test_a_change_made_while_the_globals_are_read_is_seen():
    p = subprocess.run([sys.executable, "-c", CHANGED_WHILE_READ], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split() == ["True", "True"]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="dict watchers are 3.12's")
def test_a_dict_watcher_freed_after_import_is_used_only_once_it_watches():
    pytest.importorskip("_testcapi")
    p = subprocess.run([sys.executable, "-c", WATCHER_FREED_LATER], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split() == ["True"]


def test_the_methods_copy_pickle_and_take_weak_references(agent):
    import copy
    import pickle
    import weakref

    from otelagent import _tracing as T
    for owner, name in ((T.Span, "set_attribute"), (T.Span, "__exit__"),
                        (T.Tracer, "start_as_current_span")):
        method = owner.__dict__[name]
        assert copy.copy(method) is method and copy.deepcopy(method) is method
        assert pickle.loads(pickle.dumps(method)) is method
        assert weakref.ref(method)() is method
    with T.Tracer("weak").start_as_current_span("w") as span:
        bound = weakref.WeakMethod(span.set_attribute)
        bound()("k", "v")
    assert span._attrs == {"k": "v"} if span._records else True
