"""Every way Python services run their processes, with real servers on
loopback exporting to a real OTLP/HTTP sink (tests/e2e/harness.py, decoded with
opentelemetry-proto): gunicorn (sync with and without --preload, gthread,
uvicorn workers), uvicorn --workers (spawned), uWSGI (C fork, with and
without --lazy-apps), multiprocessing (fork and spawn, children leaving
through os._exit), and a fork while another thread holds a span open.

Each test emits spans with unique markers and asserts that every process's
spans arrive, that no span id arrives twice (so no span is sent by both a
parent and its child), that nothing deadlocks (every wait has a timeout) and
that a pre-fork master's spans, queued or in flight when it forks, are sent
once. The graceful-stop tests send SIGTERM to the masters and the workers and
check what the exit flush delivered and how long the stop took with the
receiver not answering.

The applications instrument themselves (tests/python/apps/procapp.py with
PROCAPP_SELF_INSTRUMENT=1). A launcher that instruments an unmodified app
adds its entry to LAUNCHERS: the same tests then run through it."""

import collections
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import HERE, ROOT, attrs
from harness import Sink, free_port, port_open, wait_for

BIN = os.path.dirname(sys.executable)
APPS = os.path.join(HERE, "apps")

# name -> (argv prefix, environment): how the app is instrumented.
LAUNCHERS = {
    "explicit": ([], {"PROCAPP_SELF_INSTRUMENT": "1"}),
}

# The bound on every agent's flush at exit (OTELAGENT_SHUTDOWN_TIMEOUT_MS);
# the library adds at most 250 ms to end its exporter thread.
SHUTDOWN_TIMEOUT_MS = 1000
# What the export of one batch may take, set far above the exit bound: an exit
# that waited for the export instead of the bound would take this long.
EXPORT_TIMEOUT_MS = 30000

# The servers: name -> (argv after the server's path, callable, workers,
# whether the app is imported in the master before the workers are forked).
SERVERS = {
    "gunicorn-sync": (["gunicorn", "-w", "3", "procapp:wsgi"], 3, False),
    "gunicorn-sync-preload": (["gunicorn", "--preload", "-w", "3", "procapp:wsgi"], 3, True),
    "gunicorn-gthread-preload": (["gunicorn", "--preload", "-k", "gthread", "--threads", "4",
                                  "-w", "2", "procapp:wsgi"], 2, True),
    "gunicorn-uvicorn-worker": (["gunicorn", "-k", "uvicorn_worker.UvicornWorker", "-w", "2",
                                 "procapp:asgi"], 2, False),
    "uvicorn-workers": (["uvicorn", "--workers", "3", "procapp:asgi"], 3, False),
    # --die-on-term: uWSGI 2.0 makes SIGTERM a reload without it.
    "uwsgi": (["uwsgi", "--home", sys.prefix, "--master", "--processes", "3", "--die-on-term",
               "--module", "procapp:wsgi"], 3, True),
    "uwsgi-lazy-apps": (["uwsgi", "--home", sys.prefix, "--master", "--processes", "3", "--die-on-term",
                         "--lazy-apps", "--module", "procapp:wsgi"], 3, False),
}


def _bind_args(server, port):
    if server.startswith("gunicorn"):
        return ["-b", f"127.0.0.1:{port}", "--graceful-timeout", "60"]
    if server.startswith("uvicorn"):
        return ["--host", "127.0.0.1", "--port", str(port)]
    return ["--http-socket", f"127.0.0.1:{port}", "--worker-reload-mercy", "60"]


