"""Real processes for the end-to-end tests: the OpenTelemetry Collector built
from its Go modules, a scripted OTLP/HTTP sink on loopback, and the emitter
program linked against libotelagent.so. The sink decodes every body with the
official opentelemetry-proto package."""

import gzip
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import zstandard
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("OTELAGENT_BUILD_DIR", os.path.join(ROOT, "build"))
EMITTER = os.path.join(BUILD, "tests", "e2e_emitter")
COLLECTOR = os.environ.get(
    "OTELAGENT_COLLECTOR", os.path.join(BUILD, "collector", "otelcol-e2e", "otelcol-e2e"))


def _cmake_cache(name):
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith(name + ":"):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return ""


# The sanitizers the library under test was built with ("" for none).
SANITIZE = _cmake_cache("OTELAGENT_SANITIZE")
# Any report fails the run: ASan stops at its first error, UBSan is made to
# (by default it prints and carries on), and the output is checked as well.
SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=66",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=67",
} if SANITIZE else {}
SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "SUMMARY: UndefinedBehaviorSanitizer")
# The host's proxy settings are not inherited: the proxy tests set them.
PROXY_VARIABLES = ("http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                   "no_proxy", "NO_PROXY", "HTTP_PROXY")


def host_env(extra=None):
    """The test's environment for a program under test: no OTEL_* or proxy
    variable inherited, the sanitizer options when the build has them."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OTEL") and k not in PROXY_VARIABLES}
    env.update(SANITIZER_ENV)
    env.update(extra or {})
    return env


def assert_no_sanitizer_report(output):
    found = [r for r in SANITIZER_REPORTS if r in output]
    assert not found, f"sanitizer report ({found}):\n{output[-6000:]}"


def wait_for(condition, timeout, what):
    """Polls `condition` until it is true; fails with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Request:
    def __init__(self, headers, body, client_port=0, raw_headers=()):
        self.time = time.monotonic()
        self.client_port = client_port
        self.headers = {k.lower(): v for k, v in headers.items()}
        # Every header line as received, in order, repeats included.
        self.raw_headers = list(raw_headers)
        self.raw = body
        encoding = self.headers.get("content-encoding", "")
        self.encoding = encoding
        self.request = None
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "zstd":
                body = zstandard.ZstdDecompressor().decompress(body, max_output_size=64 << 20)
            req = trace_service_pb2.ExportTraceServiceRequest()
            req.ParseFromString(body)
            self.request = req
        except Exception as e:  # kept for the test to report
            self.error = repr(e)

    def spans(self):
        if self.request is None:
            return []
        return [s for rs in self.request.resource_spans for ss in rs.scope_spans for s in ss.spans]


class Sink:
    """An OTLP/HTTP receiver on loopback that records what it gets and answers
    from a script: a list of (status, headers, body, delay_s) consumed one per
    request; when the script is empty it answers 200 with an empty response."""

    def __init__(self, script=None, tls=None):
        """tls: (certificate file, key file) to serve HTTPS."""
        self.requests = []
        self.script = list(script or [])
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with sink.lock:
                    sink.requests.append(Request(dict(self.headers), body, self.client_address[1],
                                                 self.headers.raw_items()))
                    step = sink.script.pop(0) if sink.script else None
                status, headers, payload, delay = step or (200, {}, None, 0)
                if delay:
                    time.sleep(delay)
                if payload is None:
                    payload = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                    headers = dict(headers, **{"Content-Type": "application/x-protobuf"})
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (a timeout test)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self):
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def spans(self):
        with self.lock:
            return [s for r in self.requests for s in r.spans()]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Collector:
    """The real OpenTelemetry Collector: OTLP/HTTP in on `port` and OTLP/gRPC
    on `grpc_port`, forwarded by its otlphttp exporter to `downstream` (a
    Sink)."""

    def __init__(self, tmp_path, downstream, port=None, grpc_port=None):
        if not os.path.exists(COLLECTOR):
            raise AssertionError(f"no collector at {COLLECTOR}; run tests/e2e/collector/build.sh")
        self.port = port or free_port()
        self.grpc_port = grpc_port or free_port()
        self.config = tmp_path / f"collector-{self.port}.yaml"
        self.config.write_text(f"""
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{self.port}
      grpc:
        endpoint: 127.0.0.1:{self.grpc_port}
exporters:
  otlphttp:
    endpoint: {downstream.endpoint}
    compression: none
  debug:
    verbosity: basic
service:
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlphttp, debug]
""")
        self.log = open(tmp_path / f"collector-{self.port}.log", "w")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([COLLECTOR, f"--config={self.config}"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: (port_open(self.port) and port_open(self.grpc_port))
                 or self.proc.poll() is not None, 30, "the collector to listen")
        assert self.proc.poll() is None, "the collector exited; see " + self.log.name
        return self

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def grpc_endpoint(self):
        return f"http://127.0.0.1:{self.grpc_port}"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def emitter_copy(directory):
    """A copy of the emitter and of the library in `directory`, for a user
    who cannot reach the build directory (a clone under root's 0700 home, run
    as nobody); returns (its path, the LD_LIBRARY_PATH it needs)."""
    os.makedirs(directory, exist_ok=True)
    binary = os.path.join(directory, "e2e_emitter")
    shutil.copy2(EMITTER, binary)
    shutil.copy2(os.path.join(BUILD, "libotelagent.so.2"),  # follows the symlink
                 os.path.join(directory, "libotelagent.so.2"))
    for name in os.listdir(directory):
        os.chmod(os.path.join(directory, name), 0o755)
    os.chmod(directory, 0o755)
    return binary, directory


class Emitter:
    """The emitter program; `stats` holds its JSON statistics lines."""

    def __init__(self, mode, endpoint, env=None, args=(), prefix=(), binary=EMITTER):
        """Modes "pause" and "resume" read a line from stdin: see resume().
        `prefix`: a command the emitter is run under (e.g. unshare).
        `binary`: another copy of the emitter (see emitter_copy)."""
        full_env = host_env()
        full_env.update({
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_SERVICE_NAME": "e2e-emitter",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        })
        full_env.update(env or {})
        self.proc = subprocess.Popen([*prefix, binary, mode, *args], env=full_env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     stdin=subprocess.PIPE if mode in ("pause", "resume") else None)
        self.lines = []
        self.err_lines = []
        self.readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err_lines), daemon=True),
        ]
        for r in self.readers:
            r.start()

    @staticmethod
    def _read(stream, into):
        for line in stream:
            into.append(line.rstrip("\n"))

    @property
    def stderr(self):
        return "\n".join(self.err_lines)

    def resume(self):
        """Lets a paused emitter emit its second part (a resume emitter: shut
        down)."""
        self.proc.stdin.write("go\n")
        self.proc.stdin.close()

    def emitted(self):
        return "emitted" in self.lines

    def started(self):
        return "started" in self.lines

    def wait(self, timeout=90):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("the emitter did not exit") from None
        for r in self.readers:
            r.join(5)
        assert_no_sanitizer_report(self.stderr)
        return self.proc.returncode

    def stats(self, who="parent"):
        for line in self.lines:
            if line.startswith("{"):
                d = json.loads(line)
                if d["who"] == who:
                    return d
        raise AssertionError(f"no statistics from the {who}: {self.lines} {self.stderr}")


