"""Zero-code activation: the preload object is invisible to every process that
is not a Python service (same bytes out, same exit status, no thread), the
bootstrap honours the deny list, OTEL_SDK_DISABLED and
OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, keeps the application's own
sitecustomize, reports a failed activation in one line, and leaves the work to
OpenTelemetry when it is set up (one span per operation)."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT
from harness import Sink, wait_for

BIN = os.path.dirname(sys.executable)
PKG = os.path.join(ROOT, "bindings", "python", "otelagent")
PRELOAD = os.path.join(PKG, "_lib", "libotelagent_preload.so")
FULL = os.path.join(PKG, "_lib", "libotelagent.so.2")
BOOTSTRAP = os.path.join(PKG, "_bootstrap")


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL", "PYTHONPATH", "LD_PRELOAD"))}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def native_programs(tmp_path_factory):
    """A statically linked C program and a Go program, built here."""
    tmp = tmp_path_factory.mktemp("native")
    (tmp / "static.c").write_text(
        '#include <stdio.h>\nint main(int c, char **v) { printf("static %d %s\\n", c, v[0]);'
        ' fprintf(stderr, "to stderr\\n"); return 3; }\n')
    subprocess.run(["cc", "-static", "-O1", "-o", str(tmp / "static"), str(tmp / "static.c")],
                   check=True)
    (tmp / "main.go").write_text(textwrap.dedent("""\
        package main

        import (
        \t"fmt"
        \t"os"
        )

        func main() {
        \tfmt.Println("go", len(os.Args), os.Getenv("PYTHONPATH"))
        \tfmt.Fprintln(os.Stderr, "go stderr")
        \tos.Exit(4)
        }
        """))
    env = dict(os.environ, GOPATH=str(tmp / "gopath"),
               GO111MODULE="off", CGO_ENABLED="0")
    subprocess.run(["go", "build", "-o", str(tmp / "gobin"), str(tmp / "main.go")], check=True,
                   env=env, cwd=tmp)
    return str(tmp / "static"), str(tmp / "gobin")


def _commands(native_programs):
    static, gobin = native_programs
    return {
        "sh": ["/bin/sh", "-c", 'ls; echo "PYTHONPATH=$PYTHONPATH"; true'],
        "curl": ["curl", "--version"],
        "pip": [os.path.join(BIN, "pip"), "--version"],
        "static": [static, "x"],
        "go": [gobin, "y"],
    }


@pytest.mark.parametrize("obj", [PRELOAD, FULL], ids=["preload", "full-library"])
def test_preload_leaves_other_processes_alone(obj, native_programs, tmp_path):
    assert os.path.exists(obj), f"{obj} missing: tests/python/setup-venv.sh bundles it"
    for name in ("a", "b"):
        (tmp_path / name).write_text(name)
    for what, argv in _commands(native_programs).items():
        plain = subprocess.run(argv, cwd=tmp_path, env=_clean_env(), capture_output=True)
        pre = subprocess.run(argv, cwd=tmp_path, env=_clean_env(LD_PRELOAD=obj),
                             capture_output=True)
        assert (pre.returncode, pre.stdout, pre.stderr) == \
            (plain.returncode, plain.stdout, plain.stderr), what
        assert plain.stdout, what


def _threads_and_maps(argv, env):
    """(thread count, whether the preload object is mapped) of a running
    process, read from /proc while it sleeps."""
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        exe = os.path.realpath(argv[0])
        wait_for(lambda: os.path.realpath(f"/proc/{proc.pid}/exe") == exe, 10, "exec")
        # Past the constructors once blocked in read(2) on stdin.
        wait_for(lambda: open(f"/proc/{proc.pid}/stat").read().split()[2] == "S", 10, "sleep")
        threads = len(os.listdir(f"/proc/{proc.pid}/task"))
        maps = open(f"/proc/{proc.pid}/maps").read()
        return threads, "libotelagent" in maps
    finally:
        proc.stdin.close()
        proc.wait(10)


def test_preload_starts_no_thread(native_programs):
    static, _ = native_programs
    cat = shutil.which("cat")
    assert _threads_and_maps([cat], _clean_env()) == (1, False)
    # Loaded, constructor run, nothing started.
    assert _threads_and_maps([cat], _clean_env(LD_PRELOAD=PRELOAD)) == (1, True)
    assert _threads_and_maps([cat], _clean_env(LD_PRELOAD=FULL)) == (1, True)


def _python(code, env, cwd=None, argv_tail=(), script_name=None, tmp=None):
    if script_name:
        path = os.path.join(tmp, script_name)
        with open(path, "w") as f:
            f.write(code)
        argv = [sys.executable, path, *argv_tail]
    else:
        argv = [sys.executable, "-c", code, *argv_tail]
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


PROBE = ("import sys, os, json; print(json.dumps({'hooked': any(type(f).__name__ == '_Finder' "
         "for f in sys.meta_path), 'pythonpath': os.environ.get('PYTHONPATH', '')}))")


def test_preload_activates_python_and_deny_list(tmp_path):
    env = _clean_env(LD_PRELOAD=PRELOAD)
    r = _python(PROBE, env)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert json.loads(r.stdout) == {"hooked": True, "pythonpath": BOOTSTRAP}
    # A tool on the deny list (by script name): nothing installed, and its
    # Python children start without the bootstrap.
    r = _python(PROBE, env, script_name="pip", tmp=tmp_path)
    assert json.loads(r.stdout) == {"hooked": False, "pythonpath": ""} and r.stderr == ""
    # ... by module (python -m ansible_probe: the pattern ansible*)
    mod = tmp_path / "mods"
    (mod / "ansible_probe").mkdir(parents=True)
    (mod / "ansible_probe" / "__main__.py").write_text(PROBE)
    r = subprocess.run([sys.executable, "-m", "ansible_probe"], cwd=mod, env=env,
                       capture_output=True, text=True)
    assert json.loads(r.stdout)["hooked"] is False
    # The list can be replaced, or extended with '+'.
    r = _python(PROBE, dict(env, OTELAGENT_PYTHON_DENY=""), script_name="pip", tmp=tmp_path)
    assert json.loads(r.stdout)["hooked"] is True
    r = _python(PROBE, dict(env, OTELAGENT_PYTHON_DENY="+myjob*"), script_name="myjob.py",
                tmp=tmp_path)
    assert json.loads(r.stdout)["hooked"] is False
    r = _python(PROBE, dict(env, OTEL_SDK_DISABLED="true"))
    assert json.loads(r.stdout) == {"hooked": False, "pythonpath": ""}


def test_preload_failure_is_one_line():
    env = _clean_env(LD_PRELOAD=PRELOAD, OTELAGENT_PYTHON_BOOTSTRAP="/nonexistent")
    r = _python("print('ran')", env)
    assert r.returncode == 0 and r.stdout == "ran\n"
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("otelagent: ")


def test_launcher_keeps_the_applications_sitecustomize(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text("import os\nos.environ['THEIRS'] = 'ran'\n")
    code = ("import os, sys, sitecustomize; print(os.environ.get('THEIRS'), "
            "sitecustomize.__file__, any(type(f).__name__ == '_Finder' for f in sys.meta_path))")
    r = subprocess.run([os.path.join(BIN, "otelagent-instrument"), sys.executable, "-c", code],
                       env=_clean_env(PYTHONPATH=str(theirs)), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["ran", str(theirs / "sitecustomize.py"), "True"]


def test_launcher_runs_the_command_and_reports_a_missing_one():
    r = subprocess.run([os.path.join(BIN, "otelagent-instrument"), "/bin/sh", "-c", "exit 7"],
                       env=_clean_env())
    assert r.returncode == 7
    r = subprocess.run([os.path.join(BIN, "otelagent-instrument"), "no-such-command-xyz"],
                       env=_clean_env(), capture_output=True, text=True)
    assert r.returncode == 127 and "no-such-command-xyz" in r.stderr


# A Flask app, a request through a real server thread, and an outbound call
# with requests, in one process; the spans the agent exported are counted
# by the sink afterwards.
APP = """
import os, sys, threading
from wsgiref.simple_server import make_server, WSGIRequestHandler
{setup}
from flask import Flask
import requests

