"""Cases for the OpenTelemetry-API-compatible provider. They install the
global TracerProvider, which the API allows once per process, so
test_otel_compat.py runs this file in its own interpreter."""

import uuid

import pytest
from opentelemetry import trace

from conftest import attrs


@pytest.fixture(scope="module")
def provider(agent):
    import otelagent.otel
    p = otelagent.otel.install()
    assert p is not None
    return p


def test_api_spans_are_api_spans_and_share_the_current_span(provider, agent, exported):
    tracer = trace.get_tracer("compat-test", "1.2.3")
    name = f"api-root-{uuid.uuid4().hex[:8]}"
    with tracer.start_as_current_span(name, kind=trace.SpanKind.SERVER,
                                      attributes={"a": 1}) as root:
        assert isinstance(root, trace.Span)
        assert trace.get_current_span() is root
        assert agent.get_current_span() is root  # one current span for both APIs
        with agent.start_as_current_span("own-child") as own:
            assert trace.get_current_span() is own
            with tracer.start_as_current_span("api-grandchild") as g:
                g.set_status(trace.Status(trace.StatusCode.ERROR, "bad"))
        root.add_event("e", {"k": "v"})
    sc = root.get_span_context()
    assert isinstance(sc, trace.SpanContext) and sc.is_valid and not sc.is_remote
    tid = sc.trace_id.to_bytes(16, "big")
    got = exported.wait([name, "own-child", "api-grandchild"], tid)
    r, o, g = got[name][0], got["own-child"][0], got["api-grandchild"][0]
    assert r.kind == 2 and o.parent_span_id == r.span_id and g.parent_span_id == o.span_id
    assert g.status.code == 2 and g.status.message == "bad"
    assert attrs(r) == {"a": 1}


def test_sdk_only_members(provider):
    assert provider.resource.attributes["service.name"] == "pytest-otelagent"
    provider.add_span_processor(object())  # accepted, ignored with a warning
    assert provider.force_flush(5000) is True
    assert trace.get_tracer_provider() is provider
    # set_tracer_provider works once: a second provider is refused by the API.
    import otelagent.otel
    assert otelagent.otel.install() is provider


def test_decorator_sync_async(provider, agent, exported):
    import asyncio
    tracer = trace.get_tracer("compat-deco")

    @tracer.start_as_current_span("deco-sync")
    def f():
        return trace.get_current_span()

    @tracer.start_as_current_span("deco-async")
    async def g():
        await asyncio.sleep(0)
        return trace.get_current_span()

    with tracer.start_as_current_span("deco-root") as root:
        a = f()
        b = asyncio.run(g())
    assert a.name == "deco-sync" and b.name == "deco-async"
    tid = root.get_span_context().trace_id.to_bytes(16, "big")
    got = exported.wait(["deco-root", "deco-sync", "deco-async"], tid)
    for n in ("deco-sync", "deco-async"):
        assert got[n][0].parent_span_id == got["deco-root"][0].span_id


def test_contrib_requests_and_sqlalchemy_under_our_spans(provider, agent, exported):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import requests
    import sqlalchemy
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            body = (self.headers.get("traceparent") or "").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    RequestsInstrumentor().instrument()
    engine = sqlalchemy.create_engine("sqlite://")
    SQLAlchemyInstrumentor().instrument(engine=engine)
    try:
        name = f"own-server-{uuid.uuid4().hex[:8]}"
        with agent.start_as_current_span(name, kind=agent.SpanKind.SERVER) as root:
            tp = requests.get(f"http://127.0.0.1:{srv.server_address[1]}/x").text
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text("select 1")).fetchall()
    finally:
        RequestsInstrumentor().uninstrument()
        SQLAlchemyInstrumentor().uninstrument()
        srv.shutdown()
        srv.server_close()
    tid = root.context.raw[0:16]
    got = exported.wait([name, "GET"], tid)

    client = got["GET"][0]
    assert client.kind == 3 and client.parent_span_id == root.context.raw[16:24]
    assert tp == f"00-{tid.hex()}-{client.span_id.hex()}-01"  # injected by the contrib code
    sql = [s for s in exported.spans(tid) if attrs(s).get("db.system") == "sqlite"
           or attrs(s).get("db.system.name") == "sqlite"]
    assert sql, [s.name for s in exported.spans(tid)]
    for s in sql:
        assert s.parent_span_id == root.context.raw[16:24]
    scopes = {ss.scope.name for r in exported.sink.requests if r.request
              for rs in r.request.resource_spans for ss in rs.scope_spans
              for s in ss.spans if s.trace_id == tid}
    assert "opentelemetry.instrumentation.requests" in scopes
    assert "opentelemetry.instrumentation.sqlalchemy" in scopes