class GrpcSink:
    """A scripted OTLP/gRPC receiver on loopback (grpcio's server, so the
    HTTP/2 and gRPC framing are a real gRPC implementation's). `script` is a
    list of steps consumed one per call; a step is a dict with any of
    code (a grpc.StatusCode; absent: OK), message, details (the bytes of a
    google.rpc.Status for grpc-status-details-bin), headers_first (send the
    initial metadata before failing, so the status comes in trailers rather
    than as a trailers-only answer), delay (seconds before answering) and
    response (an ExportTraceServiceResponse). When the script is empty a
    call succeeds with an empty response."""

    SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"

    def __init__(self, script=None, port=0, compression=None, tls=None):
        """tls: (certificate file, key file) to serve TLS (ALPN h2)."""
        import grpc
        from concurrent import futures
        self.requests = []  # (monotonic time, peer, metadata dict, request)
        self.script = list(script or [])
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        sink = self

        def export(request, context):
            with sink.lock:
                sink.requests.append((time.monotonic(), context.peer(),
                                      dict(context.invocation_metadata()), request))
                step = sink.script.pop(0) if sink.script else {}
                sink.active += 1
                sink.max_active = max(sink.max_active, sink.active)
            try:
                if step.get("delay"):
                    time.sleep(step["delay"])
                code = step.get("code")
                if code is not None:
                    if step.get("headers_first"):
                        context.send_initial_metadata(())
                    if step.get("details") is not None:
                        context.set_trailing_metadata(
                            (("grpc-status-details-bin", step["details"]),))
                    context.abort(code, step.get("message", ""))
                return step.get("response") or trace_service_pb2.ExportTraceServiceResponse()
            finally:
                with sink.lock:
                    sink.active -= 1

        handler = grpc.method_handlers_generic_handler(self.SERVICE, {
            "Export": grpc.unary_unary_rpc_method_handler(
                export,
                request_deserializer=trace_service_pb2.ExportTraceServiceRequest.FromString,
                response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString),
        })
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                                  handlers=(handler,), compression=compression)
        self.scheme = "https" if tls else "http"
        if tls:
            with open(tls[0], "rb") as c, open(tls[1], "rb") as k:
                creds = grpc.ssl_server_credentials(((k.read(), c.read()),))
            self.port = self.server.add_secure_port(f"127.0.0.1:{port}", creds)
        else:
            self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.server.start()

    @property
    def endpoint(self):
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def spans(self):
        with self.lock:
            return [s for _, _, _, r in self.requests for rs in r.resource_spans
                    for ss in rs.scope_spans for s in ss.spans]

    def close(self, grace=None):
        self.server.stop(grace).wait()