class Server:
    """A server process (its master) under test, with its log."""

    def __init__(self, name, launcher, endpoint, log, spec=None, **env_extra):
        argv, self.workers, self.preloads = spec or SERVERS[name]
        prefix, launcher_env = LAUNCHERS[launcher]
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL")}
        env.update({
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_SERVICE_NAME": f"procmodel-{name}",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "none",
            "OTEL_BSP_EXPORT_TIMEOUT": str(EXPORT_TIMEOUT_MS),
            "OTELAGENT_SHUTDOWN_TIMEOUT_MS": str(SHUTDOWN_TIMEOUT_MS),
            "PYTHONPATH": os.pathsep.join(p for p in (APPS, ROOT, env.get("PYTHONPATH")) if p),
        })
        env.update(launcher_env)
        env.update({k: str(v) for k, v in env_extra.items()})
        self.log_path = log
        self.log = open(log, "w")
        cmd = prefix + [os.path.join(BIN, argv[0])] + argv[1:] + _bind_args(name, self.port)
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_for(lambda: port_open(self.port) or self.proc.poll() is not None, 60,
                 f"{name} to listen")
        assert self.proc.poll() is None, self.output()

    def output(self):
        with open(self.log_path) as f:
            return f.read()

    def get(self, rid, sleep=0.0):
        r = requests.get(f"http://127.0.0.1:{self.port}/work?rid={rid}&sleep={sleep}",
                         headers={"Connection": "close"}, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def drive(self, n, tag, sleep=0.05):
        """n concurrent requests (each holds its worker for `sleep` s, so the
        server must spread them) until every worker has served one; returns
        {rid: pid}."""
        served = {}
        with ThreadPoolExecutor(8) as pool:
            for round_ in range(20):
                rids = [f"{tag}-{round_}-{i}" for i in range(n)]
                for out in pool.map(lambda rid: self.get(rid, sleep), rids):
                    served[out["rid"]] = out["pid"]
                if len(set(served.values())) >= self.workers:
                    return served
        raise AssertionError(f"only {len(set(served.values()))} of {self.workers} workers "
                             f"served {len(served)} requests")

    def stop(self, timeout=60):
        """SIGTERM to the master; the seconds until it exited."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the master did not exit within {timeout} s of SIGTERM:\n"
                                 + self.output()[-3000:]) from None
        finally:
            self.log.close()
        return time.monotonic() - t0

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _by_name(sink, name):
    return [s for s in sink.spans() if s.name == name]


def _assert_unique(sink):
    ids = collections.Counter(s.span_id for s in sink.spans())
    dup = {k.hex(): n for k, n in ids.items() if n > 1}
    assert not dup, f"span ids received more than once: {dup}"


def _assert_work_spans(sink, served):
    """One "work" span per request, from the pid that served it, each under
    one server span."""
    work = _by_name(sink, "work")
    got = collections.Counter(attrs(s)["app.rid"] for s in work)
    assert set(got) == set(served) and set(got.values()) == {1}, (
        f"{len(served)} requests, {len(work)} work spans, missing "
        f"{sorted(set(served) - set(got))[:5]}, repeated {[r for r, n in got.items() if n > 1][:5]}")
    for s in work:
        assert attrs(s)["app.pid"] == served[attrs(s)["app.rid"]]
    servers = {s.span_id for s in sink.spans() if s.kind == 2}
    assert len(servers) == len(served) and all(s.parent_span_id in servers for s in work)


def _count_work_spans(sink):
    return len(_by_name(sink, "work"))


@pytest.fixture(params=sorted(LAUNCHERS))
def launcher(request):
    return request.param


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_server_process_model(server, launcher, tmp_path):
    """Spans from every worker arrive once; a pre-fork master's spans, whose
    export is in flight when it forks (the sink holds its answer for 1.5 s),
    are sent once, by the master; SIGTERM stops everything."""
    preload = SERVERS[server][2]
    import_spans = 5
    sink = Sink(script=[(200, {}, None, 1.5)] if preload else None)
    srv = Server(server, launcher, sink.endpoint, tmp_path / "server.log",
                 OTEL_BSP_SCHEDULE_DELAY=100, PROCAPP_IMPORT_SPANS=import_spans,
                 PROCAPP_INFLIGHT=int(preload))
    try:
        if preload:
            # (uWSGI listens before it loads the app.)
            wait_for(lambda: "procapp: export" in srv.output(), 30, "the app to load")
            assert "procapp: export in flight" in srv.output(), srv.output()
        served = srv.drive(12, "run")
        workers = set(served.values())
        wait_for(lambda: _count_work_spans(sink) >= len(served), 30,
                 f"{len(served)} work spans while the server runs")
        _assert_work_spans(sink, served)
        imports = collections.Counter(attrs(s)["app.pid"] for s in _by_name(sink, "import"))
        if preload:
            # Imported once, in the master, which is not a worker.
            assert len(imports) == 1 and set(imports.values()) == {import_spans}, imports
            assert not set(imports) & workers
        else:
            # Imported by every worker, each sending its own.
            wait_for(lambda: workers <= set(
                attrs(s)["app.pid"] for s in _by_name(sink, "import")), 30, "import spans")
            imports = collections.Counter(attrs(s)["app.pid"] for s in _by_name(sink, "import"))
            assert set(imports.values()) == {import_spans}, imports
        seconds = srv.stop()
        print(f"{server}: SIGTERM to exit {seconds:.2f} s")
        _assert_unique(sink)
        _assert_work_spans(sink, served)
        assert len(_by_name(sink, "import")) == sum(imports.values())
    finally:
        srv.kill()
        sink.close()



def _run_script(launcher, script, args, endpoint, timeout=60, **env_extra):
    prefix, launcher_env = LAUNCHERS[launcher]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL")}
    env.update({
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_SERVICE_NAME": f"procmodel-{script}",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "none",
        "OTEL_BSP_EXPORT_TIMEOUT": str(EXPORT_TIMEOUT_MS),
        "OTELAGENT_SHUTDOWN_TIMEOUT_MS": "10000",
        "PYTHONPATH": os.pathsep.join(p for p in (APPS, ROOT, env.get("PYTHONPATH")) if p),
    })
    env.update(launcher_env)
    env.update({k: str(v) for k, v in env_extra.items()})
    return subprocess.run(prefix + [sys.executable, os.path.join(APPS, script), *args], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_children_spans_arrive(method, launcher):
    """Children started by multiprocessing (Process and Pool) end spans and
    leave: forked ones through os._exit, where atexit never runs. With a 60 s
    schedule delay nothing leaves a process before it exits, so each child's
    spans arrive only if its exit flushes them. The parent's spans, in flight
    when it forks, arrive once."""
    spans = 4
    sink = Sink(script=[(200, {}, None, 1.5)])
    try:
        r = _run_script(launcher, "mpjob.py", [method, "3", str(spans)], sink.endpoint,
                        OTEL_BSP_SCHEDULE_DELAY=60000)
        assert r.returncode == 0, r.stdout + r.stderr
        out = json.loads(r.stdout.strip().splitlines()[-1])
        assert out["inflight"], "the parent's export was answered before the fork"
        _assert_unique(sink)
        parent = _by_name(sink, "parent")
        assert len(parent) == spans
        got = collections.defaultdict(set)
        for s in _by_name(sink, "child"):
            a = attrs(s)
            got[a["app.marker"]].add(a["app.i"])
            assert a["app.pid"] in out["children"] and a["app.pid"] != out["parent"]
        want = [f"proc-{k}" for k in range(3)] + [f"pool-{k}" for k in range(4)]
        missing = {m: sorted(set(range(spans)) - got[m]) for m in want if got[m] != set(range(spans))}
        assert not missing, f"child spans missing: {missing}"
    finally:
        sink.close()


def test_fork_with_spans_open(launcher):
    """A fork while another thread holds a span open and while the forking
    thread is inside a span: the child traces and flushes (no lock or
    exporter of the parent is in its way), its span continues the parent's
    trace, and each of the parent's open spans arrives once, ended by the
    parent, even though the child also leaves the forking thread's block."""
    sink = Sink()
    try:
        r = _run_script(launcher, "forkspan.py", [], sink.endpoint, timeout=60,
                        OTEL_BSP_SCHEDULE_DELAY=100)
        assert r.returncode == 0, r.stdout + r.stderr
        lines = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
        who = {l["who"]: l for l in lines}
        assert who["child"]["flushed"] and who["parent"]["flushed"], lines
        assert who["parent"]["child_status"] == 0
        _assert_unique(sink)
        held, outer, child = (_by_name(sink, n) for n in ("held", "outer", "in-child"))
        assert len(held) == 1 and len(outer) == 1 and len(child) == 1, (
            len(held), len(outer), len(child))
        assert child[0].parent_span_id == outer[0].span_id
        assert child[0].trace_id == outer[0].trace_id
        assert attrs(child[0])["app.pid"] == who["child"]["pid"]
    finally:
        sink.close()


def _pid_gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


class Blackhole:
    """A receiver that accepts connections (the kernel completes them into
    the backlog) and never reads or answers: the worst a collector can do."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self):
        self.sock.close()


GRACEFUL = ["gunicorn-sync-preload", "gunicorn-uvicorn-worker", "uvicorn-workers", "uwsgi"]


@pytest.mark.parametrize("server", GRACEFUL)
def test_sigterm_flushes_workers_and_master(server, launcher, tmp_path):
    """Nothing is exported while the server runs (a 60 s schedule delay): the
    spans arrive only through the exit flush. SIGTERM to one worker delivers
    that worker's spans; SIGTERM to the master delivers the rest, the master's
    own included."""
    sink = Sink()
    srv = Server(server, launcher, sink.endpoint, tmp_path / "server.log",
                 OTEL_BSP_SCHEDULE_DELAY=60000, PROCAPP_IMPORT_SPANS=3)
    try:
        served = srv.drive(8, "stop")
        assert not _by_name(sink, "work"), "exported before the stop: the test proves nothing"
        victim = next(iter(served.values()))
        os.kill(victim, signal.SIGTERM)
        wait_for(lambda: _pid_gone(victim), 30, f"worker {victim} to exit on SIGTERM")
        mine = {rid for rid, pid in served.items() if pid == victim}
        wait_for(lambda: mine <= {attrs(s)["app.rid"] for s in _by_name(sink, "work")}, 10,
                 f"the spans of worker {victim}, sent as it exited")
        srv.stop()
        _assert_unique(sink)
        _assert_work_spans(sink, served)
        imports = collections.Counter(attrs(s)["app.pid"] for s in _by_name(sink, "import"))
        assert set(imports.values()) == {3}
        if srv.preloads:
            assert len(imports) == 1  # the master's, sent when it exited
    finally:
        srv.kill()
        sink.close()


# What a stop may take beyond the agents' flushes: the server's own stop and
# the interpreters' teardown on a loaded 2-core machine. A master waits for
# its workers' exit flush, then runs its own: two bounds in a row. 4 s was
# exceeded once (uvicorn --workers) with the load average above 5; the point
# is to stay far below the 30 s export timeout a stop would otherwise wait.
STOP_MARGIN_S = 8.0


@pytest.mark.parametrize("server", GRACEFUL)
def test_sigterm_with_the_receiver_hanging_is_bounded(server, launcher, tmp_path):
    """The receiver accepts and never answers; every worker and the master
    hold spans. The stop takes at most two exit bounds (worker, then master)
    plus STOP_MARGIN_S, far below the export timeout it would otherwise wait
    for."""
    hole = Blackhole()
    srv = Server(server, launcher, hole.endpoint, tmp_path / "server.log",
                 OTEL_BSP_SCHEDULE_DELAY=60000, PROCAPP_IMPORT_SPANS=3)
    try:
        served = srv.drive(8, "down")
        victim = next(iter(served.values()))
        t0 = time.monotonic()
        os.kill(victim, signal.SIGTERM)
        wait_for(lambda: _pid_gone(victim), 30, f"worker {victim} to exit on SIGTERM")
        worker_s = time.monotonic() - t0
        master_s = srv.stop()
        bound = (SHUTDOWN_TIMEOUT_MS + 250) / 1000
        print(f"{server}: worker stop {worker_s:.2f} s, master stop {master_s:.2f} s "
              f"(bound {bound:.2f} s per agent)")
        assert worker_s < bound + STOP_MARGIN_S, srv.output()[-3000:]
        assert master_s < 2 * bound + STOP_MARGIN_S, srv.output()[-3000:]
        assert master_s < EXPORT_TIMEOUT_MS / 1000
    finally:
        srv.kill()
        hole.close()



# One worker each: the count of sendfile calls is the worker's.
SENDFILE_SERVERS = {
    "gunicorn-sync": (["gunicorn", "-w", "1", "procapp:wsgi"], 1, False),
    "gunicorn-gthread": (["gunicorn", "-k", "gthread", "--threads", "2", "-w", "1",
                          "procapp:wsgi"], 1, False),
    "uwsgi": (["uwsgi", "--home", sys.prefix, "--master", "--processes", "1", "--die-on-term",
               "--module", "procapp:wsgi"], 1, False),
}


@pytest.mark.parametrize("server", sorted(SENDFILE_SERVERS))
def test_a_file_body_is_sent_with_sendfile(server, launcher, tmp_path):
    """A body in the server's wsgi.file_wrapper (Flask's send_file) reaches
    the server as it is, so the server still sends it with sendfile; its
    request's span ends with the status."""
    sink = Sink()
    srv = Server(server, launcher, sink.endpoint, tmp_path / "server.log",
                 spec=SENDFILE_SERVERS[server], OTEL_BSP_SCHEDULE_DELAY=100,
                 PROCAPP_COUNT_SENDFILE=1)
    try:
        with open(os.path.join(APPS, "procapp.py"), "rb") as f:
            expected = f.read()
        for _ in range(3):
            r = requests.get(f"http://127.0.0.1:{srv.port}/file", timeout=30)
            assert r.status_code == 200 and r.content == expected
        if server.startswith("gunicorn"):
            count = requests.get(f"http://127.0.0.1:{srv.port}/sendfiles", timeout=30).json()
            assert count["sendfiles"] == 3, count
        else:  # uWSGI's request log says how it sent the body
            wait_for(lambda: srv.output().count("GET /file => ") == 3, 30, "uWSGI's log lines")
            lines = [ln for ln in srv.output().splitlines() if "GET /file => " in ln]
            assert all("via sendfile()" in ln for ln in lines), lines
        wait_for(lambda: len([s for s in sink.spans() if s.kind == 2]) >= 3, 30, "server spans")
        spans = [s for s in sink.spans() if s.kind == 2 and attrs(s).get("url.path") == "/file"]
        assert len(spans) == 3
        assert all(attrs(s)["http.response.status_code"] == 200 for s in spans)
    finally:
        srv.kill()
        sink.close()
