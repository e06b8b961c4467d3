"""End to end: the sample FastAPI service under a real uvicorn and the sample
Flask service under a real gunicorn, separate processes, driven by real HTTP
requests on loopback, exporting through the real OpenTelemetry Collector to a
sink that decodes with opentelemetry-proto. Asserts the complete span tree.

Three ways to turn tracing on, the same assertions for each: the samples'
explicit set-up, and with that set-up off (OTELAGENT_SAMPLE_ZERO_CODE=1) the
otelagent-instrument launcher and the preload object in LD_PRELOAD."""

import os
import signal
import subprocess
import sys

import pytest
import requests

from conftest import ROOT, attrs
from harness import Collector, Sink, free_port, port_open, wait_for

BIN = os.path.dirname(sys.executable)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
UPSTREAM_SPAN = "00f067aa0ba902b7"


class Service:
    def __init__(self, argv, port, env, log):
        self.port = port
        self.log = open(log, "w")
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_for(lambda: port_open(port) or self.proc.poll() is not None, 60,
                 f"{argv[0]} to listen")
        assert self.proc.poll() is None, open(log).read()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


PRELOAD = os.path.join(ROOT, "bindings", "python", "otelagent", "_lib",
                       "libotelagent_preload.so")


def _env(collector, service, mode="explicit"):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL")}
    if mode != "explicit":
        # No code change: the launcher or the preload does it all, the log
        # format included (the logging instrumentation's convention).
        env["OTELAGENT_SAMPLE_ZERO_CODE"] = "1"
        env["OTEL_PYTHON_LOG_CORRELATION"] = "true"
    if mode == "preload":
        env["LD_PRELOAD"] = PRELOAD
    env.update({
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_SERVICE_NAME": service,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_PYTHON_EXCLUDED_URLS": "healthz",
        "PYTHONPATH": os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p),
    })
    return env


@pytest.fixture(scope="module", params=["explicit", "launcher", "preload"])
def services(request, tmp_path_factory):
    mode = request.param
    if mode == "preload" and not os.path.exists(PRELOAD):
        pytest.fail(f"{PRELOAD} missing: tests/python/setup-venv.sh bundles it")
    launch = [os.path.join(BIN, "otelagent-instrument")] if mode == "launcher" else []
    tmp = tmp_path_factory.mktemp("e2e")
    sink = Sink()
    collector = Collector(tmp, sink).start()
    flask_port, fastapi_port = free_port(), free_port()
    flask = Service(launch + [os.path.join(BIN, "gunicorn"), "-w", "1", "-b",
                              f"127.0.0.1:{flask_port}", "samples.python.flask_app:app"],
                    flask_port, _env(collector, "inventory", mode), tmp / "flask.log")
    env = _env(collector, "users", mode)
    env["DOWNSTREAM_URL"] = f"http://127.0.0.1:{flask_port}"
    fastapi = Service(launch + [os.path.join(BIN, "uvicorn"), "--host", "127.0.0.1", "--port",
                                str(fastapi_port), "samples.python.fastapi_app:app"],
                      fastapi_port, env, tmp / "fastapi.log")
    yield sink, fastapi, flask
    fastapi.stop()
    flask.stop()
    collector.stop()
    sink.close()


def _by_name(sink, trace_hex, names):
    found = {}

    def have():
        found.clear()
        for s in sink.spans():
            if s.trace_id.hex() == trace_hex:
                found.setdefault(s.name, []).append(s)
        return all(n in found for n in names)

    wait_for(have, 30, f"spans {names} of trace {trace_hex}")
    return found


