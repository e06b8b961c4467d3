"""Settings from the environment as a host process sees them: header values
that could break the request never reach the wire, a bad setting gets one
warning at start, and the host's proxy variables are honoured as libcurl
reads them."""

import threading
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from harness import Emitter

DEFAULT_ENDPOINT = "http://localhost:4318/v1/traces"


def test_a_crlf_in_a_header_value_never_reaches_the_wire(sink):
    em = Emitter("bulk", sink.endpoint, {
        "OTEL_EXPORTER_OTLP_HEADERS":
            "x-ok=1,x-crlf=v1%0D%0AX-Injected: yes,x-lf=v2%0AX-Injected2: yes,x-nul=v3%00tail",
    }, ["10"])
    assert em.wait() == 0, em.stderr
    assert em.stats()["exported"] == 10
    assert sink.requests
    for r in sink.requests:
        names = [name.lower() for name, _ in r.raw_headers]
        assert "x-ok" in names
        assert not {"x-crlf", "x-lf", "x-nul", "x-injected", "x-injected2"} & set(names), r.raw_headers
        assert not any("\r" in v or "\n" in v or "\0" in v for _, v in r.raw_headers)
    # One warning, naming the variable and the headers, never a value.
    lines = [line for line in em.err_lines if "OTEL_EXPORTER_OTLP_HEADERS" in line]
    assert len(lines) == 1, em.stderr
    assert all(f'"{n}"' in lines[0] for n in ("x-crlf", "x-lf", "x-nul"))
    assert not any(v in em.stderr for v in ("v1", "v2", "v3", "Injected"))


def test_a_setting_read_for_three_limits_warns_once(sink):
    em = Emitter("bulk", sink.endpoint, {"OTEL_ATTRIBUTE_COUNT_LIMIT": "lots"}, ["5"])
    assert em.wait() == 0, em.stderr
    assert em.stats()["exported"] == 5
    assert em.stderr.count("OTEL_ATTRIBUTE_COUNT_LIMIT") == 1, em.stderr


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "http://[::1:4318", "http://127.0.0.1:0"])
def test_a_malformed_endpoint_is_rejected_at_start(variable, url):
    # The console exporter: the check happens at start whatever the exporter,
    # and nothing here may reach for the default endpoint.
    em = Emitter("bulk", "", {variable: url, "OTEL_TRACES_EXPORTER": "console"}, ["1"])
    assert em.wait() == 0, em.stderr
    warnings = [line for line in em.err_lines if line.startswith("otelagent: ")]
    assert len(warnings) == 1, em.stderr
    assert warnings[0].startswith(f'otelagent: {variable}="{url}" '), warnings
    assert warnings[0].endswith(f"; using {DEFAULT_ENDPOINT}"), warnings


def test_an_oversized_environment_value_is_ignored_with_one_warning(sink):
    em = Emitter("bulk", sink.endpoint, {"OTEL_RESOURCE_ATTRIBUTES": "k=" + "v" * 70000}, ["3"])
    assert em.wait() == 0, em.stderr
    assert em.stats()["exported"] == 3
    assert em.stderr.count("OTEL_RESOURCE_ATTRIBUTES") == 1, em.stderr[:500]
    assert "vvvv" not in em.stderr
    keys = {a.key for r in sink.requests for rs in r.request.resource_spans for a in rs.resource.attributes}
    assert "k" not in keys and "service.name" in keys


class ForwardProxy:
    """A plain HTTP forward proxy on loopback: records each request line (an
    absolute URI, as a client talking to a proxy sends it) and forwards the
    request to its origin."""

    def __init__(self):
        self.request_lines = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                proxy.request_lines.append(self.requestline)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                target = urlsplit(self.path)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("proxy-connection", "connection", "host")}
                conn = HTTPConnection(target.hostname, target.port, timeout=30)
                conn.request("POST", target.path or "/", body=body, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                conn.close()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy():
    p = ForwardProxy()
    yield p
    p.close()


def test_spans_go_through_the_hosts_http_proxy(sink, proxy):
    em = Emitter("bulk", sink.endpoint, {"http_proxy": proxy.url}, ["20"])
    assert em.wait() == 0, em.stderr
    assert em.stats()["exported"] == 20
    assert len(sink.spans()) == 20
    assert proxy.request_lines
    assert set(proxy.request_lines) == {f"POST {sink.endpoint}/v1/traces HTTP/1.1"}


@pytest.mark.parametrize("variable", ["no_proxy", "NO_PROXY"])
def test_no_proxy_bypasses_the_proxy(sink, proxy, variable):
    em = Emitter("bulk", sink.endpoint, {"http_proxy": proxy.url, variable: "127.0.0.1"}, ["20"])
    assert em.wait() == 0, em.stderr
    assert em.stats()["exported"] == 20
    assert len(sink.spans()) == 20
    assert proxy.request_lines == []


def test_upper_case_http_proxy_is_ignored_as_libcurl_does(sink, proxy):
    # A CGI host may have HTTP_PROXY from a request's "Proxy:" header.
    em = Emitter("bulk", sink.endpoint, {"HTTP_PROXY": proxy.url}, ["5"])
    assert em.wait() == 0, em.stderr
    assert len(sink.spans()) == 5
    assert proxy.request_lines == []
