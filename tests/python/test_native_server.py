"""The native server-span path (_native.c: Server.begin, ServerCall) against
the middlewares' Python path: the same requests through both, the exported
spans (decoded by the official opentelemetry-proto) compared field by field,
and what the handler saw (current span, baggage, its child's parent)."""

import asyncio
import uuid

import pytest

from conftest import attrs

T = pytest.importorskip("otelagent._tracing")
if T.native is None:
    pytest.skip("the native module is not in use", allow_module_level=True)

from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware as _WSGIMiddleware  # noqa: E402

TRACE_SAMPLED = "00-{}-00f067aa0ba902b7-01"
TRACE_UNSAMPLED = "00-{}-00f067aa0ba902b7-00"
_DELETE = object()


class Route:
    path_format = "/items/{item_id}"


class BrokenRoute:
    @property
    def path_format(self):
        raise RuntimeError("no template")


class ListRoute:
    path_format = ["/items", "{item_id}"]  # not hashable


def _handler_view(seen):
    import otelagent
    from otelagent.propagation import get_baggage
    cur = otelagent.get_current_span()
    seen["recording"] = cur.is_recording()
    seen["trace"] = cur.get_span_context().trace_id
    seen["baggage"] = get_baggage()
    with otelagent.start_as_current_span("child") as child:
        seen["child_parent"] = child._parent[16:24] if getattr(child, "_parent", None) else None


def asgi_app(seen, status=200, exc=None, rename=None, route=None, by_keyword=False):
    async def app(scope, receive, send):
        _handler_view(seen)
        if rename:
            import otelagent
            otelagent.get_current_span().update_name(rename)
        if route is not None:
            scope["route"] = route
        if scope["type"] == "websocket":
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close"})
            return
        start = {"type": "http.response.start", "status": status, "headers": []}
        await (send(message=start) if by_keyword else send(start))
        await send({"type": "http.response.body", "body": b"x"})
        if exc is not None:
            raise exc
    return app


def wsgi_app(seen, status="200 OK", exc=None, stream=False, stream_exc=None, by_keyword=False):
    def app(environ, start_response):
        _handler_view(seen)
        if exc is not None:
            raise exc
        if by_keyword:
            start_response(status=status, headers=[("Content-Type", "text/plain")])
        else:
            start_response(status, [("Content-Type", "text/plain")])
        if not stream:
            return [b"x"]

        def body():
            import otelagent
            with otelagent.start_as_current_span("chunk"):
                yield b"a"
            if stream_exc is not None:
                raise stream_exc
            yield b"b"
        return body()
    return app


def run_asgi(mw, path, headers=(), method="GET", typ="http", query=b"", host=True, server=True):
    hdrs = [(b"user-agent", b"pytest/1"), (b"accept", b"*/*")]
    if host:
        hdrs.append((b"host", b"svc.example:8080"))
    hdrs += [(k.encode(), v.encode()) for k, v in headers]
    scope = {"type": typ, "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http" if typ == "http" else "ws", "path": path,
             "raw_path": path.encode(), "root_path": "", "query_string": query,
             "headers": hdrs, "client": ("10.1.2.3", 50000),
             "server": ("127.0.0.1", 8000) if server else None}

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    async def go():
        try:
            await mw(scope, receive, send)
        except Exception as e:  # the middleware lets the app's exception through
            return e
        return None
    return asyncio.run(go())


def run_wsgi(mw, path, headers=(), method="GET", query="", environ_update=None):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
               "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
               "HTTP_HOST": "svc.example:8080", "HTTP_USER_AGENT": "pytest/1",
               "REMOTE_ADDR": "10.1.2.3"}
    for k, v in headers:
        environ["HTTP_" + k.upper().replace("-", "_")] = v
    for k, v in (environ_update or {}).items():
        if v is _DELETE:
            del environ[k]
        else:
            environ[k] = v
    statuses = []
    try:
        result = mw(environ, lambda status, headers, exc_info=None: statuses.append(status))
    except Exception as e:
        return e
    try:
        chunks = list(result)
    except Exception as e:
        return e
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    assert chunks
    return None


def _shape(span, path):
    """What must match between the two paths (ids and times aside)."""
    a = attrs(span)
    if a.get("url.path") == path:
        a["url.path"] = "<path>"
    return {"name": span.name.replace(path, "<path>"), "kind": span.kind,
            "status": (span.status.code, span.status.message), "attrs": a,
            "events": [(e.name, sorted(attrs(e))) for e in span.events],
            "has_parent": bool(span.parent_span_id), "trace_state": span.trace_state,
            "flags": span.flags}


def _both(exported, make_mw, run, case_headers, **kw):
    """The request through the native path and the Python path; returns the
    two (server span shape, what the handler saw, the exception the caller
    got) triples."""
    out = []
    for native in (True, False):
        seen = {}
        trace = uuid.uuid4().hex
        headers = [(k, v.format(trace, t8=trace[:8], t24=trace[8:])) for k, v in case_headers]
        path = f"/items/{uuid.uuid4().hex[:8]}"
        mw = make_mw(seen)
        exc = run(mw if native else mw._python_path, path, headers, **kw)
        from otelagent.propagation import get_baggage
        import otelagent
        assert otelagent.get_current_span() is otelagent.INVALID_SPAN  # nothing leaked
        assert get_baggage() == ""
        spans = [s for s in exported.spans() if attrs(s).get("url.path") == path]
        if not seen.get("recording"):
            assert spans == [], "an unsampled request was exported"
            # The unsampled decision is current (the trace goes on downstream).
            assert seen.pop("trace") == int(trace, 16)
            seen.pop("child_parent")
            out.append((None, seen, type(exc)))
            continue
        exported.wait(["child"], bytes.fromhex(f"{seen['trace']:032x}"))
        spans = [s for s in exported.spans() if attrs(s).get("url.path") == path]
        assert len(spans) == 1, spans
        server = spans[0]
        child = exported.wait(["child"], server.trace_id)["child"][0]
        assert child.parent_span_id == server.span_id
        assert seen["child_parent"] == server.span_id
        seen.pop("trace")
        seen.pop("child_parent")
        out.append((_shape(server, path), seen, type(exc)))
    assert out[0] == out[1]
    return out[0]


ASGI_CASES = {
    "root": ([], {}, {}),
    "sampled parent, tracestate, baggage": (
        [("traceparent", TRACE_SAMPLED), ("tracestate", "vendor=a1,other=b2"),
         ("baggage", "user=alice,tier=gold")], {}, {}),
    "unsampled parent": ([("traceparent", TRACE_UNSAMPLED)], {}, {}),
    "x-ray": ([("x-amzn-trace-id",
                "Root=1-{t8}-{t24};Parent=53995c3f42cd8ad8;Sampled=1")],
              {}, {}),
    "invalid traceparent": ([("traceparent", "00-zz-zz-01")], {}, {}),
    "unknown method and secret query": ([], {}, {"method": "BREW",
                                                 "query": b"token=abc&page=2&Password=x"}),
    "503 and route": ([], {"status": 503, "route": Route()}, {}),
    "exception after the response": ([], {"exc": ValueError("late")}, {}),
    "exception before the response": ([], {"exc": KeyError("k"), "status": 200}, {}),
    "renamed in the handler": ([], {"rename": "custom name", "route": Route()}, {}),
    "no host header": ([], {}, {"host": False}),
    "no host header, no server": ([], {}, {"host": False, "server": False}),
    "websocket": ([], {"route": Route()}, {"typ": "websocket"}),
    "a route whose lookup raises": ([], {"route": BrokenRoute()}, {}),
    "a route template that is not hashable": ([], {"route": ListRoute()}, {}),
    "send(message=...) with a 503": ([], {"status": 503, "by_keyword": True}, {}),
    "query string as a bytearray": ([], {}, {"query": bytearray(b"a=1&token=t")}),
}


