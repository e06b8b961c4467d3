"""The Python demo: the sample FastAPI service (uvicorn) calling the sample
Flask service (gunicorn), both traced by otelagent with the console
exporter (no collector needed). Drives a few requests through them, stops
them, and shows the traces each printed.

    .venv/bin/python samples/python/demo.py"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


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


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def main():
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL")}
    env.update({"OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "200",
                "OTEL_PYTHON_EXCLUDED_URLS": "healthz",
                "PYTHONPATH": os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)})
    flask_port, fastapi_port = free_port(), free_port()
    flask = start([os.path.join(BIN, "gunicorn"), "-w", "1", "-b", f"127.0.0.1:{flask_port}",
                   "samples.python.flask_app:app"], dict(env, OTEL_SERVICE_NAME="inventory"))
    fastapi = start([os.path.join(BIN, "uvicorn"), "--host", "127.0.0.1", "--port",
                     str(fastapi_port), "--no-access-log", "samples.python.fastapi_app:app"],
                    dict(env, OTEL_SERVICE_NAME="users",
                         DOWNSTREAM_URL=f"http://127.0.0.1:{flask_port}"))
    try:
        wait_port(flask_port, flask)
        wait_port(fastapi_port, fastapi)
        base = f"http://127.0.0.1:{fastapi_port}"
        print("demo: driving requests through the services")
        for path in ("/api/users/42", "/fail", "/stream", "/healthz"):
            print(f"  GET {path} -> {get(base + path)}")
        tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        print(f"  GET /api/users/7 (traceparent {tp}) -> "
              f"{get(base + '/api/users/7', {'traceparent': tp})}")
    finally:
        outputs = []
        for name, proc in (("users (FastAPI, uvicorn)", fastapi),
                           ("inventory (Flask, gunicorn)", flask)):
            proc.send_signal(signal.SIGTERM)  # the agent flushes at exit
            out, err = proc.communicate(timeout=30)
            outputs.append((name, out, err))
    for name, out, err in outputs:
        # The console exporter writes to stderr, with the services' own log
        # lines (which carry the trace and span ids).
        print(f"\n===== {name}: traces and log lines =====")
        print("\n".join(line for line in (out + err).splitlines()
                        if "[INFO] " not in line and "Started server" not in line
                        and "Waiting for" not in line and "Finished server" not in line
                        and "Uvicorn running" not in line and "Shutting down" not in line
                        and "application startup" not in line.lower()
                        and "application shutdown" not in line.lower()))

if __name__ == "__main__":
    main()