def test_our_fastapi_integration_with_contrib_spans_inside(provider, agent, exported):
    """Our server span (ASGI integration) and a contrib instrumentation's span
    inside the handler share one current span once the provider is installed;
    FastAPI's own telemetry, which reacts to the provider, adds no second
    server span."""
    import sqlalchemy
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    import otelagent.integrations.fastapi as of
    engine = sqlalchemy.create_engine("sqlite://")
    SQLAlchemyInstrumentor().instrument(engine=engine)
    app = FastAPI()

    @app.get("/rows")
    async def rows():
        assert isinstance(trace.get_current_span(), trace.Span)
        with engine.connect() as conn:
            return {"n": conn.execute(sqlalchemy.text("select 1")).scalar()}

    of.instrument_app(app)
    tid = uuid.uuid4().hex
    try:
        r = TestClient(app).get("/rows", headers={
            "traceparent": f"00-{tid}-00f067aa0ba902b7-01"})
    finally:
        SQLAlchemyInstrumentor().uninstrument()
    assert r.json() == {"n": 1}
    got = exported.wait(["GET /rows"], bytes.fromhex(tid))
    server = got["GET /rows"][0]
    spans = exported.spans(bytes.fromhex(tid))
    assert [s.name for s in spans if s.kind == 2] == ["GET /rows"]
    sql = [s for s in spans if s.kind == 3]
    assert sql and all(s.parent_span_id == server.span_id for s in sql), \
        [(s.name, s.span_id.hex(), s.parent_span_id.hex()) for s in spans]
    assert server.parent_span_id.hex() == "00f067aa0ba902b7"


def test_contrib_server_instrumentations_run_on_our_provider(provider, agent, exported):
    """The contrib Flask and FastAPI instrumentations read members of the
    SDK's span from the current span (`kind` among them): with our provider
    they serve the request and export their server spans through the agent."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from flask import Flask
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    flask_app = Flask("compat-flask")

    @flask_app.get("/f/<int:n>")
    def f(n):
        span = trace.get_current_span()
        assert span.kind == trace.SpanKind.SERVER and span.parent is None
        assert span.attributes["http.route"] == "/f/<int:n>"
        return str(n)

    FlaskInstrumentor().instrument_app(flask_app)
    fast = FastAPI()

    @fast.get("/a/{n}")
    async def a(n: int):
        return {"n": n}

    FastAPIInstrumentor.instrument_app(fast)
    with flask_app.test_client() as c:
        assert c.get("/f/7").status_code == 200
    with TestClient(fast) as c:
        assert c.get("/a/8").status_code == 200
    got = exported.wait(["GET /f/<int:n>", "GET /a/{n}"])
    assert got["GET /f/<int:n>"][0].kind == 2 and got["GET /a/{n}"][0].kind == 2


def test_our_flask_integration_names_bridge_spans(provider, agent, exported):
    """With the bridge installed the server span is the bridge's class: the
    native dispatch hands it to the Python naming, and an exception the view
    raises is recorded on it."""
    from flask import Flask

    import otelagent.integrations.flask as ofl
    app = Flask("compat-own-flask")

    @app.get("/own/<int:n>")
    def own(n):
        if n == 0:
            raise ValueError("zero")
        assert trace.get_current_span().is_recording()
        return str(n)

    ofl.instrument_app(app)
    trace_id = uuid.uuid4().hex
    with app.test_client() as c:
        tp = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
        assert c.get("/own/7", headers=tp, buffered=True).status_code == 200
        assert c.get("/own/0", headers=tp, buffered=True).status_code == 500
    # Flask's body is streamed: served, it leaves nothing current (the
    # bridge keeps the current span in the OpenTelemetry context).
    assert not trace.get_current_span().get_span_context().is_valid
    got = exported.wait(["GET /own/<int:n>"], bytes.fromhex(trace_id))
    ok, failed = sorted(got["GET /own/<int:n>"], key=lambda s: len(s.events))
    assert attrs(ok)["http.route"] == "/own/<int:n>" and ok.status.code == 0
    assert [e.name for e in failed.events] == ["exception"] and failed.status.code == 2
    assert attrs(failed)["error.type"] == "ValueError"