app = Flask(__name__)
{after_app}

@app.get("/hello")
def hello():
    return "hi"

class Quiet(WSGIRequestHandler):
    def log_message(self, *a):
        pass

server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
threading.Thread(target=server.serve_forever, daemon=True).start()
for _ in range(3):
    assert requests.get(f"http://127.0.0.1:{{server.server_port}}/hello").text == "hi"
server.shutdown()
{report}
"""

FLUSH = """
import otelagent
print("flushed", otelagent.flush(10000))
"""

SDK = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
from opentelemetry.instrumentation.requests import RequestsInstrumentor
RequestsInstrumentor().instrument()
"""

SDK_AFTER_APP = """
from opentelemetry.instrumentation.flask import FlaskInstrumentor
FlaskInstrumentor().instrument_app(app)
"""

SDK_REPORT = """
import json, otelagent, otelagent.integrations.clients
print(json.dumps(sorted(s.kind.name for s in exporter.get_finished_spans())))
print("flushed", otelagent.flush(10000))
"""


def _run_app(tmp_path, sink, setup="", after_app="", report=FLUSH, **env):
    path = tmp_path / "app.py"
    path.write_text(APP.format(setup=setup, after_app=after_app, report=report))
    e = _clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint, OTEL_SERVICE_NAME="zero-code",
                   OTEL_BSP_SCHEDULE_DELAY="50", **env)
    return subprocess.run([os.path.join(BIN, "otelagent-instrument"), sys.executable, str(path)],
                          env=e, capture_output=True, text=True, timeout=60)