@pytest.mark.parametrize("case", list(ASGI_CASES))
def test_asgi_native_and_python_paths_export_the_same(agent, exported, case):
    from otelagent.integrations.asgi import OtelAgentMiddleware
    headers, app_kw, run_kw = ASGI_CASES[case]
    shape, seen, exc = _both(exported, lambda seen: OtelAgentMiddleware(asgi_app(seen, **app_kw)),
                             run_asgi, headers, **run_kw)
    if "baggage" in case:
        assert seen["baggage"] == "user=alice,tier=gold"
    if "unsampled" in case:
        assert shape is None and seen["recording"] is False
    else:
        assert shape is not None
    if case == "exception before the response":
        assert exc is KeyError
    if case == "renamed in the handler":
        assert shape["name"] == "custom name"  # the application's name is kept
    if case == "a route whose lookup raises":  # ignored: the span ends as without one
        assert exc is type(None) and shape["name"] == "GET" and "http.route" not in shape["attrs"]
    if case == "a route template that is not hashable":
        assert exc is type(None) and shape["name"] == "GET ['/items', '{item_id}']"
    if case == "503 and route":
        assert shape["name"] == "GET /items/{item_id}"
        assert shape["attrs"]["error.type"] == "503" and shape["status"][0] == 2


WSGI_CASES = {
    "root": ([], {}, {}),
    "sampled parent, tracestate, baggage": (
        [("traceparent", TRACE_SAMPLED), ("tracestate", "vendor=a1"),
         ("baggage", "user=bob")], {}, {}),
    "unsampled parent": ([("traceparent", TRACE_UNSAMPLED)], {}, {}),
    "unknown method and secret query": ([], {}, {"method": "BREW",
                                                 "query": "api_key=k&q=1"}),
    "500": ([], {"status": "500 INTERNAL SERVER ERROR"}, {}),
    "odd status": ([], {"status": "2x0 ODD"}, {}),
    "exception": ([], {"exc": RuntimeError("boom")}, {}),
    "streamed": ([], {"stream": True}, {}),
    "exception while streaming": ([], {"stream": True, "stream_exc": OSError("gone")}, {}),
    "start_response(status=...) with a 503": ([], {"status": "503 UNAVAILABLE",
                                                   "by_keyword": True}, {}),
    "odd environ values": ([], {}, {"environ_update": {
        "HTTP_HOST": _DELETE, "SERVER_PORT": None, "SERVER_PROTOCOL": None,
        "QUERY_STRING": b"token=t"}}),
}


@pytest.mark.parametrize("case", list(WSGI_CASES))
def test_wsgi_native_and_python_paths_export_the_same(agent, exported, case):
    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware
    headers, app_kw, run_kw = WSGI_CASES[case]
    shape, seen, exc = _both(exported,
                             lambda seen: OtelAgentWSGIMiddleware(wsgi_app(seen, **app_kw)),
                             run_wsgi, headers, **run_kw)
    if "unsampled" in case:
        assert shape is None
    else:
        assert shape is not None
    if "stream" in case:
        # The chunk's span was made with the server span current.
        assert shape["attrs"]["http.response.status_code"] == 200


def test_native_path_is_the_one_taken(agent):
    """begin() serves a plain request (so the comparisons above compare two
    paths), and hands the OpenTelemetry bridge's spans to the Python path."""
    from otelagent.integrations.asgi import OtelAgentMiddleware
    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware
    seen = {}
    mw = OtelAgentWSGIMiddleware(wsgi_app(seen))
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/p", "wsgi.url_scheme": "http"}
    call = mw.begin(environ, lambda *a: None)
    assert type(call).__name__ == "ServerCall" and call.span.is_recording()
    call.finish()
    assert not call.span.is_recording()
    assert OtelAgentMiddleware(asgi_app(seen))._begin({"type": "lifespan"}, None) is None
    T._classes[0], saved = type("Other", (T.Span,), {"__slots__": ()}), T._classes[0]
    try:
        assert mw.begin(dict(environ), lambda *a: None) is NotImplemented
    finally:
        T._classes[0] = saved


def test_excluded_urls_through_the_cache(agent, exported):
    """Excluded paths (matched once by the pattern, then from the cache) and
    a pattern that needs the full URL."""
    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware
    seen = {}
    mw = OtelAgentWSGIMiddleware(wsgi_app(seen), excluded_urls="^/healthz$,//internal\\.host/")
    before = agent.stats()["spans_recorded"]
    for _ in range(3):
        assert mw.begin({"PATH_INFO": "/healthz"}, None) is None
    environ = {"PATH_INFO": "/x", "HTTP_HOST": "internal.host", "wsgi.url_scheme": "http"}
    assert mw.begin(environ, None) is None
    assert agent.stats()["spans_recorded"] == before


def test_excluded_cache_keeps_no_long_paths(agent):
    """Paths are chosen by clients: the excluded-URL cache keeps short ones
    only (it kept every path, whatever its length, up to 4096 of them)."""
    import tracemalloc

    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware
    mw = OtelAgentWSGIMiddleware(lambda e, s: [b""], excluded_urls="^/long/")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(300):  # excluded: no span (a burst of big spans would fill the ring)
            assert mw.begin({"PATH_INFO": f"/long/{i:08d}" + "x" * 8192}, None) is None
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 300 * 8192 // 4, kept


def test_an_uninitialised_server_raises_instead_of_crashing(agent):
    from otelagent.integrations import _http
    server = _http.NativeServer.__new__(_http.NativeServer)
    with pytest.raises(RuntimeError):
        server.begin({"type": "http", "path": "/", "headers": []}, lambda m: None)


def _environ(path="/p", **more):
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "wsgi.url_scheme": "http",
           "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000"}
    env.update(more)
    return env


def test_wsgi_middleware_called_with_keywords_or_an_empty_kwargs(agent, exported):
    """Generic wrappers forward **kwargs (often empty): every request used to
    fail with a TypeError."""
    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware
    seen = {}
    mw = OtelAgentWSGIMiddleware(wsgi_app(seen))
    paths = [f"/kw/{uuid.uuid4().hex[:8]}" for _ in range(3)]
    sr = lambda status, headers, exc_info=None: None  # noqa: E731
    assert mw(_environ(paths[0]), sr, **{}) == [b"x"]
    assert mw(environ=_environ(paths[1]), start_response=sr) == [b"x"]
    assert mw(_environ(paths[2]), start_response=sr) == [b"x"]
    for path in paths:
        exported.wait(["GET"], None)
        assert any(attrs(s).get("url.path") == path for s in exported.spans()), path


@pytest.mark.parametrize("native", [True, False])
def test_sampled_out_request_is_marked_for_inner_middlewares(agent, native):
    """A sampled-out request's span is in the environ too, so that an inner
    middleware leaves the request alone instead of sampling it again as a new
    root (with a ratio sampler, more requests were traced than configured)."""
    from otelagent.integrations.wsgi import SPAN_KEY, OtelAgentWSGIMiddleware
    seen = {}

    def app(environ, start_response):
        seen["key"] = environ.get(SPAN_KEY)
        start_response("200 OK", [])
        return [b"x"]
    mw = OtelAgentWSGIMiddleware(OtelAgentWSGIMiddleware(app))
    trace = uuid.uuid4().hex
    env = _environ(HTTP_TRACEPARENT=TRACE_UNSAMPLED.format(trace))
    (mw if native else mw._python_path)(env, lambda *a: None)
    assert seen["key"] is not None and not seen["key"].is_recording()
    assert seen["key"].get_span_context().trace_id == int(trace, 16)


