"""The framework and client integrations in process (real Starlette/FastAPI
and Flask apps, real HTTP servers on loopback for the clients)."""

import asyncio
import json
import logging
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import attrs


def uniq():
    return uuid.uuid4().hex[:8]


def server_spans(exported, trace_id):
    return [s for s in exported.spans(trace_id) if s.kind == 2]


def _tp(trace):
    return {"traceparent": f"00-{trace}-00f067aa0ba902b7-01"}


def test_fastapi_twice_and_with_contrib_gives_one_server_span(agent, exported):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    import otelagent.integrations.fastapi as of
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int):
        return {"id": item_id}

    assert of.instrument_app(app) is True
    assert of.instrument_app(app) is False
    FastAPIInstrumentor.instrument_app(app)  # refuses: the app is marked
    trace = uuid.uuid4().hex
    r = TestClient(app).get("/items/3", headers=_tp(trace))
    assert r.status_code == 200
    exported.wait(["GET /items/{item_id}"], bytes.fromhex(trace))
    assert len(server_spans(exported, bytes.fromhex(trace))) == 1


def test_contrib_first_then_ours_adds_nothing(agent, exported):
    from fastapi import FastAPI
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    import otelagent.integrations.fastapi as of
    app = FastAPI()
    FastAPIInstrumentor.instrument_app(app)
    assert of.instrument_app(app) is False
    FastAPIInstrumentor.uninstrument_app(app)