def _kinds(sink):
    """Span kinds the agent exported (2 server, 3 client). The app flushed
    before it exited (flush returns once the sink has acknowledged), so
    everything it sent is there, duplicates included."""
    return sorted(s.kind for s in sink.spans())


def test_zero_code_traces_flask_and_requests(tmp_path):
    sink = Sink()
    try:
        r = _run_app(tmp_path, sink)
        assert r.returncode == 0 and "flushed True" in r.stdout, r.stderr
        assert _kinds(sink) == [2, 2, 2, 3, 3, 3]
        server = [s for s in sink.spans() if s.kind == 2]
        client = {s.span_id for s in sink.spans() if s.kind == 3}
        assert all(s.name == "GET /hello" and s.parent_span_id in client for s in server)
    finally:
        sink.close()


def test_disabled_instrumentations(tmp_path):
    sink = Sink()
    try:
        r = _run_app(tmp_path, sink, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="flask, urllib3")
        assert r.returncode == 0 and "flushed True" in r.stdout, r.stderr
        assert _kinds(sink) == [3, 3, 3]  # requests still traced, Flask not
    finally:
        sink.close()


def test_activation_failure_is_one_line_and_the_app_runs(tmp_path):
    sink = Sink()
    try:
        r = _run_app(tmp_path, sink, OTELAGENT_LIBRARY="/nonexistent/libotelagent.so.2",
                     report="print('done')")
        assert r.returncode == 0 and r.stdout == "done\n"
        lines = r.stderr.splitlines()
        # One line per instrumentation that could not load the agent, each
        # naming what failed; the app ran untraced.
        assert lines and all(l.startswith("otelagent: could not instrument") for l in lines)
        assert all("runs untraced" in l for l in lines)
    finally:
        sink.close()


def test_opentelemetry_sdk_wins(tmp_path):
    """The application sets up the OpenTelemetry SDK and the contrib Flask and
    requests instrumentations: one server and one client span per request,
    all in the SDK, none from otelagent."""
    sink = Sink()
    try:
        r = _run_app(tmp_path, sink, setup=SDK, after_app=SDK_AFTER_APP, report=SDK_REPORT)
        assert r.returncode == 0, r.stderr
        kinds = json.loads(r.stdout.splitlines()[0])
        assert kinds == ["CLIENT"] * 3 + ["SERVER"] * 3
        assert "flushed True" in r.stdout
        assert sink.spans() == []  # flushed before exit: nothing was sent
        assert "OpenTelemetry SDK TracerProvider is set" in r.stderr
    finally:
        sink.close()