@pytest.mark.parametrize("native", [True, False])
def test_a_sampled_out_streamed_body_makes_children_not_roots(agent, native):
    """Spans made while a sampled-out request's body streams are its
    (sampled-out) children, with the request's baggage current."""
    import otelagent
    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware
    from otelagent.propagation import get_baggage
    seen = []

    def app(environ, start_response):
        start_response("200 OK", [])

        def body():
            with otelagent.start_as_current_span("in body") as s:
                seen.append((s.is_recording(), s.get_span_context().trace_id, get_baggage()))
            yield b"a"
        return body()
    mw = OtelAgentWSGIMiddleware(app)
    trace = uuid.uuid4().hex
    env = _environ(HTTP_TRACEPARENT=TRACE_UNSAMPLED.format(trace), HTTP_BAGGAGE="k=v")
    result = (mw if native else mw._python_path)(env, lambda *a: None)
    assert list(result) == [b"a"]
    result.close()
    assert seen == [(False, int(trace, 16), "k=v")]
    assert otelagent.get_current_span() is otelagent.INVALID_SPAN
    assert get_baggage() == ""


@pytest.mark.parametrize("native", [True, False])
def test_a_base_exception_from_the_app_ends_the_span(agent, exported, native):
    import otelagent
    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware

    def app(environ, start_response):
        raise KeyboardInterrupt
    mw = OtelAgentWSGIMiddleware(app)
    path = f"/interrupted/{uuid.uuid4().hex[:8]}"
    with pytest.raises(KeyboardInterrupt):
        (mw if native else mw._python_path)(_environ(path), lambda *a: None)
    assert otelagent.get_current_span() is otelagent.INVALID_SPAN
    exported.wait(["GET"], None)
    from conftest import wait_for
    wait_for(lambda: any(attrs(s).get("url.path") == path for s in exported.spans()), 15,
             "the interrupted request's span")


def test_flask_route_when_a_hook_made_another_span_current(agent, exported):
    from flask import Flask

    import otelagent
    import otelagent.integrations.flask as ofl
    app = Flask(__name__)

    @app.before_request
    def hook():
        otelagent.attach(otelagent.get_tracer("hook").start_span("hook span"))

    @app.get("/hook/<int:n>")
    def view(n):
        return "x"
    ofl.instrument_app(app)
    trace = uuid.uuid4().hex
    app.test_client().get("/hook/1", headers={"traceparent": TRACE_SAMPLED.format(trace)},
                          buffered=True)
    got = exported.wait(["GET /hook/<int:n>"], bytes.fromhex(trace))
    assert attrs(got["GET /hook/<int:n>"][0])["http.route"] == "/hook/<int:n>"


def test_copy_and_signature_of_the_wsgi_middleware(agent):
    import copy
    import inspect

    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware
    seen = {}
    mw = OtelAgentWSGIMiddleware(wsgi_app(seen), excluded_urls="^/healthz$")
    for clone in (copy.copy(mw), copy.deepcopy(mw)):
        assert clone(_environ("/c"), lambda *a: None) == [b"x"]
        assert seen["recording"] is True
        assert clone.begin(_environ("/healthz"), None) is None  # its settings came along
    assert list(inspect.signature(mw).parameters) == ["environ", "start_response"]


def test_wsgi_app_set_after_construction_is_the_one_called(agent):
    """wsgi_app lives in the native base (read without a lookup per
    request): replacing it takes effect, deleting it gives the
    AttributeError a plain attribute would, and nothing of the request
    stays current either way."""
    import otelagent
    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware
    first, second = {}, {}
    mw = OtelAgentWSGIMiddleware(wsgi_app(first))
    assert "wsgi_app" not in vars(mw)
    mw.wsgi_app = wsgi_app(second)
    assert mw(_environ("/c"), lambda *a: None) == [b"x"]
    assert second["recording"] is True and first == {}
    del mw.wsgi_app
    with pytest.raises(AttributeError, match="wsgi_app"):
        mw(_environ("/c"), lambda *a: None)
    with pytest.raises(AttributeError, match="wsgi_app"):
        _ = mw.wsgi_app
    assert otelagent.get_current_span() is otelagent.INVALID_SPAN


UAF_REPRO = """
import sys
import otelagent
from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware
otelagent.start({"OTEL_TRACES_EXPORTER": "none"})
holder = {}
def app(environ, start_response):
    holder["outer"].wsgi_app = lambda e, s: [b"new"]  # a reload, say
    raise ValueError("app failed")
outer = OtelAgentWSGIMiddleware(OtelAgentWSGIMiddleware(app), excluded_urls="^/health")
holder["outer"] = outer
env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/health", "wsgi.url_scheme": "http",
       "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000"}
try:
    outer(env, lambda *a: None)
except ValueError as e:
    print("raised", e)
print(outer(dict(env), lambda *a: None))
"""


def test_an_app_replacing_the_outer_wsgi_app_does_not_free_the_running_one():
    """An excluded request passed on by an outer middleware to an inner one
    whose application replaces the outer's wsgi_app (the inner middleware's
    last reference) and raises: the inner one must stay alive until its
    call returns (it read its settings from freed memory: a crash under the
    debug allocator, which poisons what is freed)."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, PYTHONMALLOC="debug")
    p = subprocess.run([sys.executable, "-c", UAF_REPRO], env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.splitlines() == ["raised app failed", "[b'new']"]


CLOSE_WHILE_ITERATING = """
import gc, threading
import otelagent
from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware
otelagent.start({"OTEL_TRACES_EXPORTER": "none"})
inside, go_on = threading.Event(), threading.Event()
def app(environ, start_response):
    start_response("200 OK", [])
    def body():
        yield b"a"
        inside.set()
        go_on.wait(30)  # the other thread closes the body now
        yield bytes(len([1, 2, 3]))
    return body()
env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/t", "wsgi.url_scheme": "http",
       "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000"}
result = OtelAgentWSGIMiddleware(app)(env, lambda *a: None)
it = iter(result)
assert next(it) == b"a"
out = {}
def iterate():
    out["chunk"] = next(it)
t = threading.Thread(target=iterate)
t.start()
assert inside.wait(30)
try:
    result.close()
except ValueError as e:  # the generator is running: it cannot be closed
    out["close"] = str(e)
