"""otelagent for Python beside the OpenTelemetry Python SDK, measured side by
side in one run (each configuration in its own process, configurations
interleaved round by round, medians of the rounds).

    .venv/bin/python bindings/python/bench/bench.py [--rounds N] [--only span,request,load,shared]

1. per span: `with start_as_current_span(...)` + 4 attributes (2 str, 1 int,
   1 bool), CPU time of the emitting thread (and of the whole process, which
   adds the export threads), for the SDK (BatchSpanProcessor, discarding
   exporter), the API without an SDK, otelagent's API, the OpenTelemetry API
   through otelagent's provider, and the floor: one ctypes call carrying a
   packed span.
2. per request in process (no network): FastAPI and Flask apps driven through
   ASGI/WSGI calls, bare, with otelagent's integrations (sampled, not sampled,
   excluded) and with the SDK's contrib instrumentations.
3. under load: uvicorn and gunicorn (1 worker) on loopback driven by wrk:
   req/s, p50, p99 and server CPU per request, one configuration at a time.
4. under load on one shared core: the same servers, all configurations at
   once, pinned to one CPU (the paired figures that noise does not swamp).

otelagent exports OTLP/HTTP to a discarding receiver in another process
(discard_sink.py); the SDK's exporter discards in process without encoding,
which favours the SDK."""

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
PY = sys.executable
BIN = os.path.dirname(PY)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def cpu_of(pid):
    """user+system CPU seconds of a process and its reaped children."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(x) for x in fields[11:15]) / ticks


def tree_cpu(pid):
    """CPU seconds of a process and its live children (gunicorn's worker)."""
    total = cpu_of(pid)
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    except OSError:
        out = ""
    for child in out.split():
        try:
            total += cpu_of(int(child))
        except OSError:
            pass
    return total


# ---------------------------------------------------------------- children

def _measure(fn, n):
    fn_warm = max(n // 10, 200)
    for _ in range(fn_warm):
        fn()
    t0, p0, w0 = time.thread_time_ns(), time.process_time_ns(), time.perf_counter_ns()
    for _ in range(n):
        fn()
    return {"thread_us": (time.thread_time_ns() - t0) / n / 1000,
            "process_us": (time.process_time_ns() - p0) / n / 1000,
            "wall_us": (time.perf_counter_ns() - w0) / n / 1000}


def _start_agent(sink):
    import otelagent
    otelagent.start({"OTEL_EXPORTER_OTLP_ENDPOINT": sink, "OTEL_SERVICE_NAME": "bench"})
    return otelagent


def child_span(mode, n, sink):
    if mode == "sdk":
        from apps import _sdk
        _sdk()
        from opentelemetry import trace
        tracer = trace.get_tracer("bench")
    elif mode == "api":
        from opentelemetry import trace
        tracer = trace.get_tracer("bench")
    elif mode in ("otelagent", "otelagent-pure"):
        # otelagent-pure: started with OTELAGENT_PYTHON_NATIVE=0 (run_child)
        tracer = _start_agent(sink).get_tracer("bench")
    elif mode == "otelagent-otel-api":
        _start_agent(sink)
        import otelagent.otel
        otelagent.otel.install()
        from opentelemetry import trace
        tracer = trace.get_tracer("bench")
    elif mode == "ctypes-floor":
        agent = _start_agent(sink)
        from otelagent import _ffi
        with agent.start_as_current_span("op") as span:
            for k, v in (("http.method", "GET"), ("peer", "db1"), ("count", 42), ("ok", True)):
                span.set_attribute(k, v)
        captured = []
        real = _ffi.record_span
        _ffi.record_span = lambda rec, n: captured.append(rec)
        import otelagent._tracing as T
        T._record_span = _ffi.record_span
        T._native_record = None  # the Python packer, whose record is captured
        with agent.start_as_current_span("op") as span:
            for k, v in (("http.method", "GET"), ("peer", "db1"), ("count", 42), ("ok", True)):
                span.set_attribute(k, v)
        rec = captured[0]
        size = len(rec)
        return _measure(lambda: real(rec, size), n)
    else:
        raise SystemExit(f"unknown mode {mode}")
    start = tracer.start_as_current_span

    def one():
        with start("op") as span:
            span.set_attribute("http.method", "GET")
            span.set_attribute("peer", "db1")
            span.set_attribute("count", 42)
            span.set_attribute("ok", True)
    return _measure(one, n)


def request_target(variant):
    """The path and headers of the per-request measurements: /healthz for
    the excluded variant, a sampled-out traceparent for the unsampled one."""
    path = "/healthz" if variant == "excluded" else "/api/users/42"
    headers = [("host", "127.0.0.1:8000"), ("user-agent", "bench/1.0")]
    if variant == "unsampled":
        headers.append(("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"))
    return path, headers


def wsgi_driver(app, environ, start_response):
    """run(k): k requests to a WSGI app, served as a server does (the body
    iterated, then closed)."""
    def run(k):
        for _ in range(k):
            result = app(dict(environ), start_response)
            for _ in result:
                pass
            close = getattr(result, "close", None)
            if close:
                close()
    return run


def child_request(framework, mode, n, sink):
    """Per request in process: the configured app and a bare copy of it, in
    the same process, driven in alternating batches (the difference between
    separate processes, a few µs from memory layout alone, would swamp the
    overhead being measured)."""
    base_mode, _, variant = mode.partition("/")
    os.environ["OTEL_PYTHON_EXCLUDED_URLS"] = "healthz"
    if base_mode == "otelagent":
        _start_agent(sink)
    import apps
    path, headers = request_target(variant)
    if framework == "fastapi":
        import asyncio
        # The keys uvicorn's scope has (its "state" too): the dictionary's
        # size decides where the keys FastAPI and the middleware add make it
        # grow, a thousand instructions per request when one more key does.
        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
                 "http_version": "1.1", "method": "GET", "scheme": "http", "path": path,
                 "raw_path": path.encode(), "root_path": "", "query_string": b"",
                 "headers": [(k.encode(), v.encode()) for k, v in headers],
                 "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {}}
        statuses = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        loop = asyncio.new_event_loop()

        def driver(app):
            async def run(k):
                for _ in range(k):
                    await app(dict(scope), receive, send)
            # Back to back inside one coroutine: one loop iteration per
            # request would measure the loop.
            return lambda k: loop.run_until_complete(run(k))
        res = _interleaved(driver(apps.make_fastapi("bare")),
                           driver(apps.make_fastapi(base_mode)), n)
        assert set(statuses) == {200}, set(statuses)
        return res
    from werkzeug.test import EnvironBuilder
    environ = EnvironBuilder(path=path, headers=headers).get_environ()
    statuses = []

    def start_response(status, hdrs, exc_info=None):
        statuses.append(status)

    res = _interleaved(wsgi_driver(apps.make_flask("bare"), environ, start_response),
                       wsgi_driver(apps.make_flask(base_mode), environ, start_response), n)
    assert all(s.startswith("200") for s in statuses), set(statuses)
    return res


def _interleaved(bare, configured, n, batch=100):
    """Drives `bare` and `configured` (each run(k): k requests) in batches in
    the order bare, configured, configured, bare, over and over; per-request
    CPU of each (medians over the batches) and the overhead: the median of
    each group's difference, configured minus bare, which cancels the slow
    drifts of a shared machine better than a difference of medians."""
    for run in (bare, configured):
        run(max(n // 10, 200))  # warm-up
    out = {"bare": [[], []], "configured": [[], []]}
    diffs = [[], []]
    for _ in range(max(n // (2 * batch), 1)):
        group = {"bare": [0, 0], "configured": [0, 0]}
        for name in ("bare", "configured", "configured", "bare"):
            run = bare if name == "bare" else configured
            t0, p0 = time.thread_time_ns(), time.process_time_ns()
            run(batch)
            t, p = ((time.thread_time_ns() - t0) / batch / 1000,
                    (time.process_time_ns() - p0) / batch / 1000)
            out[name][0].append(t)
            out[name][1].append(p)
            group[name][0] += t / 2
            group[name][1] += p / 2
        diffs[0].append(group["configured"][0] - group["bare"][0])
        diffs[1].append(group["configured"][1] - group["bare"][1])
    return {"thread_us": statistics.median(out["configured"][0]),
            "process_us": statistics.median(out["configured"][1]),
            "bare_thread_us": statistics.median(out["bare"][0]),
            "bare_process_us": statistics.median(out["bare"][1]),
            "overhead_thread_us": statistics.median(diffs[0]),
            "overhead_process_us": statistics.median(diffs[1])}


# ---------------------------------------------------------------- parent

def run_child(args, env=None):
    full = dict(os.environ)
    full["PYTHONPATH"] = os.pathsep.join(p for p in (HERE, ROOT, full.get("PYTHONPATH")) if p)
    full.update(env or {})
    r = subprocess.run([PY, os.path.join(HERE, "bench.py"), "--child"] + args, env=full,
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def median_of(rows, key):
    return statistics.median(r[key] for r in rows)


def section_span(sink, rounds, n):
    modes = ["sdk", "api", "otelagent", "otelagent-pure", "otelagent-otel-api", "ctypes-floor"]
    res = {m: [] for m in modes}
    for _ in range(rounds):
        for m in modes:
            env = {"OTELAGENT_PYTHON_NATIVE": "0"} if m == "otelagent-pure" else None
            res[m].append(run_child(["span", m, str(n), sink], env))
    sdk = median_of(res["sdk"], "thread_us")
    print("\n### Per span: `with start_as_current_span()` + 4 attributes "
          f"(medians of {rounds} rounds of {n} spans)\n")
    print("| configuration | thread CPU µs/span | process CPU µs/span | wall µs/span | vs SDK |")
    print("|---|---:|---:|---:|---:|")
    names = {"sdk": "OpenTelemetry SDK (BatchSpanProcessor, discarding exporter)",
             "api": "OpenTelemetry API, no SDK (no-op)",
             "otelagent": "otelagent API (native packer)",
             "otelagent-pure": "otelagent API, pure-Python packer (no C compiler at install)",
             "otelagent-otel-api": "OpenTelemetry API through otelagent's TracerProvider",
             "ctypes-floor": "floor: one ctypes call with a packed span"}
    for m in modes:
        t = median_of(res[m], "thread_us")
        print(f"| {names[m]} | {t:.2f} | {median_of(res[m], 'process_us'):.2f} | "
              f"{median_of(res[m], 'wall_us'):.2f} | {sdk / t:.1f}x |")
    return res


def section_request(sink, rounds, n):
    modes = ["bare", "otelagent", "otelagent/unsampled", "sdk", "sdk/unsampled",
             "bare/excluded", "otelagent/excluded", "sdk/excluded"]
    out = {}
    for fw in ("fastapi", "flask"):
        res = {m: [] for m in modes}
        for _ in range(rounds):
            for m in modes:
                res[m].append(run_child(["request", fw, m, str(n), sink]))
        print(f"\n### Per request in process, {fw} (medians of {rounds} rounds of {n} requests, "
              "each against a bare copy of the app in the same process, in batches of 100 "
              "ordered bare, configured, configured, bare; the overhead is the median of the "
              "groups' differences; /healthz for the excluded rows)\n")
        print("| configuration | thread CPU µs/req | bare | overhead | process CPU µs/req | bare "
              "| overhead |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for m in modes:
            t = median_of(res[m], "thread_us")
            tb = median_of(res[m], "bare_thread_us")
            d = median_of(res[m], "overhead_thread_us")
            p = median_of(res[m], "process_us")
            pb = median_of(res[m], "bare_process_us")
            dp = median_of(res[m], "overhead_process_us")
            print(f"| {m} | {t:.1f} | {tb:.1f} | {d:+.1f} | {p:.1f} | {pb:.1f} | {dp:+.1f} |")
        out[fw] = res
    return out


def start_server(framework, mode, sink, cpu=None):
    """A uvicorn or gunicorn (1 worker) serving the bench app in `mode`,
    pinned to `cpu` when given: (process, port)."""
    port = free_port()
    env = dict(os.environ)
    # otelagent-instrument: the bare app, traced with no code change by the
    # zero-code launcher (its bootstrap wraps the framework's app class).
    launcher = [os.path.join(BIN, "otelagent-instrument")] if mode == "otelagent-instrument" else []
    if launcher or mode == "bare-copy":
        mode = "bare"
    env.update({"OTELAGENT_BENCH_MODE": mode, "OTELAGENT_BENCH_APP": framework,
                "OTEL_EXPORTER_OTLP_ENDPOINT": sink, "OTEL_SERVICE_NAME": "bench",
                "PYTHONPATH": os.pathsep.join(p for p in (HERE, ROOT, env.get("PYTHONPATH"))
                                              if p)})
    if framework == "fastapi":
        argv = [os.path.join(BIN, "uvicorn"), "--host", "127.0.0.1", "--port", str(port),
                "--no-access-log", "--log-level", "warning", "apps:fastapi_app"]
    else:
        argv = [os.path.join(BIN, "gunicorn"), "-w", "1", "-b", f"127.0.0.1:{port}",
                "--log-level", "warning", "apps:flask_app"]
    proc = subprocess.Popen(launcher + argv, cwd=HERE, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=pinned(cpu))
    try:
        wait_port(port, proc)
    except BaseException:
        stop_server(proc)
        raise
    return proc, port


def stop_server(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def pinned(cpu):
    """A preexec_fn that pins the child (and what it forks) to `cpu`."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def wrk_argv(port, seconds, connections):
    return ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
            f"http://127.0.0.1:{port}/api/users/42"]


def wrk_figures(text):
    """requests, req/s, p50 and p99 (ms) from wrk's report; any non-2xx
    answer fails the run."""
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    assert errors is None, text

    def pct(p):
        m = re.search(rf"{p}%\s+([\d.]+)(us|ms|s)", text)
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    return (int(re.search(r"(\d+) requests in", text).group(1)),
            float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)), pct(50), pct(99))


def run_load(framework, mode, sink, seconds, connections):
    proc, port = start_server(framework, mode, sink)
    try:
        subprocess.run(wrk_argv(port, 1, connections), capture_output=True)
        cpu0 = tree_cpu(proc.pid)
        r = subprocess.run(wrk_argv(port, seconds, connections), capture_output=True, text=True)
        cpu1 = tree_cpu(proc.pid)
    finally:
        stop_server(proc)
    reqs, rps, p50, p99 = wrk_figures(r.stdout)
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99,
            "cpu_us_per_req": (cpu1 - cpu0) / max(reqs, 1) * 1e6}


def section_load(sink, rounds, seconds, connections):
    modes = ["bare", "otelagent", "otelagent-instrument", "sdk"]
    for fw in ("fastapi", "flask"):
        res = {m: [] for m in modes}
        for r in range(rounds):
            # Every other round in reverse order: a machine that speeds up
            # or slows down during a round favours no configuration.
            for m in modes if r % 2 == 0 else modes[::-1]:
                res[m].append(run_load(fw, m, sink, seconds, connections))
        bare = median_of(res["bare"], "rps")
        server = "uvicorn" if fw == "fastapi" else "gunicorn"
        print(f"\n### Under load, {fw} on {server} (1 worker; wrk -t1 -c{connections} "
              f"-d{seconds}s; medians of {rounds} rounds, in alternating order)\n")
        print("| configuration | req/s | of bare | of bare, paired | p50 ms | p99 ms | "
              "server CPU µs/req |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for m in modes:
            rps = median_of(res[m], "rps")
            # Each round's figure over the same round's bare one: the slow
            # swings of a shared machine cancel (the previous column divides
            # medians taken over the whole run).
            paired = statistics.median(x["rps"] / b["rps"] for x, b in zip(res[m], res["bare"]))
            print(f"| {m} | {rps:.0f} | {rps / bare:.0%} | {paired:.0%} | "
                  f"{median_of(res[m], 'p50_ms'):.2f} | {median_of(res[m], 'p99_ms'):.2f} | "
                  f"{median_of(res[m], 'cpu_us_per_req'):.0f} |")


def section_shared(sink, rounds, seconds, connections):
    """Under load, every configuration at once: all servers pinned to one
    core and driven at the same time by their own wrk (on another core).
    The core's slow swings (other tenants, frequency) then reach every
    configuration alike within a round, and each round's figure over the
    same round's bare one moves by a few percent where separate runs move by
    ten or twenty. Two bare servers, started first and last, are the
    reference: each configuration is divided by their mean in the same
    round, and their own rows (each over that mean) show the method's error;
    the wrk processes start in a rotated order each round. What it measures
    is the cost per request on a core shared with the other servers, whose
    caches they also share (bare Flask costs about half as much again per
    request there as alone): a proxy for the throughput of one worker
    alone, not that throughput."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        print("\n(shared-core load section skipped: it needs two CPUs)")
        return
    driver_cpu, server_cpu = cpus[0], cpus[-1]
    modes = ["bare", "otelagent", "otelagent-instrument", "sdk", "bare-copy"]
    for fw in ("fastapi", "flask"):
        procs = {}
        try:
            for m in modes:
                procs[m] = start_server(fw, m, sink, server_cpu)
            res = {m: [] for m in modes}
            for r in range(rounds + 1):  # the first round warms up
                order = modes[r % len(modes):] + modes[:r % len(modes)]
                out = shared_round(procs, order, seconds if r else 1, connections, driver_cpu)
                if r:
                    for m in modes:
                        res[m].append(out[m])
        finally:
            for p, _ in procs.values():
                stop_server(p)
        server = "uvicorn" if fw == "fastapi" else "gunicorn"
        print(f"\n### Under load on one shared core, {fw} on {server} (1 worker each; the "
              f"{len(modes)} servers pinned to one CPU, driven at the same time by wrk -t1 "
              f"-c{connections} -d{seconds}s each from another; medians of {rounds} rounds; "
              "\"of bare\": over the mean of the two bare servers in the same round)\n")
        print("| configuration | req/s | of bare (quartiles) | p50 ms | p99 ms | "
              "server CPU µs/req | bare's CPU over this one (quartiles) |")
        print("|---|---:|---:|---:|---:|---:|---:|")

        def spread(values):
            v = sorted(values)
            return (f"{statistics.median(v):.1%} ({v[len(v) // 4]:.1%}-"
                    f"{v[(3 * len(v)) // 4]:.1%})")
        bare = [{k: (a[k] + b[k]) / 2 for k in ("rps", "cpu_us_per_req")}
                for a, b in zip(res["bare"], res["bare-copy"])]
        for m in modes:
            ratio = spread(x["rps"] / b["rps"] for x, b in zip(res[m], bare))
            cpu = spread(b["cpu_us_per_req"] / x["cpu_us_per_req"] for x, b in zip(res[m], bare))
            print(f"| {m} | {median_of(res[m], 'rps'):.0f} | {ratio} | "
                  f"{median_of(res[m], 'p50_ms'):.2f} | {median_of(res[m], 'p99_ms'):.2f} | "
                  f"{median_of(res[m], 'cpu_us_per_req'):.0f} | {cpu} |")
        errors = {m: sum(x["socket_errors"] for x in res[m]) for m in modes}
        if any(errors.values()):
            print(f"\nwrk socket errors over the rounds: {errors}")


def shared_round(procs, order, seconds, connections, cpu):
    """One round of section_shared: every server's wrk at once, started in
    `order`; each configuration's figures."""
    cpu0 = {m: tree_cpu(p.pid) for m, (p, _) in procs.items()}
    runs = {}
    try:
        for m in order:
            runs[m] = subprocess.Popen(wrk_argv(procs[m][1], seconds, connections),
                                       stdout=subprocess.PIPE, text=True, preexec_fn=pinned(cpu))
        out = {m: w.communicate()[0] for m, w in runs.items()}
    finally:
        for w in runs.values():
            if w.poll() is None:
                w.kill()
                w.wait()
    cpu1 = {m: tree_cpu(p.pid) for m, (p, _) in procs.items()}
    figures = {}
    for m, (p, _) in procs.items():
        if p.poll() is not None:
            raise RuntimeError(f"the {m} server exited with {p.returncode} during the load")
        reqs, rps, p50, p99 = wrk_figures(out[m])
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                           r"timeout (\d+)", out[m])
        figures[m] = {"rps": rps, "p50_ms": p50, "p99_ms": p99,
                      "cpu_us_per_req": (cpu1[m] - cpu0[m]) / max(reqs, 1) * 1e6,
                      "socket_errors": sum(map(int, errors.groups())) if errors else 0}
    return figures


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind = sys.argv[2]
        if kind == "span":
            res = child_span(sys.argv[3], int(sys.argv[4]), sys.argv[5])
        else:
            res = child_request(sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
        print(json.dumps(res))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--spans", type=int, default=50000)
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--shared-rounds", type=int, default=10)
    ap.add_argument("--only", default="span,request,load,shared")
    a = ap.parse_args()
    port = free_port()
    sink = subprocess.Popen([PY, os.path.join(HERE, "discard_sink.py"), str(port)])
    try:
        wait_port(port, sink)
        endpoint = f"http://127.0.0.1:{port}"
        import platform
        print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f} at start")
        only = a.only.split(",")
        if "span" in only:
            section_span(endpoint, a.rounds, a.spans)
        if "request" in only:
            section_request(endpoint, a.rounds, a.requests)
        if "load" in only:
            section_load(endpoint, a.rounds, a.seconds, a.connections)
        if "shared" in only:
            section_shared(endpoint, a.shared_rounds, a.seconds, a.connections)
    finally:
        sink.terminate()
        sink.wait()


if __name__ == "__main__":
    main()