def test_opentelemetry_instrument_wins(tmp_path):
    """opentelemetry-instrument's sitecustomize after ours on the path: ours
    stands down and chains to it; the contrib instrumentations it loads make
    the only spans."""
    import opentelemetry.instrumentation.auto_instrumentation as auto
    sink = Sink()
    try:
        r = _run_app(tmp_path, sink, setup=SDK.replace("RequestsInstrumentor().instrument()", ""),
                     report=SDK_REPORT, PYTHONPATH=os.path.dirname(auto.__file__))
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout.splitlines()[0]) == ["CLIENT"] * 3 + ["SERVER"] * 3
        assert sink.spans() == []
        assert "opentelemetry-instrument is active" in r.stderr
    finally:
        sink.close()


# What a process got from the bootstrap(s): import hooks of ours (any copy's),
# whether the application's own sitecustomize ran, the PYTHONPATH entries
# holding a bootstrap, and whether `import logging` (a hooked module) works.
COPIES_PROBE = """
import json, os, sys
finders = sum(bool(getattr(f, "_otelagent_finder", False)) for f in sys.meta_path)
import logging
print(json.dumps({
    "finders": finders,
    "app_sitecustomize": os.environ.get("APP_SITECUSTOMIZE"),
    "bootstraps": [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                   if os.path.isfile(os.path.join(p or ".", "_otelagent_activation.py"))],
}))
"""