def rpc_status_details(code, message, retry_delay_s=None):
    """The bytes of a google.rpc.Status {code, message, details}, with a
    google.rpc.RetryInfo detail when retry_delay_s is given (googleapis
    google/rpc/status.proto and error_details.proto; encoded by hand, the
    Any and Duration by protobuf's own classes)."""
    from google.protobuf import any_pb2, duration_pb2

    def varint(n):
        out = b""
        while True:
            b = n & 0x7F
            n >>= 7
            if n:
                out += bytes([b | 0x80])
            else:
                return out + bytes([b])

    def field(number, payload):
        return varint(number << 3 | 2) + varint(len(payload)) + payload

    status = varint(1 << 3) + varint(code) + field(2, message.encode())
    if retry_delay_s is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(retry_delay_s * 1e9))
        retry_info = field(1, delay.SerializeToString())
        detail = any_pb2.Any(type_url="type.googleapis.com/google.rpc.RetryInfo", value=retry_info)
        status += field(3, detail.SerializeToString())
    return status


# The fault matrix's rows (test_fault_matrix.py), printed and written out by
# conftest.py at the end of the session.
fault_rows = []


def fault_table(rows):
    """The rows as a Markdown table."""
    out = ["| scenario | spool | emitted | received | duplicates | dropped-and-counted | lost "
           "| counted as |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        dropped = "n/a (killed)" if r["dropped"] is None else r["dropped"]
        out.append(f"| {r['scenario']} | {r['spool']} | {r['emitted']} | {r['received']} "
                   f"| {r['duplicates']} | {dropped} | {r['lost']} | {r['reasons']} |")
    return "\n".join(out) + "\n"


class FaultEndpoint:
    """An OTLP/HTTP endpoint on loopback whose behaviour the test switches at
    any time (set_mode), for the fault matrix. It speaks just enough HTTP/1.1
    (keep-alive, Content-Length bodies) to be in control of every byte:

      ok          decodes the body with opentelemetry-proto, records every
                  span's int attribute `seq` (first attribute named seq) and
                  answers 200 with an empty ExportTraceServiceResponse
      down        nothing listens (connection refused) and every open
                  connection is closed; leaving it binds the same port again
      late        reads the request and never answers: it waits until the
                  client gives up and closes (or `late_cap` s, after which it
                  answers as ok, so that a span is recorded exactly when it
                  was acknowledged)
      reset       reads the request, then closes with SO_LINGER 0 (an RST)
      status      answers `status` with `headers` (e.g. Retry-After)
      garbage     reads the request, answers bytes that are not HTTP, closes

    Spans are recorded only when acknowledged with 200: in every other mode
    the agent is told (or left to find out) that the batch was not taken."""

    MODES = ("ok", "down", "late", "reset", "status", "garbage")

    def __init__(self, mode="ok", port=None, late_cap=20.0):
        self.lock = threading.Lock()
        self.seqs = []  # every seq received and acknowledged, repeats included
        self.requests = 0  # requests read, in any mode
        self.by_mode = {}  # mode -> requests read in it
        self.errors = []  # bodies that did not decode
        self.late_cap = late_cap
        self.port = port or free_port()
        self.listener = None
        self.conns = set()
        self.closed = False
        self.mode, self.status, self.headers = "ok", 200, {}
        self.set_mode(mode)

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def set_mode(self, mode, status=None, headers=None):
        assert mode in self.MODES, mode
        with self.lock:
            was_down = self.listener is None
            self.mode, self.status, self.headers = mode, status or 200, dict(headers or {})
            if mode == "down":
                listener, self.listener = self.listener, None
                conns, self.conns = self.conns, set()
            else:
                listener, conns = None, ()
        if mode == "down":
            if listener is not None:
                # shutdown() wakes the thread blocked in accept(); close()
                # alone would leave the socket listening until it returned.
                try:
                    listener.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                listener.close()
            for c in conns:
                self._close(c, rst=False)
        elif was_down:
            self._listen()

    def _listen(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # The port may be in TIME_WAIT from our own closed connections;
        # SO_REUSEADDR covers that, anything else holding it is a failure.
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        with self.lock:
            self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed: the endpoint went down
            with self.lock:
                if self.listener is not listener:
                    conn.close()
                    return
                self.conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _close(conn, rst):
        try:
            if rst:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        conn.close()

    def _read_request(self, conn, buf):
        """(body, rest of the buffer) or (None, None) when the peer closed."""
        while b"\r\n\r\n" not in buf:
            chunk = conn.recv(65536)
            if not chunk:
                return None, None
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(buf) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return None, None
            buf += chunk
        return buf[:length], buf[length:]

    def _serve(self, conn):
        buf = b""
        try:
            while True:
                body, buf = self._read_request(conn, buf)
                if body is None:
                    break
                with self.lock:
                    mode, status, headers = self.mode, self.status, self.headers
                    self.requests += 1
                    self.by_mode[mode] = self.by_mode.get(mode, 0) + 1
                if mode == "late":
                    conn.settimeout(self.late_cap)
                    try:
                        gave_up = conn.recv(1) == b""
                    except socket.timeout:
                        gave_up = False
                    conn.settimeout(None)
                    if gave_up:
                        break
                    mode = "ok"
                if mode == "ok":
                    self._answer_ok(conn, body)
                elif mode == "status":
                    payload = b"fault matrix: status %d" % status
                    head = [f"HTTP/1.1 {status} Fault", "Content-Type: text/plain",
                            f"Content-Length: {len(payload)}"]
                    head += [f"{k}: {v}" for k, v in headers.items()]
                    conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
                elif mode == "reset":
                    self._close(conn, rst=True)
                    return
                elif mode == "garbage":
                    conn.sendall(b"\x00\x17\xffSSH-2.0-not-http\r\n\xde\xad\xbe\xef" * 4)
                    break
                else:  # went down while the request was read
                    break
        except OSError:
            pass  # the client or a switch to down closed it
        with self.lock:
            self.conns.discard(conn)
        self._close(conn, rst=False)

    def _answer_ok(self, conn, body):
        seqs = []
        try:
            req = trace_service_pb2.ExportTraceServiceRequest()
            req.ParseFromString(body)
            for rs in req.resource_spans:
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        seqs += [a.value.int_value for a in s.attributes if a.key == "seq"][:1]
        except Exception as e:  # kept for the test to report
            with self.lock:
                self.errors.append(repr(e))
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        payload = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(payload) + payload)
        # Recorded once the answer is on its way: a span counts as received
        # exactly when the agent was told it was.
        with self.lock:
            self.seqs += seqs

    def received(self):
        """(set of distinct seqs, number of repeats)."""
        with self.lock:
            seqs = list(self.seqs)
        unique = set(seqs)
        return unique, len(seqs) - len(unique)

    def close(self):
        self.set_mode("down")
