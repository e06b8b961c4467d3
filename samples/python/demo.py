"""The Python demo (the README's first command, samples/demo.sh): the sample
FastAPI service (users, under uvicorn) calling the sample Flask service
(inventory, under gunicorn), both traced by otelagent with the console
exporter (no collector needed). Drives a few requests through them (a nested
span tree with an outbound call, a failing route, a streamed response, an
excluded health check, a request that continues a caller's trace), stops
them, and shows the traces and log lines each printed, then which traces
crossed from one service to the other.

    .venv/bin/python samples/python/demo.py"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
CALLER_TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_LINE = re.compile(r"^trace ([0-9a-f]{32})$")
SPAN_LINE = re.compile(r"^ +(.+?)  [0-9.]+ ms  \[(\w+)\] span=[0-9a-f]{16}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"the service on port {port} did not start")


def start(argv, env):
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


# Loopback requests never go through the caller's HTTP proxy.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with OPENER.open(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


SERVER_NOISE = ("[INFO] ", "Started server", "Waiting for", "Finished server", "Uvicorn running",
                "Shutting down", "application startup", "application shutdown")


def readable(text):
    """The services' output without their start/stop chatter, uvicorn's copy
    of the failing route's traceback (the span carries it) and the middle of
    each exception.stacktrace attribute (its first and last lines stay)."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("ERROR:") and i + 1 < len(lines) and lines[i + 1].startswith("Traceback"):
            i += 2  # uvicorn's log of the exception: indented frames, then the exception line
            while i < len(lines) and lines[i].startswith(" "):
                i += 1
            out.append(f"{line.strip()} (traceback cut: the span below carries it)")
        elif line.strip().startswith('exception.stacktrace="'):
            end = i + 1
            while end < len(lines) and lines[end] != '"':
                end += 1
            out.append(line)
            if end - i > 2:
                out.append(f"{line[:len(line) - len(line.lstrip())]}  ... ({end - i - 2} lines cut)")
            out.extend(lines[max(end - 1, i + 1):end + 1])
            i = end
        elif not any(n.lower() in line.lower() for n in SERVER_NOISE):
            out.append(line)
        i += 1
    return "\n".join(out)


def span_names_by_trace(text):
    """{trace id: [(span name, kind), ...]} from the console exporter's output."""
    traces, current = {}, None
    for line in text.splitlines():
        m = TRACE_LINE.match(line)
        if m:
            current = traces.setdefault(m.group(1), [])
        elif current is not None and (m := SPAN_LINE.match(line)):
            current.append((m.group(1), m.group(2)))
    return traces


def main():
    # The services are configured by OTEL_* variables: the caller's do not
    # leak in, nor its HTTP proxy (the outbound call is to loopback).
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OTEL_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update({"OTEL_TRACES_EXPORTER": "console",
                # One batch at exit, so that each trace prints as one tree.
                "OTEL_BSP_SCHEDULE_DELAY": "600000",
                "OTEL_PYTHON_EXCLUDED_URLS": "healthz",
                "PYTHONPATH": os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)})
    flask_port, fastapi_port = free_port(), free_port()
    services = [("users (FastAPI, uvicorn)", start(
                    [os.path.join(BIN, "uvicorn"), "--host", "127.0.0.1", "--port", str(fastapi_port),
                     "--no-access-log", "samples.python.fastapi_app:app"],
                    dict(env, OTEL_SERVICE_NAME="users", DOWNSTREAM_URL=f"http://127.0.0.1:{flask_port}"))),
                ("inventory (Flask, gunicorn)", start(
                    [os.path.join(BIN, "gunicorn"), "-w", "1", "-b", f"127.0.0.1:{flask_port}",
                     "samples.python.flask_app:app"], dict(env, OTEL_SERVICE_NAME="inventory")))]
    try:
        wait_port(flask_port, services[1][1])
        wait_port(fastapi_port, services[0][1])
        base = f"http://127.0.0.1:{fastapi_port}"
        print("demo: requests to the users service (FastAPI), which calls the inventory service (Flask)")
        for path, what in (("/api/users/42", "nested spans, a log line, an outbound call to inventory"),
                           ("/fail", "an unhandled exception: error status and an exception event"),
                           ("/stream", "a streamed response, a span per chunk"),
                           ("/healthz", "excluded by OTEL_PYTHON_EXCLUDED_URLS: no span")):
            print(f"  GET {path} -> {get(base + path)}  ({what})")
        print(f"  GET /api/users/7 -> {get(base + '/api/users/7', {'traceparent': CALLER_TRACEPARENT})}"
              f"  (continues the caller's trace {CALLER_TRACEPARENT.split('-')[1]})")
    finally:
        outputs = []
        for name, proc in services:
            proc.send_signal(signal.SIGTERM)  # the agent flushes at exit
            out, err = proc.communicate(timeout=30)
            outputs.append((name, out + err))
    # The console exporter writes to stderr, with the services' own log lines
    # (which carry the trace and span ids).
    for name, text in outputs:
        print(f"\n===== {name}: traces and log lines =====")
        print(readable(text))
    print("\n===== traces that crossed from one service to the other =====")
    traces = [(name.split()[0], span_names_by_trace(text)) for name, text in outputs]
    for trace_id in traces[0][1]:
        parts = [f"{service}: {len(t[trace_id])} spans ({t[trace_id][0][0]})"
                 for service, t in traces if trace_id in t]
        if len(parts) > 1:
            print(f"trace {trace_id}: " + ", then ".join(parts))


if __name__ == "__main__":
    main()