def test_two_bootstrap_copies_activate_once(tmp_path):
    """Two copies of the bootstrap on the path (one directory spelled through
    a symlink and through its real path, or a host-wide preload's copy beside
    a venv's launcher): one import hook, the application's sitecustomize runs
    once, no error, and the hooked imports work."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "sitecustomize.py").write_text("import os\nos.environ['APP_SITECUSTOMIZE'] = 'ran'\n")
    site = tmp_path / "site"  # as a venv's lib64 -> lib
    site.symlink_to(os.path.dirname(PKG))
    host = tmp_path / "host" / "otelagent"  # a second install of the package
    shutil.copytree(BOOTSTRAP, host / "_bootstrap")
    (host / "_lib").mkdir()
    shutil.copy(PRELOAD, host / "_lib")
    launcher = os.path.join(BIN, "otelagent-instrument")
    runs = {
        "two spellings on PYTHONPATH": (
            [sys.executable, "-c", COPIES_PROBE],
            _clean_env(PYTHONPATH=os.pathsep.join(
                [str(site / "otelagent" / "_bootstrap"), BOOTSTRAP, str(app)]))),
        "launcher through a symlink, under the preload": (
            [sys.executable, "-m", "otelagent_instrument", sys.executable, "-c", COPIES_PROBE],
            _clean_env(LD_PRELOAD=PRELOAD, PYTHONPATH=f"{site}{os.pathsep}{app}")),
        "host preload copy and the venv's launcher": (
            [launcher, sys.executable, "-c", COPIES_PROBE],
            _clean_env(LD_PRELOAD=str(host / "_lib" / "libotelagent_preload.so"),
                       PYTHONPATH=str(app))),
    }
    for what, (argv, env) in runs.items():
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stderr == "", (what, r.stderr[-2000:])
        got = json.loads(r.stdout)
        assert got["finders"] == 1 and got["app_sitecustomize"] == "ran", (what, got)
        if what != "two spellings on PYTHONPATH":  # the launcher and the preload add one
            assert len(got["bootstraps"]) == 1, (what, got)


def test_empty_pythonpath_entry_is_kept(tmp_path):
    """An empty PYTHONPATH entry is the current directory to Python
    (PYTHONPATH=":/libs", as ENV PYTHONPATH="${PYTHONPATH}:/libs" makes it):
    a program started by the launcher, and the children of a denied tool,
    still import from their working directory."""
    work, tools = tmp_path / "work", tmp_path / "tools"
    work.mkdir()
    tools.mkdir()
    (work / "settings.py").write_text("GREETING = 'from the working directory'\n")
    # A console-script-like program living elsewhere (sys.path[0] is its own dir).
    job = tools / "runjob"
    job.write_text(f"#!{sys.executable}\nimport settings\nprint(settings.GREETING)\n")
    job.chmod(0o755)
    env = _clean_env(PYTHONPATH=":/libs")
    r = subprocess.run([os.path.join(BIN, "otelagent-instrument"), str(job)], cwd=work, env=env,
                       capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout) == (0, "from the working directory\n"), r.stderr
    # pip (denied) under the preload takes the bootstrap off PYTHONPATH for
    # its children and leaves the rest as it was.
    pip = tools / "pip"
    pip.write_text(f"#!{sys.executable}\nimport os\nprint(os.environ['PYTHONPATH'])\n")
    pip.chmod(0o755)
    r = subprocess.run([str(pip)], cwd=work, env=dict(env, LD_PRELOAD=PRELOAD),
                       capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout) == (0, ":/libs\n"), r.stderr


HOOKED = "import sys; print(any(getattr(f, '_otelagent_finder', False) for f in sys.meta_path))"


def test_runners_leave_their_children_traced(tmp_path):
    """Under the launcher, a denied runner (poetry run, tox, ...) is not traced
    itself but the service it starts is; a plain denied tool (pip) takes the
    bootstrap away from its children. Under the preload every child is judged
    by its own name."""
    app = tmp_path / "app.py"
    app.write_text(HOOKED)
    for name in ("poetry", "tox", "pip"):
        # Stand-ins with the real tools' names (the deny list sees only the
        # name), starting `python app.py` as `poetry run` does.
        tool = tmp_path / name
        tool.write_text(f"#!{sys.executable}\nimport subprocess, sys\n{HOOKED}\n"
                        "sys.stdout.flush()\nsys.exit(subprocess.call(sys.argv[2:]))\n")
        tool.chmod(0o755)
    launcher = os.path.join(BIN, "otelagent-instrument")
    expect = {"poetry": "False\nTrue\n", "tox": "False\nTrue\n", "pip": "False\nFalse\n"}
    for name, out in expect.items():
        argv = [str(tmp_path / name), "run", sys.executable, str(app)]
        r = subprocess.run([launcher, *argv], env=_clean_env(), capture_output=True, text=True,
                           timeout=60)
        assert (r.returncode, r.stdout, r.stderr) == (0, out, ""), name
        r = subprocess.run(argv, env=_clean_env(LD_PRELOAD=PRELOAD), capture_output=True,
                           text=True, timeout=60)
        assert (r.returncode, r.stdout, r.stderr) == (0, "False\nTrue\n", ""), name


OTEL_API_APP = """
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
import otelagent, otelagent.otel
otelagent.start()
otelagent.otel.install()
from opentelemetry.instrumentation.requests import RequestsInstrumentor
RequestsInstrumentor().instrument()
import requests

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass

srv = HTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
for path in ("/traced", "/traced", "/traced", "/excluded"):
    requests.get(f"http://127.0.0.1:{srv.server_port}{path}")
