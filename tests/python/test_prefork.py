"""The pre-fork model: gunicorn --preload imports the app (and starts the
agent) in the master, then forks the workers. Each worker's agent restarts by
itself, Python's random module is reseeded, and every request's spans arrive
with ids no other worker drew."""

import os
import signal
import subprocess
import sys

import requests

from conftest import ROOT
from harness import Sink, free_port, port_open, wait_for

BIN = os.path.dirname(sys.executable)


def test_gunicorn_preload_two_workers(tmp_path):
    sink = Sink()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL")}
    env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint, "OTEL_SERVICE_NAME": "prefork",
                "OTEL_BSP_SCHEDULE_DELAY": "100",
                "PYTHONPATH": os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)})
    log = open(tmp_path / "gunicorn.log", "w")
    proc = subprocess.Popen([os.path.join(BIN, "gunicorn"), "--preload", "-w", "2", "-b",
                             f"127.0.0.1:{port}", "samples.python.flask_app:app"], cwd=ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: port_open(port) or proc.poll() is not None, 60, "gunicorn to listen")
        assert proc.poll() is None, open(log.name).read()
        pids = set()
        n = 0
        # Requests on new connections until both workers have answered.
        while len(pids) < 2 and n < 400:
            r = requests.get(f"http://127.0.0.1:{port}/inventory/{n}",
                             headers={"Connection": "close"})
            pids.add(r.json()["pid"])
            n += 1
        assert len(pids) == 2, "one worker served every request"

        def servers():
            return [s for s in sink.spans() if s.name == "GET /inventory/<int:item_id>"]
        wait_for(lambda: len(servers()) >= n, 30, f"{n} server spans")
        spans = servers()
        assert len(spans) == n
        assert len({s.span_id for s in spans}) == n and len({s.trace_id for s in spans}) == n
        lookups = [s for s in sink.spans() if s.name == "inventory-lookup"]
        by_id = {s.span_id: s for s in spans}
        assert len(lookups) == n and all(c.parent_span_id in by_id for c in lookups)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        sink.close()