del result
gc.collect()
go_on.set()
t.join(30)
print(out["chunk"], out["close"])
"""


def test_a_body_closed_by_another_thread_while_it_makes_a_chunk():
    """The server closes a streamed body (another thread: a disconnect, a
    watchdog) while the body is still making a chunk: the chunk's call keeps
    the body alive (the close dropped the call's references, and the
    running generator was freed under itself: a crash under the debug
    allocator)."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, PYTHONMALLOC="debug")
    p = subprocess.run([sys.executable, "-c", CLOSE_WHILE_ITERATING], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.splitlines() == ["b'\\x00\\x00\\x00' generator already executing"]


@pytest.mark.parametrize("native", [True, False])
def test_a_body_whose_close_is_none_has_no_close(agent, native):
    """A body whose close attribute is None has no close(), on both paths
    (natively, None was called: a TypeError from the server's close() and
    the span marked as failed)."""
    from otelagent.integrations.wsgi import SPAN_KEY, OtelAgentWSGIMiddleware

    class Body:
        close = None

        def __iter__(self):
            return iter([b"a"])

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body()
    mw = OtelAgentWSGIMiddleware(app)
    env = _environ("/n", HTTP_TRACEPARENT=TRACE_SAMPLED.format(uuid.uuid4().hex))
    result = (mw if native else mw._python_path)(env, lambda *a: None)
    assert list(result) == [b"a"]
    result.close()
    span = env[SPAN_KEY]
    assert span._status == 0 and "error.type" not in span._attrs


def test_a_subclass_defining_wsgi_app_is_served(agent):
    """A subclass whose class defines wsgi_app (a property, a class-level
    default) keeps the application out of the native slot: the C __call__
    then looks it up as Python does (every request failed with an
    AttributeError)."""
    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware

    class WithProperty(OtelAgentWSGIMiddleware):
        @property
        def wsgi_app(self):
            return self._app

        @wsgi_app.setter
        def wsgi_app(self, v):
            self._app = v

    class WithDefault(OtelAgentWSGIMiddleware):
        wsgi_app = None

    for cls in (WithProperty, WithDefault):
        seen = {}
        mw = cls(wsgi_app(seen))
        for tp in (TRACE_SAMPLED, TRACE_UNSAMPLED, None):
            env = _environ("/sub") if tp is None else _environ(
                "/sub", HTTP_TRACEPARENT=tp.format(uuid.uuid4().hex))
            seen.clear()
            assert mw(env, lambda *a: None) == [b"x"], (cls, tp)
            assert seen["recording"] is (tp != TRACE_UNSAMPLED)


@pytest.mark.parametrize("native", [True, False])
def test_a_wsgi_app_lookup_that_fails_is_recorded_as_the_apps_error(agent, exported, native):
    """A subclass whose wsgi_app property raises: the request fails with that
    error, and its span records it (ERROR, error.type, an exception event)
    on both paths (the native one ended the span without it)."""
    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware

    class Lazy(OtelAgentWSGIMiddleware):
        @property
        def wsgi_app(self):
            raise LookupError("no application loaded yet")

        @wsgi_app.setter
        def wsgi_app(self, v):
            pass
    mw = Lazy(None)
    trace = uuid.uuid4().hex
    with pytest.raises(LookupError):
        (mw if native else mw._python_path)(
            _environ("/lazy", HTTP_TRACEPARENT=TRACE_SAMPLED.format(trace)), lambda *a: None)
    span = exported.wait(["GET"], bytes.fromhex(trace))["GET"][0]
    assert span.status.code == 2
    assert attrs(span)["error.type"] == "LookupError"
    assert [e.name for e in span.events] == ["exception"]


def test_a_copy_does_not_run_a_wsgi_app_setter_again(agent):
    """A subclass's wsgi_app property with a setter that wraps the app (a
    proxy fix, say): a copy, deep copy or pickle keeps one layer (the copy
    assigned the getter's result through the setter again)."""
    import copy
    import pickle

    mw = _WrappingMiddleware(_picklable_app)
    for clone in (copy.copy(mw), copy.deepcopy(mw), pickle.loads(pickle.dumps(mw))):
        assert clone._app.layers == 1
        assert clone(_environ("/c"), lambda *a: None) == [b"p"]


def test_a_copy_keeps_a_subclass_s_slots(agent):
    """A subclass that keeps its own values in __slots__ (outside __dict__):
    a copy, deep copy or pickle keeps them (they were lost), and one never
    set stays unset."""
    import copy
    import pickle

    mw = _SlottedMiddleware(_picklable_app)
    mw.tag = "blue"
    for clone in (copy.copy(mw), copy.deepcopy(mw), pickle.loads(pickle.dumps(mw))):
        assert clone.tag == "blue"
        assert clone._SlottedMiddleware__secret == 7
        with pytest.raises(AttributeError):
            _ = clone.unset
        assert clone(_environ("/c"), lambda *a: None) == [b"p"]


def test_a_copy_sets_slots_through_their_own_descriptors(agent):
    """A subclass's property over a base's slot: a copy neither fails on a
    read-only one nor runs a wrapping setter again (the slot was read and
    set through whatever the most derived class had under its name)."""
    import copy

    class ReadOnly(_SlottedMiddleware):
        @property
        def tag(self):
            return "computed"

    class Wrapping(_SlottedMiddleware):
        @property
        def tag(self):
            return _SlottedMiddleware.tag.__get__(self)

        @tag.setter
        def tag(self, value):
            _SlottedMiddleware.tag.__set__(self, [value])

    assert copy.copy(ReadOnly(_picklable_app)).tag == "computed"
    mw = Wrapping(_picklable_app)
    mw.tag = "h"
    for clone in (copy.copy(mw), copy.deepcopy(mw)):
        assert clone.tag == ["h"]


def test_a_copy_keeps_reference_cycles_through_the_middleware(agent):
    """An object that refers back to the middleware (the application that
    holds it), from a slot or from __dict__: a deep copy or pickle keeps one
    clone (two clones, or a RecursionError for a slot referring to the
    middleware itself)."""
    import copy
    import pickle

    for attr in ("tag", "other"):
        mw = _SlottedMiddleware(_picklable_app)
        holder = _Holder()
        holder.mw = mw
        setattr(mw, attr, holder)
        for clone in (copy.deepcopy(mw), pickle.loads(pickle.dumps(mw))):
            assert getattr(clone, attr).mw is clone
            assert clone(_environ("/c"), lambda *a: None) == [b"p"]
    mw = _SlottedMiddleware(_picklable_app)
    mw.tag = mw
    for clone in (copy.deepcopy(mw), pickle.loads(pickle.dumps(mw))):
        assert clone.tag is clone


def test_only_a_str_method_is_a_known_one(agent, exported):
    """A method of another type that hashes and compares as a known one (a
    UserString) is an unknown method natively too, as in Python: only a str
    names a known method."""
    from collections import UserString

    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware
    mw = OtelAgentWSGIMiddleware(wsgi_app({}))
    names = {}
    for label, call in (("native", mw), ("python", mw._python_path)):
        trace = uuid.uuid4().hex
        env = _environ("/u", REQUEST_METHOD=UserString("GET"),
                       HTTP_TRACEPARENT=TRACE_SAMPLED.format(trace))
        assert call(env, lambda *a: None) == [b"x"]
        got = exported.wait(["HTTP"], bytes.fromhex(trace))["HTTP"][0]
        names[label] = (got.name, attrs(got)["http.request.method"])
    assert names == {"native": ("HTTP", "_OTHER"), "python": ("HTTP", "_OTHER")}


@pytest.mark.parametrize("native", [True, False])
def test_a_method_that_cannot_be_hashed_is_an_unknown_one(agent, exported, native):
    """A REQUEST_METHOD of an odd type (not hashable): the request is served
    and its span names the method _OTHER, sampled or not, on both paths (the
    Python path raised TypeError into the server)."""
    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware
    seen = {}
    mw = OtelAgentWSGIMiddleware(wsgi_app(seen))
    call = mw if native else mw._python_path
    traces = {}
    for tp in (TRACE_SAMPLED, TRACE_UNSAMPLED):
        traces[tp] = uuid.uuid4().hex
        env = _environ("/m", REQUEST_METHOD=["GET"], HTTP_TRACEPARENT=tp.format(traces[tp]))
        seen.clear()
        assert call(env, lambda *a: None) == [b"x"]
        assert seen["recording"] is (tp == TRACE_SAMPLED)
    got = exported.wait(["HTTP"], bytes.fromhex(traces[TRACE_SAMPLED]))
    assert attrs(got["HTTP"][0])["http.request.method"] == "_OTHER"


def test_pickles_of_the_wsgi_middleware_from_before_load(agent):
    """A middleware pickled when wsgi_app was an instance attribute (its
    state then held it) still loads and serves; one without a wsgi_app can
    be copied."""
    import copy
    import pickle

    from otelagent.integrations import wsgi
    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware
    mw = OtelAgentWSGIMiddleware(_picklable_app, excluded_urls="^/healthz$")
    state = dict(vars(mw), wsgi_app=_picklable_app)
    old = pickle.loads(pickle.dumps((wsgi._rebuild, (OtelAgentWSGIMiddleware, state))))
    clone = old[0](*old[1])
    assert clone(_environ("/c"), lambda *a: None) == [b"p"]
    assert clone.begin(_environ("/healthz"), None) is None
    clone = pickle.loads(pickle.dumps(mw))
    assert clone(_environ("/c"), lambda *a: None) == [b"p"]
    del mw.wsgi_app
    bare = copy.copy(mw)
    with pytest.raises(AttributeError, match="wsgi_app"):
        _ = bare.wsgi_app


def _picklable_app(environ, start_response):
    start_response("200 OK", [])
    return [b"p"]


class _Layer:
    """An application wrapped once more (what a wrapping setter makes)."""

    def __init__(self, app):
        self.app = app
        self.layers = getattr(app, "layers", 0) + 1

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


class _WrappingMiddleware(_WSGIMiddleware):  # module level: picklable by name
    @property
    def wsgi_app(self):
        return self._app

    @wsgi_app.setter
    def wsgi_app(self, app):
        self._app = _Layer(app)


class _SlottedMiddleware(_WSGIMiddleware):  # module level: picklable by name
    __slots__ = ("tag", "unset", "__secret")

    def __init__(self, app):
        super().__init__(app)
        self.__secret = 7


class _Holder:  # module level: picklable by name
    pass


def test_close_of_a_sampled_out_streamed_body(agent):
    """A sampled-out streamed body's close is the body itself, called
    without arguments (no bound method per request): the application's
    close() runs once, with the request's span current, then nothing is.
    A recorded body's close is a method as usual, and start_response
    called without arguments still reaches the server's."""
    import otelagent
    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware
    closes = []

    class Body:
        def __iter__(self):
            return iter([b"a", b"b"])

        def close(self):
            closes.append(otelagent.get_current_span().get_span_context().trace_id)

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body()
    mw = OtelAgentWSGIMiddleware(app)
    trace = uuid.uuid4().hex
    result = mw(_environ("/s", HTTP_TRACEPARENT=TRACE_UNSAMPLED.format(trace)), lambda *a: None)
    assert next(iter(result)) == b"a"  # closed before its end, as when the client is gone
    close = result.close
    assert callable(close)
    assert close() is None
    assert closes == [int(trace, 16)]
    result.close()  # a second close() has nothing left to do
    assert closes == [int(trace, 16)]
    assert otelagent.get_current_span() is otelagent.INVALID_SPAN
    # close() with arguments is refused, as a method's would be, and closes
    # nothing (it was handed on to the server's start_response).
    calls = []
    result = mw(_environ("/s", HTTP_TRACEPARENT=TRACE_UNSAMPLED.format(trace)),
                lambda *a: calls.append(a))
    calls.clear()
    with pytest.raises(TypeError, match="no arguments"):
        result.close(None)
    assert calls == [] and len(closes) == 1
    result.close()
    assert len(closes) == 2

    result = mw(_environ("/s", HTTP_TRACEPARENT=TRACE_SAMPLED.format(trace)), lambda *a: None)
    assert type(result.close).__name__ == "builtin_function_or_method"
    with pytest.raises(TypeError):
        result.close(None)
    result.close()
    assert len(closes) == 3

    def no_args(environ, start_response):
        start_response()
    seen = []

    def server_start_response(*args):
        seen.append(args)
        raise TypeError("start_response() needs a status and headers")
    mw = OtelAgentWSGIMiddleware(no_args)
    with pytest.raises(TypeError, match="needs a status"):
        mw(_environ("/s", HTTP_TRACEPARENT=TRACE_SAMPLED.format(trace)), server_start_response)
    assert seen == [()]


class _LegacyInterpreters:
    """Sub-interpreters made as Py_NewInterpreter makes them (uWSGI's
    --mount apps: they load single-phase extension modules such as _ctypes,
    and may start threads and subprocesses):
    _xxsubinterpreters.create(isolated=False) up to 3.12 (its default is an
    isolated interpreter), _interpreters.create("legacy") from 3.13. Skips
    where there is none."""

    def __init__(self):
        try:
            import _interpreters as mod
            self._create = lambda: mod.create("legacy")
        except ImportError:
            mod = pytest.importorskip("_xxsubinterpreters")
            self._create = lambda: mod.create(isolated=False)
        self._mod = mod

    def create(self):
        return self._create()

    def run_string(self, interp, code):
        failed = self._mod.run_string(interp, code)  # 3.13 returns what failed
        if failed is not None:
            raise AssertionError(getattr(failed, "formatted", failed))

    def destroy(self, interp):
        self._mod.destroy(interp)

    @staticmethod
    def source(body):
        """A program for a fresh process that makes such interpreters as
        `i` (i.create(), i.run_string(s, src), i.destroy(s)), then runs body."""
        return ("import sys\n"
                "try:\n"
                "    import _interpreters as m\n"
                "    new = lambda: m.create('legacy')\n"
                "except ImportError:\n"
                "    import _xxsubinterpreters as m\n"
                "    new = lambda: m.create(isolated=False)\n"
                "class i:\n"
                "    create = staticmethod(new)\n"
                "    destroy = staticmethod(m.destroy)\n"
                "    @staticmethod\n"
                "    def run_string(s, src):\n"
                "        failed = m.run_string(s, src)\n"
                "        assert failed is None, getattr(failed, 'formatted', failed)\n"
                + body)


def test_a_second_interpreter_uses_the_python_path(agent):
    """uWSGI runs --mount apps in sub-interpreters, each importing the
    package: the native module serves only the interpreter that bound it
    first (a later one used to bind its own classes over it)."""
    interpreters = _LegacyInterpreters()
    import sys

    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware
    seen = {}
    mw = OtelAgentWSGIMiddleware(wsgi_app(seen))
    call = mw.begin(_environ(), lambda *a: None)
    assert type(call).__name__ == "ServerCall"
    call.finish()
    sub = interpreters.create()
    try:
        # The sub-interpreter gets the pure-Python path; this one keeps the
        # native path, with its own classes (another interpreter's were bound
        # over them before, and this interpreter's spans were made with them).
        interpreters.run_string(sub, f"import sys; sys.path[:] = {sys.path!r}\n"
                                     "import otelagent.integrations.wsgi as w, otelagent._tracing as t\n"
                                     "assert t.native is None and w._http.NativeServer is None\n"
                                     "assert w.OtelAgentWSGIMiddleware.__bases__ == (object,)\n")
        call = mw.begin(_environ(), lambda *a: None)
        assert type(call).__name__ == "ServerCall" and type(call.span) is T.Span
        call.finish()
        assert mw(_environ(), lambda *a: None) == [b"x"] and seen["recording"]
    finally:
        interpreters.destroy(sub)


@pytest.mark.parametrize("native", [True, False])
def test_a_body_closed_early_resets_its_context_in_its_own_context(agent, native):
    """A client that goes away closes the body before its end: the generator's
    cleanup resets, in the context it streamed in, what it set there (a
    ValueError from ContextVar.reset reached the server)."""
    import contextvars

    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware
    var = contextvars.ContextVar("set while streaming")
    cleaned = []

    def app(environ, start_response):
        start_response("200 OK", [])

        def body():
            token = var.set(1)
            try:
                yield b"a"
                yield b"b"
            finally:
                var.reset(token)
                cleaned.append(True)
        return body()
    mw = OtelAgentWSGIMiddleware(app)
    for sampled in (TRACE_SAMPLED, TRACE_UNSAMPLED):
        env = _environ(HTTP_TRACEPARENT=sampled.format(uuid.uuid4().hex))
        result = (mw if native else mw._python_path)(env, lambda *a: None)
        assert next(iter(result)) == b"a"
        result.close()
    assert cleaned == [True, True]
    assert var.get(None) is None


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("chunks", [0, 1, 2])
def test_a_token_made_by_the_app_is_reset_by_its_body(agent, native, chunks):
    """Flask 2.2-3.1.1's stream_with_context sets a context variable while
    the view runs (it primes the generator there) and resets it when the body
    ends or is closed: that must work in the server's context (iterating the
    body in a copy of the request's context broke it with a ValueError)."""
    import contextvars

    import otelagent
    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware
    var = contextvars.ContextVar("set by the view")
    done = []

    def app(environ, start_response):
        start_response("200 OK", [])

        def body():
            token = var.set("request")
            try:
                yield None  # primed in the view, up to here
                yield b"a"
                yield b"b"
            finally:
                var.reset(token)
                done.append(True)
        gen = body()
        next(gen)
        return gen

    mw = OtelAgentWSGIMiddleware(app)
    for parent in (TRACE_SAMPLED, TRACE_UNSAMPLED):
        done.clear()
        env = _environ(HTTP_TRACEPARENT=parent.format(uuid.uuid4().hex))
        result = (mw if native else mw._python_path)(env, lambda *a: None)
        it = iter(result)
        assert [next(it) for _ in range(chunks)] == [b"a", b"b"][:chunks]
        result.close()
        assert done == [True]
        assert var.get(None) is None
    assert otelagent.get_current_span() is otelagent.INVALID_SPAN


@pytest.mark.parametrize("native", [True, False])
def test_variables_the_body_sets_are_seen_outside_as_without_us(agent, native):
    import contextvars

    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware
    var = contextvars.ContextVar("rows")

    def app(environ, start_response):
        start_response("200 OK", [])

        def body():
            var.set(3)  # left set on purpose, for an outer middleware
            yield b"a"
        return body()
    mw = OtelAgentWSGIMiddleware(app)
    ctx = contextvars.copy_context()

    def serve():
        result = (mw if native else mw._python_path)(_environ(), lambda *a: None)
        assert list(result) == [b"a"]
        result.close()
        return var.get(None)
    assert ctx.run(serve) == 3


def test_an_app_returning_its_start_response_gets_a_type_error_not_a_crash(agent):
    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware

    def app(environ, start_response):
        start_response("200 OK", [])
        return start_response  # not an iterable of bytes
    result = OtelAgentWSGIMiddleware(app)(_environ(), lambda *a: None)
    with pytest.raises(TypeError):
        list(result)


def test_a_dead_binding_interpreter_does_not_hand_its_objects_to_the_next(tmp_path):
    """The first interpreter to bind the native module keeps it, by ID: a
    later interpreter at the same address was taken for it and bound over
    the dead one's objects."""
    import subprocess
    import sys
    _LegacyInterpreters()  # skips where there are none
    code = _LegacyInterpreters.source(
        f"sys.path[:] = {sys.path!r}\n"
        "src = 'import sys; sys.path[:] = %r\\n' % (sys.path,) + (\n"
        "    'import otelagent.integrations.wsgi as w, otelagent._tracing as t\\n'\n"
        "    'print(\"native\" if t.native else \"python\", flush=True)\\n')\n"
        "for _ in range(4):\n"
        "    s = i.create(); i.run_string(s, src); i.destroy(s)\n"
        "import otelagent._tracing as t\n"
        "print('main', 'native' if t.native else 'python')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["native", "python", "python", "python", "main", "python"]


@pytest.mark.parametrize("native", [True, False])
def test_a_streamed_body_ends_with_its_last_chunk(agent, exported, native):
    """The span and baggage are current while each chunk is made and only
    then; after the last chunk, in that call, the body's close() runs with
    them current and the span ends, before the server's close(), which then
    does nothing."""
    import otelagent
    from otelagent.integrations.wsgi import SPAN_KEY, OtelAgentWSGIMiddleware
    from otelagent.propagation import get_baggage
    made, closed = [], []

    class Body:
        def __iter__(self):
            for chunk in (b"a", b"b"):
                made.append((otelagent.get_current_span(), get_baggage()))
                yield chunk

        def close(self):
            closed.append((otelagent.get_current_span(), get_baggage()))

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body()
    mw = OtelAgentWSGIMiddleware(app)
    trace = uuid.uuid4().hex
    env = _environ(HTTP_TRACEPARENT=TRACE_SAMPLED.format(trace), HTTP_BAGGAGE="k=v")
    result = (mw if native else mw._python_path)(env, lambda *a: None)
    server = env[SPAN_KEY]
    between = []
    for _ in result:
        between.append((otelagent.get_current_span(), get_baggage()))
    assert made == [(server, "k=v")] * 2
    assert between == [(otelagent.INVALID_SPAN, "")] * 2
    assert closed == [(server, "k=v")]
    assert otelagent.get_current_span() is otelagent.INVALID_SPAN and get_baggage() == ""
    exported.wait(["GET"], bytes.fromhex(trace))  # ended before the server's close()
    result.close()
    assert closed == [(server, "k=v")]  # the application's close() ran once


@pytest.mark.parametrize("native", [True, False])
def test_chunks_pulled_on_other_threads_leave_nothing_behind(agent, native):
    """A server that pulls each chunk on a pool thread and closes the body on
    its loop thread (Tornado's WSGIContainer with an executor): nothing of the
    request stays current on any of them, and a later request without
    baggage sees none."""
    from concurrent.futures import ThreadPoolExecutor

    import otelagent
    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware
    from otelagent.propagation import get_baggage
    a, b = ThreadPoolExecutor(1), ThreadPoolExecutor(1)
    seen = []

    def app(environ, start_response):
        start_response("200 OK", [])
        seen.append(get_baggage())

        def body():
            yield b"a"
            yield b"b"
        return body()
    mw = OtelAgentWSGIMiddleware(app)
    serve = mw if native else mw._python_path
    state = (lambda: (otelagent.get_current_span(), get_baggage()))
    try:
        result = a.submit(serve, _environ(HTTP_BAGGAGE="user=alice"), lambda *x: None).result()
        it = iter(result)
        assert a.submit(next, it).result() == b"a"
        assert b.submit(next, it).result() == b"b"
        assert b.submit(list, it).result() == []
        result.close()
        assert a.submit(state).result() == (otelagent.INVALID_SPAN, "")
        assert b.submit(state).result() == (otelagent.INVALID_SPAN, "")
        later = a.submit(serve, _environ(), lambda *x: None).result()
        assert a.submit(list, later).result() == [b"a", b"b"]
        assert seen == ["user=alice", ""]
    finally:
        a.shutdown()
        b.shutdown()


@pytest.mark.parametrize("native", [True, False])
def test_two_bodies_iterated_in_turn_in_one_context(agent, native):
    """Two requests' bodies served chunk by chunk in turn on one thread:
    each chunk's spans are children of its own request's span."""
    import otelagent
    from otelagent.integrations.wsgi import SPAN_KEY, OtelAgentWSGIMiddleware
    parents = {}

    def app(environ, start_response):
        start_response("200 OK", [])
        me = environ["PATH_INFO"]

        def body():
            for _ in range(2):
                with otelagent.start_as_current_span("chunk") as ch:
                    parents.setdefault(me, []).append(ch._parent[16:24])
                yield b"x"
        return body()
    mw = OtelAgentWSGIMiddleware(app)
    serve = mw if native else mw._python_path
    e1, e2 = _environ("/one", HTTP_BAGGAGE="u=a"), _environ("/two", HTTP_BAGGAGE="u=b")
    i1, i2 = iter(serve(e1, lambda *x: None)), iter(serve(e2, lambda *x: None))
    for it in (i1, i2, i1, i2, i1, i2):
        next(it, None)
    own = {p: e[SPAN_KEY].context.raw[16:24] for p, e in (("/one", e1), ("/two", e2))}
    assert parents == {"/one": [own["/one"]] * 2, "/two": [own["/two"]] * 2}
    assert otelagent.get_current_span() is otelagent.INVALID_SPAN


@pytest.mark.parametrize("native", [True, False])
def test_an_exception_whose_str_raises_reaches_the_server(agent, native):
    """The span's exception event and status call str() on the application's
    exception: an __str__ that raises must not replace the exception the
    server gets."""
    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware

    class Lazy(Exception):
        def __str__(self):
            raise RuntimeError("no message")

    def app(environ, start_response):
        start_response("200 OK", [])

        def body():
            yield b"a"
            raise Lazy()
        return body()
    mw = OtelAgentWSGIMiddleware(app)
    result = (mw if native else mw._python_path)(
        _environ(HTTP_TRACEPARENT=TRACE_SAMPLED.format(uuid.uuid4().hex)), lambda *x: None)
    with pytest.raises(Lazy):
        list(result)
    result.close()


@pytest.mark.parametrize("native", [True, False])
def test_a_body_iterated_in_a_new_context_per_chunk(agent, native):
    """A server that runs each call into the body in a copy of its context
    (as an async server running a WSGI app in a thread pool does): the span
    is current in every chunk, and nothing of it reaches the server's own
    context."""
    import contextvars

    import otelagent
    from otelagent.integrations.wsgi import SPAN_KEY, OtelAgentWSGIMiddleware
    current = []

    def app(environ, start_response):
        start_response("200 OK", [])

        def body():
            for chunk in (b"a", b"b", b"c"):
                current.append(otelagent.get_current_span())
                yield chunk
        return body()
    mw = OtelAgentWSGIMiddleware(app)
    env = _environ(HTTP_TRACEPARENT=TRACE_UNSAMPLED.format(uuid.uuid4().hex))
    result = (mw if native else mw._python_path)(env, lambda *a: None)
    it = iter(result)
    chunks = [contextvars.copy_context().run(next, it) for _ in range(3)]
    with pytest.raises(StopIteration):
        contextvars.copy_context().run(next, it)
    contextvars.copy_context().run(result.close)
    assert chunks == [b"a", b"b", b"c"]
    assert current == [env[SPAN_KEY]] * 3
    assert otelagent.get_current_span() is otelagent.INVALID_SPAN


@pytest.mark.parametrize("native", [True, False])
def test_an_outer_span_that_ended_before_the_body_closed_is_not_brought_back(agent, native):
    """An outer WSGI layer iterates the body inside a span of its own and
    closes the body only after that span ended (the client went away):
    resetting the body's span then would make the outer span current again,
    for good."""
    import otelagent
    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware

    def app(environ, start_response):
        start_response("200 OK", [])

        def body():
            yield b"a"
            yield b"b"
        return body()
    mw = OtelAgentWSGIMiddleware(app)

    def outer(environ, start_response):
        inner = (mw if native else mw._python_path)(environ, start_response)

        def body():
            try:
                with otelagent.start_as_current_span("outer"):
                    for chunk in inner:
                        yield chunk
            finally:
                inner.close()
        return body()
    for parent in (TRACE_SAMPLED, TRACE_UNSAMPLED):
        result = outer(_environ(HTTP_TRACEPARENT=parent.format(uuid.uuid4().hex)),
                       lambda *a: None)
        assert next(iter(result)) == b"a"
        result.close()
        assert otelagent.get_current_span() is otelagent.INVALID_SPAN


@pytest.mark.parametrize("native", [True, False])
def test_an_error_while_streaming_sets_error_type(agent, exported, native):
    """An exception raised by a streamed body: the exception event, ERROR,
    and error.type, as for one raised by the application's call."""
    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware

    def app(environ, start_response):
        start_response("200 OK", [])

        def body():
            yield b"a"
            raise KeyError("gone")
        return body()
    mw = OtelAgentWSGIMiddleware(app)
    trace = uuid.uuid4().hex
    result = (mw if native else mw._python_path)(
        _environ("/streaming-error", HTTP_TRACEPARENT=TRACE_SAMPLED.format(trace)),
        lambda *x: None)
    with pytest.raises(KeyError):
        list(result)
    result.close()
    s = exported.wait(["GET"], bytes.fromhex(trace))["GET"][0]
    assert s.status.code == 2 and attrs(s)["error.type"] == "KeyError"
    assert [e.name for e in s.events] == ["exception"]


@pytest.mark.parametrize("native", [True, False])
def test_a_close_that_fails_after_the_last_chunk_raises_from_the_servers_close(agent, exported,
                                                                                 native):
    """The body's close() runs after its last chunk; when it raises, the
    server must not see an error while iterating (gunicorn would drop the
    response unfinished, without its last chunk), but from its own close(),
    as without the middleware; the span records it and ends once."""
    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware

    class Body:
        def __iter__(self):
            return iter([b"a", b"b"])

        def close(self):
            raise RuntimeError("close failed")

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body()
    mw = OtelAgentWSGIMiddleware(app)
    trace = uuid.uuid4().hex
    result = (mw if native else mw._python_path)(
        _environ("/close-fails", HTTP_TRACEPARENT=TRACE_SAMPLED.format(trace)), lambda *x: None)
    assert list(result) == [b"a", b"b"]  # the server finishes the response
    with pytest.raises(RuntimeError, match="close failed") as raised:
        result.close()
    result.close()  # a second close() has nothing left to do
    # As without the middleware: not chained to the body's StopIteration,
    # and no frame of ours kept (they would hold the request in a cycle).
    err = raised.value
    assert err.__context__ is None
    tb, ours = err.__traceback__, []
    while tb is not None:
        ours.append(tb.tb_frame.f_code.co_filename.endswith("integrations/wsgi.py")
                    and tb.tb_frame.f_code.co_name != "close")
        tb = tb.tb_next
    assert not any(ours)
    s = exported.wait(["GET"], bytes.fromhex(trace))["GET"]
    assert len(s) == 1
    assert s[0].status.code == 2 and attrs(s[0])["error.type"] == "RuntimeError"


@pytest.mark.parametrize("native", [True, False])
def test_a_flask_app_mounted_inside_does_not_name_the_outer_span(agent, exported, native):
    """An uninstrumented Flask app mounted under /sub inside the instrumented
    one sees the same environ: its rule, relative to /sub, is not the outer
    app's route."""
    from flask import Flask
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    import otelagent.integrations.flask as ofl
    outer, sub = Flask("outer"), Flask("sub")

    @outer.get("/users/<int:uid>")
    def user(uid):
        return "u"

    @sub.get("/items/<int:i>")
    def item(i):
        return "i"
    outer.wsgi_app = DispatcherMiddleware(outer.wsgi_app, {"/sub": sub})
    assert ofl.instrument_app(outer, start_agent=False)
    if not native:
        outer.wsgi_app = outer.wsgi_app._python_path
    client = outer.test_client()
    for path, name, route in (("/sub/items/3", "GET", None),
                              ("/users/7", "GET /users/<int:uid>", "/users/<int:uid>")):
        trace = uuid.uuid4().hex
        r = client.get(path, headers={"traceparent": TRACE_SAMPLED.format(trace)}, buffered=True)
        assert r.status_code == 200
        exported.wait([name], bytes.fromhex(trace))  # times out under another name
        (span,) = exported.spans(bytes.fromhex(trace))
        assert (span.name, attrs(span).get("http.route")) == (name, route)


def test_werkzeug_route_takes_a_map_not_a_flag(agent):
    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware
    with pytest.raises(TypeError, match="werkzeug_route"):
        OtelAgentWSGIMiddleware(lambda e, s: [], werkzeug_route=True)


def _streaming_app(first, log):
    """A WSGI app whose body's first chunk is `first` (bytes, or an exception
    to raise making it, or None: an empty body); the body logs what it does
    and which span was current then."""
    import otelagent

    def app(environ, start_response):
        start_response("200 OK", [])

        def body():
            try:
                log.append(("first", otelagent.get_current_span()))
                if isinstance(first, BaseException):
                    raise first
                if first is not None:
                    yield first
                    log.append(("second", otelagent.get_current_span()))
                    yield b"b"
            finally:
                log.append(("closed", otelagent.get_current_span()))
        return body()
    return app


@pytest.mark.parametrize("native", [True, False])
def test_an_error_making_the_first_chunk_reaches_the_servers_first_next(agent, exported, native):
    """Raised where the server sees it without the middleware (its first
    next()), and recorded once."""
    import otelagent
    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware
    log = []
    mw = OtelAgentWSGIMiddleware(_streaming_app(OSError("disk gone"), log))
    trace = uuid.uuid4().hex
    env = _environ(f"/first-error/{trace[:8]}", HTTP_TRACEPARENT=TRACE_SAMPLED.format(trace))
    result = (mw if native else mw._python_path)(env, lambda *a: None)
    assert log == []
    it = iter(result)
    with pytest.raises(OSError, match="disk gone") as info:
        next(it)
    assert [what for what, _ in log] == ["first", "closed"]
    assert "body" in [f.name for f in info.traceback]  # the application's frame
    result.close()
    assert otelagent.get_current_span() is otelagent.INVALID_SPAN
    (server,) = exported.wait(["GET"], bytes.fromhex(trace))["GET"]
    assert server.status.code == 2
    assert [e.name for e in server.events] == ["exception"]
    assert attrs(server.events[0])["exception.type"] == "OSError"


@pytest.mark.parametrize("native", [True, False])
def test_iter_of_a_result_that_is_not_iterable_fails_in_the_servers_iter(agent, native):
    import otelagent
    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware

    class NotIterable:
        def __iter__(self):
            raise ValueError("no iterator here")

    def app(environ, start_response):
        start_response("200 OK", [])
        return NotIterable()
    mw = OtelAgentWSGIMiddleware(app)
    for parent in (TRACE_SAMPLED, TRACE_UNSAMPLED):
        env = _environ(HTTP_TRACEPARENT=parent.format(uuid.uuid4().hex))
        result = (mw if native else mw._python_path)(env, lambda *a: None)
        with pytest.raises(ValueError, match="no iterator here"):
            iter(result)
        result.close()
        assert otelagent.get_current_span() is otelagent.INVALID_SPAN


@pytest.mark.parametrize("native", [True, False])
def test_a_file_in_the_servers_wrapper_is_handed_back_for_sendfile(agent, exported, native):
    """gunicorn and uWSGI send a file with sendfile only when the body is
    their own wsgi.file_wrapper (Flask's send_file returns one): the
    middleware hands it back as it is, its span ended."""
    import io

    from otelagent.integrations.wsgi import SPAN_KEY, OtelAgentWSGIMiddleware

    class FileWrapper:
        def __init__(self, f, block=8192):
            self.f = f

        def __iter__(self):
            return iter(lambda: self.f.read(4), b"")

        def close(self):
            self.f.close()

    class Subclass(FileWrapper):
        pass
    for wrap in (FileWrapper, Subclass):  # the server's class, or a class of its own
        def app(environ, start_response, wrap=wrap):
            start_response("200 OK", [])
            return wrap(io.BytesIO(b"file body"))
        mw = OtelAgentWSGIMiddleware(app)
        trace = uuid.uuid4().hex
        env = _environ(f"/file/{trace[:8]}", HTTP_TRACEPARENT=TRACE_SAMPLED.format(trace))
        env["wsgi.file_wrapper"] = FileWrapper
        result = (mw if native else mw._python_path)(env, lambda *a: None)
        assert type(result) is wrap and not env[SPAN_KEY].is_recording()
        assert b"".join(result) == b"file body"
        result.close()
        exported.wait(["GET"], bytes.fromhex(trace))
    # uWSGI's wsgi.file_wrapper is a function returning the file it was given
    # (it sends with sendfile when it gets that very object back).
    for open_file in (lambda: io.BytesIO(b"file body"), lambda: open(__file__, "rb")):
        f = open_file()

        def app(environ, start_response, f=f):
            start_response("200 OK", [])
            return environ["wsgi.file_wrapper"](f, 4096)
        mw = OtelAgentWSGIMiddleware(app)
        env = _environ(HTTP_TRACEPARENT=TRACE_SAMPLED.format(uuid.uuid4().hex))
        env["wsgi.file_wrapper"] = lambda f, block=8192: f
        result = (mw if native else mw._python_path)(env, lambda *a: None)
        assert result is f and not env[SPAN_KEY].is_recording()
        result.close()
    # Another wrapper's object (a factory's, not the server's class): streamed.
    mw = OtelAgentWSGIMiddleware(lambda environ, start_response: environ["wsgi.file_wrapper"](
        io.BytesIO(b"file body")))
    env = _environ(HTTP_TRACEPARENT=TRACE_SAMPLED.format(uuid.uuid4().hex))
    env["wsgi.file_wrapper"] = lambda f, block=8192: FileWrapper(f, block)
    result = (mw if native else mw._python_path)(env, lambda *a: None)
    assert not isinstance(result, FileWrapper) and env[SPAN_KEY].is_recording()
    assert b"".join(result) == b"file body"
    result.close()
    assert not env[SPAN_KEY].is_recording()


@pytest.mark.parametrize("native", [True, False])
def test_the_file_check_runs_no_code_of_the_application(agent, native):
    """Whether a body is the server's file is decided on real subclasses, the
    same in C and in Python: no __instancecheck__ or __eq__ of the
    application's runs (a failing one would otherwise fail the request), and
    a class registered with io.IOBase is not taken for a file."""
    import io

    import otelagent
    from otelagent.integrations.wsgi import SPAN_KEY, OtelAgentWSGIMiddleware

    class Meta(type):
        def __instancecheck__(cls, obj):
            raise RuntimeError("__instancecheck__ ran")

    class Wrapper(metaclass=Meta):
        pass

    class BadKey(str):
        def __hash__(self):
            return hash("wsgi.file_wrapper")

        def __eq__(self, other):
            raise ValueError("__eq__ ran")

    class Virtual:
        def __iter__(self):
            return iter([b"v"])
    io.IOBase.register(Virtual)

    for body, extra in ((lambda: iter([b"v"]), {"wsgi.file_wrapper": Wrapper}),
                        (lambda: iter([b"v"]), {BadKey("wsgi.file_wrapper"): 1}),
                        (Virtual, {})):
        def app(environ, start_response, body=body):
            start_response("200 OK", [])
            return body()
        mw = OtelAgentWSGIMiddleware(app)
        env = _environ(HTTP_TRACEPARENT=TRACE_SAMPLED.format(uuid.uuid4().hex))
        env.update(extra)
        result = (mw if native else mw._python_path)(env, lambda *a: None)
        assert env[SPAN_KEY].is_recording()  # streamed: not taken for a file
        assert b"".join(result) == b"v"
        result.close()
        assert not env[SPAN_KEY].is_recording()
        assert otelagent.get_current_span() is otelagent.INVALID_SPAN