srv.shutdown()
print("flushed", otelagent.flush(10000))
"""


def test_contrib_instrumentation_over_otelagent_otel_wins(tmp_path):
    """otelagent.otel.install() with a contrib instrumentation (requests) in
    the application: the contrib makes the one client span per call, through
    our provider; the zero-code hooks of requests and urllib3 (below it) stand
    down, and a URL the user excluded from the contrib stays untraced."""
    app = tmp_path / "app.py"
    app.write_text(OTEL_API_APP)
    sink = Sink()
    try:
        env = _clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint, OTEL_SERVICE_NAME="otel-api",
                         OTEL_BSP_SCHEDULE_DELAY="50",
                         OTEL_PYTHON_REQUESTS_EXCLUDED_URLS="excluded")
        r = subprocess.run([os.path.join(BIN, "otelagent-instrument"), sys.executable, str(app)],
                           env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "flushed True" in r.stdout, r.stderr
        scopes = [(ss.scope.name, s.kind) for req in sink.requests
                  for rs in req.request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        assert scopes == [("opentelemetry.instrumentation.requests", 3)] * 3
    finally:
        sink.close()


DEBIAN_UWSGI = "/usr/bin/uwsgi-core"


@pytest.mark.skipif(not os.path.exists(DEBIAN_UWSGI)
                    or not os.path.exists("/usr/lib/uwsgi/plugins/python3_plugin.so"),
                    reason="Debian's uWSGI (apt-get install uwsgi-core uwsgi-plugin-python3)")
def test_preload_activates_debian_uwsgi(tmp_path):
    """Debian's uWSGI loads libpython as a plugin after main, so no Python
    symbol is there when the preload runs: it is recognised by its
    executable's name. Its Python (the system's) is activated."""
    probe = tmp_path / "probe.py"
    probe.write_text(HOOKED.replace("print(", "print('hooked', ") + "\nsys.stdout.flush()\n")
    argv = [DEBIAN_UWSGI, "--plugin", "python3", "--pyrun", str(probe)]
    r = subprocess.run(argv, env=_clean_env(LD_PRELOAD=PRELOAD), capture_output=True, text=True,
                       timeout=60, cwd=tmp_path)
    assert r.returncode == 0 and "hooked True" in r.stdout + r.stderr, r.stdout + r.stderr


LOGGING_PROBE = """
import json, logging, sys
maps = open("/proc/self/maps").read()
loaded = {"agent_mapped": "libotelagent.so" in maps, "package": "otelagent" in sys.modules}
records = []
class H(logging.Handler):
    def emit(self, record):
        records.append(record)
log = logging.getLogger("probe")
log.addHandler(H())
log.setLevel(logging.INFO)
log.info("outside")
import otelagent
otelagent.start()
with otelagent.start_as_current_span("logged") as s:
    log.info("inside")
raw = s.context.raw
print(json.dumps(dict(loaded, fields=[
    [r.otelTraceID, r.otelSpanID, r.otelTraceSampled, r.otelServiceName] for r in records],
    want=[raw[0:16].hex(), raw[16:24].hex()])))