def test_span_tree_across_fastapi_and_flask(services):
    sink, fastapi, flask = services
    r = requests.get(fastapi.url("/api/users/42?password=hunter2&page=1"), headers={
        "traceparent": f"00-{TRACE}-{UPSTREAM_SPAN}-01",
        "Authorization": "Bearer secret-token", "Cookie": "session=abc",
        "User-Agent": "e2e-test/1.0"})
    assert r.status_code == 200 and r.json()["inventory"]["count"] == 7
    names = ["GET /api/users/{user_id}", "load-user", "db-query", "GET",
             "GET /inventory/<int:item_id>", "inventory-lookup"]
    got = _by_name(sink, TRACE, names)
    server = got["GET /api/users/{user_id}"][0]
    load, query = got["load-user"][0], got["db-query"][0]
    client = got["GET"][0]
    down = got["GET /inventory/<int:item_id>"][0]
    lookup = got["inventory-lookup"][0]
    # The tree: upstream -> server -> load-user -> db-query; server -> client
    # -> downstream server -> inventory-lookup.
    assert server.parent_span_id.hex() == UPSTREAM_SPAN and server.kind == 2
    assert load.parent_span_id == server.span_id and query.parent_span_id == load.span_id
    assert client.parent_span_id == server.span_id and client.kind == 3
    assert down.parent_span_id == client.span_id and down.kind == 2
    assert lookup.parent_span_id == down.span_id
    a = attrs(server)
    assert a["http.request.method"] == "GET" and a["http.route"] == "/api/users/{user_id}"
    assert a["url.path"] == "/api/users/42" and a["url.scheme"] == "http"
    assert a["url.query"] == "password=REDACTED&page=1"
    assert a["http.response.status_code"] == 200
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == fastapi.port
    assert a["client.address"] == "127.0.0.1" and a["user_agent.original"] == "e2e-test/1.0"
    assert a["network.protocol.version"] == "1.1"
    assert server.status.code == 0
    everything = " ".join(str(attrs(s)) for spans in got.values() for s in spans)
    for secret in ("secret-token", "session=abc", "hunter2", "s3cret"):
        assert secret not in everything
    ca = attrs(client)
    assert ca["url.full"] == f"http://127.0.0.1:{flask.port}/inventory/42?token=REDACTED"
    assert ca["http.response.status_code"] == 200 and ca["server.port"] == flask.port
    da = attrs(down)
    assert da["http.route"] == "/inventory/<int:item_id>" and da["http.response.status_code"] == 200
    # Log records carry the trace id in both services.
    wait_for(lambda: f"trace_id={TRACE}" in open(fastapi.log.name).read()
             and f"trace_id={TRACE}" in open(flask.log.name).read(), 10, "correlated log lines")
    line = next(l for l in open(fastapi.log.name) if "loaded user 42" in l)
    assert f"span_id={load.span_id.hex()}" in line and "resource.service.name=users" in line


def test_failing_routes_and_exclusions(services):
    sink, fastapi, flask = services
    trace = "5bf92f3577b34da6a3ce929d0e0e4737"
    tp = {"traceparent": f"00-{trace}-{UPSTREAM_SPAN}-01"}
    assert requests.get(fastapi.url("/fail"), headers=tp).status_code == 500
    assert requests.get(flask.url("/boom"), headers=tp).status_code == 500
    assert requests.get(fastapi.url("/healthz"), headers=tp).status_code == 200
    assert requests.get(flask.url("/healthz"), headers=tp).status_code == 200
    r = requests.get(fastapi.url("/stream"), headers=tp)
    assert r.text == "chunk 0\nchunk 1\nchunk 2\n"
    got = _by_name(sink, trace, ["GET /fail", "GET /boom", "GET /stream", "chunk"])
    for name, exc_type in (("GET /fail", "RuntimeError"), ("GET /boom", "ValueError")):
        s = got[name][0]
        assert s.status.code == 2, name
        assert attrs(s)["http.response.status_code"] == 500
        ev = [e for e in s.events if e.name == "exception"]
        assert len(ev) == 1 and attrs(ev[0])["exception.type"] == exc_type
    stream = got["GET /stream"][0]
    assert len(got["chunk"]) == 3
    assert all(c.parent_span_id == stream.span_id for c in got["chunk"])
    assert not any("healthz" in s.name or attrs(s).get("url.path") == "/healthz"
                   for s in sink.spans())
    # One server span per request, even though every span of both services
    # went through the collector.
    assert len(got["GET /fail"]) == 1 and len(got["GET /boom"]) == 1