def test_flask_twice_sensitive_headers_exclusions(agent, exported, monkeypatch):
    from flask import Flask
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    import otelagent.integrations.flask as ofl
    monkeypatch.setenv("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "ping,/internal/.*")
    app = Flask(__name__)

    @app.get("/orders/<oid>")
    def order(oid):
        return {"oid": oid}

    @app.get("/ping")
    def ping():
        return "pong"

    assert ofl.instrument_app(app) and not ofl.instrument_app(app)
    FlaskInstrumentor().instrument_app(app)  # refuses: the app is marked
    client = app.test_client(use_cookies=False)
    trace = uuid.uuid4().hex
    h = dict(_tp(trace), Authorization="Basic c2VjcmV0", Cookie="sid=topsecret")
    assert client.get("/orders/9?api_key=k3y&x=1", headers=h, buffered=True).status_code == 200
    assert client.get("/ping", headers=h, buffered=True).status_code == 200
    got = exported.wait(["GET /orders/<oid>"], bytes.fromhex(trace))
    spans = exported.spans(bytes.fromhex(trace))
    assert len(spans) == 1
    a = attrs(got["GET /orders/<oid>"][0])
    assert a["url.query"] == "api_key=REDACTED&x=1"
    assert "c2VjcmV0" not in str(a) and "topsecret" not in str(a)
    assert not any("authorization" in k or "cookie" in k for k in a)


def test_unsampled_and_excluded_requests_record_nothing(agent, exported):
    from flask import Flask

    import otelagent.integrations.flask as ofl
    app = Flask(__name__)
    seen = {}

    @app.get("/x")
    def x():
        import otelagent
        from otelagent.propagation import headers_for
        seen["tp"] = dict(headers_for())["traceparent"]
        seen["recording"] = otelagent.get_current_span().is_recording()
        return "x"

    ofl.instrument_app(app)
    before = agent.stats()["spans_recorded"]
    trace = uuid.uuid4().hex
    app.test_client().get("/x", headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-00"},
                         buffered=True)
    assert seen["recording"] is False
    # The unsampled decision propagates downstream with our own span id.
    assert seen["tp"].startswith(f"00-{trace}-") and seen["tp"].endswith("-00")
    assert agent.stats()["spans_recorded"] == before


def test_asgi_websocket_and_exception(agent, exported):
    from starlette.applications import Starlette
    from starlette.routing import Route, WebSocketRoute
    from starlette.testclient import TestClient

    import otelagent
    import otelagent.integrations.fastapi as of

    async def ws(websocket):
        await websocket.accept()
        await websocket.send_text("hi " + otelagent.get_current_span().name)
        await websocket.close()

    async def crash(request):
        raise ZeroDivisionError("nope")

    app = Starlette(routes=[WebSocketRoute("/ws/{room}", ws), Route("/crash", crash)])
    of.instrument_app(app)
    trace = uuid.uuid4().hex
    client = TestClient(app, raise_server_exceptions=False)
    with client.websocket_connect("/ws/lobby", headers=_tp(trace)) as w:
        assert w.receive_text().startswith("hi ")
    assert client.get("/crash", headers=_tp(trace)).status_code == 500
    got = exported.wait(["WEBSOCKET /ws/{room}", "GET /crash"], bytes.fromhex(trace))
    crash_span = got["GET /crash"][0]
    assert crash_span.status.code == 2
    assert attrs(crash_span)["http.response.status_code"] == 500
    assert attrs(crash_span)["error.type"] == "ZeroDivisionError"
    assert [e.name for e in crash_span.events] == ["exception"]
    assert otelagent.get_current_span() is otelagent.INVALID_SPAN  # nothing leaked


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(404 if self.path.startswith("/missing") else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture(scope="module")
def echo():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_clients_one_span_each_and_headers_injected(agent, exported, echo):
    import httpx
    import requests
    import urllib3

    import otelagent
    from otelagent.integrations import clients
    assert clients.instrument() == ["requests", "httpx", "urllib3"]
    assert clients.instrument() == []  # idempotent
    try:
        with otelagent.start_as_current_span("client-root-" + uniq()) as root:
            r1 = requests.get(echo + "/a?secret=x")            # requests over urllib3
            r2 = httpx.get(echo + "/b")
            r3 = urllib3.PoolManager().request("GET", echo + "/c")
            r4 = asyncio.run(_async_get(httpx, echo + "/missing"))
    finally:
        # The other tests drive apps through httpx (TestClient) with their
        # own traceparent, which the instrumentation would replace.
        clients.uninstrument()
    tid = root.context.raw[0:16]
    spans = [s for s in exported.spans(tid) if s.kind == 3]
    exported.wait([root.name], tid)
    spans = [s for s in exported.spans(tid) if s.kind == 3]
    assert len(spans) == 4, [attrs(s)["url.full"] for s in spans]
    by_path = {attrs(s)["url.full"].split("/")[-1]: s for s in spans}
    assert set(by_path) == {"a?secret=REDACTED", "b", "c", "missing"}
    for body, key in ((r1.json(), "a?secret=REDACTED"), (r2.json(), "b"),
                      (json.loads(r3.data), "c"), (r4, "missing")):
        s = by_path[key]
        assert s.parent_span_id == root.context.raw[16:24]
        assert body["traceparent"] == f"00-{tid.hex()}-{s.span_id.hex()}-01"
    assert by_path["missing"].status.code == 2
    assert attrs(by_path["missing"])["http.response.status_code"] == 404


async def _async_get(httpx, url):
    async with httpx.AsyncClient() as c:
        return (await c.get(url)).json()


def test_logging_fields(agent):
    from otelagent.integrations import logging as ol
    import otelagent
    ol.instrument()
    records = []

    class H(logging.Handler):
        def emit(self, record):
            records.append(record)

    log = logging.getLogger("otelagent-test")
    log.addHandler(H())
    log.setLevel(logging.INFO)
    log.info("outside")
    with otelagent.start_as_current_span("logged") as s:
        log.info("inside")
    assert records[0].otelTraceID == "0"
    assert records[1].otelTraceID == s.context.raw[0:16].hex()
    assert records[1].otelSpanID == s.context.raw[16:24].hex()
    assert records[1].otelTraceSampled is True


def test_flask_handled_exception_and_unsampled_count(agent, exported):
    from flask import Flask

    import otelagent.integrations.flask as ofl
    app = Flask(__name__)

    class Gone(Exception):
        pass

    @app.errorhandler(Gone)
    def gone(e):
        return "gone", 410

    @app.get("/handled")
    def handled():
        raise Gone("moved away")

    ofl.instrument_app(app)
    trace = uuid.uuid4().hex
    r = app.test_client().get("/handled", headers=_tp(trace), buffered=True)
    assert r.status_code == 410
    s = exported.wait(["GET /handled"], bytes.fromhex(trace))["GET /handled"][0]
    assert s.status.code == 0 and attrs(s)["http.response.status_code"] == 410
    # An error handler's answer is the application's: no exception event
    # (the HTTP semantic conventions record exceptions left unhandled).
    assert s.events == [] and "error.type" not in attrs(s)
    before = agent.stats()["spans_sampled_out"]
    app.test_client().get("/handled", headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-00"},
                          buffered=True)
    assert agent.stats()["spans_sampled_out"] == before + 1


def test_flask_exception_in_a_before_request_hook_is_recorded(agent, exported):
    """Exceptions reach the span through Flask's handle_user_exception (no
    per-request cost): a before_request hook's too, not only the view's."""
    from flask import Flask

    import otelagent.integrations.flask as ofl
    app = Flask(__name__)

    @app.before_request
    def check():
        raise PermissionError("no badge")

    @app.get("/guarded/<int:n>")
    def guarded(n):
        return "never"

    ofl.instrument_app(app)
    trace = uuid.uuid4().hex
    r = app.test_client().get("/guarded/1", headers=_tp(trace), buffered=True)
    assert r.status_code == 500
    s = exported.wait(["GET /guarded/<int:n>"], bytes.fromhex(trace))["GET /guarded/<int:n>"][0]
    assert [e.name for e in s.events] == ["exception"]
    assert s.status.code == 2 and s.status.message == "PermissionError: no badge"
    assert attrs(s)["error.type"] == "PermissionError"


def test_flask_streamed_body_spans_are_children_and_nothing_leaks(agent, exported):
    from flask import Flask, stream_with_context

    import otelagent
    import otelagent.integrations.flask as ofl
    app = Flask(__name__)

    @app.get("/stream")
    def stream():
        def chunks():
            for i in range(3):
                with otelagent.start_as_current_span(f"chunk-{i}"):
                    pass
                yield f"{i}\n"
        return app.response_class(stream_with_context(chunks()), mimetype="text/plain")

    ofl.instrument_app(app)
    trace = uuid.uuid4().hex
    environ = {}
    r = app.test_client().get("/stream", headers=_tp(trace), environ_overrides=environ)
    body = b"".join(r.response)  # the server's iteration, outside any span
    assert otelagent.get_current_span() is otelagent.INVALID_SPAN
    r.close()
    assert body == b"0\n1\n2\n"
    got = exported.wait(["GET /stream", "chunk-0", "chunk-2"], bytes.fromhex(trace))
    server = got["GET /stream"][0]
    for i in range(3):
        assert got[f"chunk-{i}"][0].parent_span_id == server.span_id
    assert server.end_time_unix_nano >= got["chunk-2"][0].end_time_unix_nano


def test_fastapi_sync_handler_in_threadpool_and_full_url_exclusion(agent, exported, monkeypatch):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    import otelagent
    import otelagent.integrations.fastapi as of
    monkeypatch.setenv("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", r"^http://testserver/internal\b")
    app = FastAPI()

    @app.get("/sync/{n}")
    def sync_handler(n: int):  # FastAPI runs it in a worker thread
        with otelagent.start_as_current_span("in-thread"):
            pass
        return {"n": n}

    @app.get("/internal/metrics")
    def internal():
        return {}

    of.instrument_app(app)
    trace = uuid.uuid4().hex
    client = TestClient(app)
    assert client.get("/sync/1", headers=_tp(trace)).status_code == 200
    assert client.get("/internal/metrics", headers=_tp(trace)).status_code == 200
    got = exported.wait(["GET /sync/{n}", "in-thread"], bytes.fromhex(trace))
    assert got["in-thread"][0].parent_span_id == got["GET /sync/{n}"][0].span_id
    assert not [s for s in exported.spans(bytes.fromhex(trace)) if s.kind == 2
                and "internal" in s.name]


def test_200_concurrent_fastapi_requests_on_one_loop(agent, exported):
    """200 requests in flight at once on one event loop, through the ASGI
    middleware, handlers awaiting between starting and ending child spans:
    every child under its own request's server span."""
    from fastapi import FastAPI

    import otelagent
    import otelagent.integrations.fastapi as of
    app = FastAPI()

    @app.get("/work/{n}")
    async def work(n: int):
        with otelagent.start_as_current_span(f"step-a-{n}"):
            await asyncio.sleep(0.001 * (n % 7))
            with otelagent.start_as_current_span(f"step-b-{n}"):
                await asyncio.sleep(0)
        await asyncio.sleep(0)
        return {"n": n}

    of.instrument_app(app)
    traces = [uuid.uuid4().hex for _ in range(200)]

    async def one(n):
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": f"/work/{n}",
                 "raw_path": f"/work/{n}".encode(), "root_path": "", "query_string": b"",
                 "headers": [(b"host", b"svc"), (b"traceparent",
                                                f"00-{traces[n]}-00f067aa0ba902b7-01".encode())],
                 "client": ("127.0.0.1", 40000 + n), "server": ("127.0.0.1", 80)}
        await app(scope, receive, send)
        return sent[0]["status"]

    async def main():
        return await asyncio.gather(*(one(n) for n in range(200)))

    assert asyncio.run(main()) == [200] * 200
    exported.wait([f"step-b-{n}" for n in range(200)])
    spans = exported.spans()
    for n in range(200):
        tid = bytes.fromhex(traces[n])
        mine = {s.name: s for s in spans if s.trace_id == tid}
        server, a, b = mine["GET /work/{n}"], mine[f"step-a-{n}"], mine[f"step-b-{n}"]
        assert server.parent_span_id.hex() == "00f067aa0ba902b7"
        assert a.parent_span_id == server.span_id and b.parent_span_id == a.span_id
        assert set(mine) == {"GET /work/{n}", f"step-a-{n}", f"step-b-{n}"}