"""


def test_logging_import_does_not_load_the_agent(tmp_path):
    """`import logging` (most Python programs do, through asyncio and the
    like) installs the correlation fields without loading the agent; a span
    made later is still seen by the factory."""
    sink = Sink()
    try:
        r = subprocess.run([os.path.join(BIN, "otelagent-instrument"), sys.executable, "-c",
                            LOGGING_PROBE],
                           env=_clean_env(OTEL_SERVICE_NAME="logs",
                                          OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint),
                           capture_output=True, text=True, timeout=60)
    finally:
        sink.close()
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert (got["agent_mapped"], got["package"]) == (False, False)
    trace_id, span_id = got["want"]
    assert got["fields"] == [["0", "0", False, "logs"], [trace_id, span_id, True, "logs"]]


def test_log_correlation_format_is_the_integrations():
    sys.path.insert(0, BOOTSTRAP)
    try:
        import _otelagent_activation
    finally:
        sys.path.remove(BOOTSTRAP)
    from otelagent.integrations import logging as integ
    assert _otelagent_activation.LOG_FORMAT == integ.DEFAULT_FORMAT


def test_environment_that_turns_activation_off():
    """OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=* disables every instrumentation
    (opentelemetry-instrument's wildcard); the preload reads OTEL_SDK_DISABLED
    as the library does (blanks around, any case) and leaves PYTHONPATH alone
    for an interpreter that ignores it (-E, -I) or skips site (-S), so the
    programs that one starts are not activated either."""
    launcher = os.path.join(BIN, "otelagent-instrument")
    r = subprocess.run([launcher, sys.executable, "-c", PROBE], capture_output=True, text=True,
                       env=_clean_env(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="*"), timeout=60)
    assert json.loads(r.stdout)["hooked"] is False and r.stderr == ""
    for value in ("true", " true", "TRUE\t"):
        r = _python(PROBE, _clean_env(LD_PRELOAD=PRELOAD, OTEL_SDK_DISABLED=value))
        assert json.loads(r.stdout) == {"hooked": False, "pythonpath": ""}, value
    for flags in (["-E"], ["-I"], ["-S"], ["-uEs"], ["-X", "dev", "-I"], ["-W", "ignore", "-S"]):
        r = subprocess.run([sys.executable, *flags, "-c", PROBE], capture_output=True, text=True,
                           env=_clean_env(LD_PRELOAD=PRELOAD), timeout=60)
        assert json.loads(r.stdout) == {"hooked": False, "pythonpath": ""}, flags
    # Options that keep PYTHONPATH and site still activate.
    for flags in (["-u"], ["-X", "dev"], ["-W", "E"], ["-bB"]):
        r = subprocess.run([sys.executable, *flags, "-c", PROBE], capture_output=True, text=True,
                           env=_clean_env(LD_PRELOAD=PRELOAD), timeout=60)
        assert json.loads(r.stdout) == {"hooked": True, "pythonpath": BOOTSTRAP}, flags


def test_deny_list_finds_the_module_behind_combined_flags(tmp_path):
    """`python -um pip`, `-bBm`, `-W ignore -m`: the module is found behind
    any short options; without sys.orig_argv (Python 3.9) it is read from
    /proc/self/cmdline."""
    mods = tmp_path / "mods"
    (mods / "poetry").mkdir(parents=True)  # a module on the deny list
    (mods / "poetry" / "__main__.py").write_text(
        "import sys\n" + HOOKED + "\n"
        f"sys.path.insert(0, {BOOTSTRAP!r})\n"
        "import _otelagent_activation as a\n"
        "del sys.orig_argv  # as Python 3.9 has it\n"
        "print(a.program_names(['-m'], a._orig_argv))\n")
    env = _clean_env(LD_PRELOAD=PRELOAD)
    for flags in (["-m"], ["-um"], ["-bBm"], ["-W", "ignore", "-m"], ["-Xdev", "-Em"]):
        r = subprocess.run([sys.executable, *flags, "poetry"], cwd=mods, env=env,
                           capture_output=True, text=True, timeout=60)
        assert (r.stdout, r.stderr) == ("False\n['poetry']\n", ""), flags


OLD_PYTHONS = [p for p in ("/root/.pyenv/versions/2.7.18/bin/python2.7",
                           "/root/.pyenv/versions/3.8.18/bin/python3.8",
                           "/usr/bin/python2.7") if os.path.exists(p)]


@pytest.mark.skipif(not OLD_PYTHONS, reason="no Python older than 3.9 on this machine")
@pytest.mark.parametrize("python", OLD_PYTHONS)
def test_older_pythons_are_left_alone(python, tmp_path):
    """An interpreter older than 3.9: the preload leaves PYTHONPATH alone, and
    under the launcher (a 2.7 started by a traced service inherits
    PYTHONPATH) the bootstrap imports cleanly and runs the next
    sitecustomize."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text("import os\nos.environ['THEIRS'] = 'ran'\n")
    code = "import os; print(os.environ.get('THEIRS')); print(os.environ.get('PYTHONPATH'))"
    r = subprocess.run([python, "-c", code], env=_clean_env(LD_PRELOAD=PRELOAD),
                       capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (0, "None\nNone\n", "")
    r = subprocess.run([os.path.join(BIN, "otelagent-instrument"), python, "-c", code],
                       env=_clean_env(PYTHONPATH=str(theirs)), capture_output=True, text=True,
                       timeout=60)
    assert (r.returncode, r.stdout.split("\n")[0], r.stderr) == (0, "ran", "")


def test_hooks_on_two_threads_run_before_each_import_returns():
    """A hooked module imported on one thread while another thread is running
    a hook: the import returns with its hook run, not queued behind the other
    thread's (nor lost if that one was finishing)."""
    import threading
    sys.path.insert(0, BOOTSTRAP)
    try:
        import _otelagent_activation as activation
    finally:
        sys.path.remove(BOOTSTRAP)
    started, release, ran = threading.Event(), threading.Event(), []

    def slow_hook(module):
        started.set()
        assert release.wait(30)

    other = threading.Thread(target=activation._run, args=("slow", slow_hook, None))
    other.start()
    try:
        assert started.wait(30)
        activation._run("quick", ran.append, "module")
        assert ran == ["module"]
    finally:
        release.set()
        other.join(30)
