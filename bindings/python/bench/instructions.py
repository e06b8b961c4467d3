"""CPU instructions per Flask request that otelagent's integration adds, or
per span, counted by valgrind's callgrind: steadier than CPU time on a
shared machine, whose speed drifts more than the figures sought.

    .venv/bin/python bindings/python/bench/instructions.py [--runs N] [--mode otelagent/unsampled]
    .venv/bin/python bindings/python/bench/instructions.py --mode span   # bench.py's span

In span mode the "bare" threads run an empty loop and the configured ones
bench.py's span (`with start_as_current_span()` + 4 attributes, through
otelagent's API), so the figure is the instructions of one such span.

Each run is one process under callgrind holding a bare Flask app and the
configured copy (the apps of bench.py). Four threads serve in turn: bare 500
requests, configured 500, bare 1,500, configured 1,500 (each after 300 of
warm-up in the main thread); callgrind counts each thread apart, and the
overhead per request is ((configured 1500 - configured 500) - (bare 1500 -
bare 500)) / 1000, which cancels every fixed cost. The cycle collector is
off while they serve (a collection in one thread's turn moves its figure by
thousands; the requests' own objects are freed before they end, so they
trigger no more collections than a bare request). Address-space and hash
randomisation stay on: each run lays memory out anew (a context variable's
hash is its address, and costs differ with it), so the mean of several runs
is the figure. Requires valgrind."""

import argparse
import gc
import glob
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))


def span_plan():
    """(bare, configured) for span mode: each run(k) k times."""
    import otelagent
    start = otelagent.get_tracer("bench").start_as_current_span

    def empty(k):
        for _ in range(k):
            pass

    def spans(k):
        for _ in range(k):
            with start("op") as span:
                span.set_attribute("http.method", "GET")
                span.set_attribute("peer", "db1")
                span.set_attribute("count", 42)
                span.set_attribute("ok", True)
    return empty, spans


def child(mode):
    base, _, variant = mode.partition("/")
    os.environ["OTEL_PYTHON_EXCLUDED_URLS"] = "healthz"
    import otelagent
    otelagent.start({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
                     "OTEL_SERVICE_NAME": "bench", "OTEL_BSP_SCHEDULE_DELAY": "100000"})
    if mode == "span":
        bare, configured = span_plan()

        def serve(run, k):
            run(k)
    else:
        import apps
        from bench import request_target, wsgi_driver
        from werkzeug.test import EnvironBuilder
        path, headers = request_target(variant)
        environ = EnvironBuilder(path=path, headers=headers).get_environ()

        def start_response(status, hdrs, exc_info=None):
            pass

        def serve(app, k):
            wsgi_driver(app, environ, start_response)(k)
        bare, configured = apps.make_flask("bare"), apps.make_flask(base)
    serve(bare, 300)
    serve(configured, 300)
    # The cycle collector off while the threads serve: a full collection
    # falling in one thread's turn and not in another's moves a figure by
    # thousands. What the requests allocate is freed before they end, so
    # with or without the collector they trigger no more collections.
    gc.collect()
    gc.disable()
    # The threads live together (valgrind numbers a thread after one that
    # ended with the same number) and serve one after the other.
    turns = [threading.Event() for _ in range(5)]

    def worker(i, app, k):
        turns[i].wait()
        serve(app, k)
        turns[i + 1].set()
    plan = ((bare, 500), (configured, 500), (bare, 1500), (configured, 1500))
    threads = [threading.Thread(target=worker, args=(i, app, k)) for i, (app, k) in enumerate(plan)]
    for t in threads:
        t.start()
    turns[0].set()
    for t in threads:
        t.join()


def thread_totals(prefix):
    """The instruction counts of the last four threads callgrind wrote."""
    files = sorted(glob.glob(prefix + "-*"), key=lambda f: int(f.rsplit("-", 1)[1]))[-4:]
    totals = []
    for f in files:
        with open(f) as fh:
            m = re.search(r"^(?:summary|totals): (\d+)", fh.read(), re.M)
        totals.append(int(m.group(1)))
    return totals


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mode", default="otelagent/unsampled",
                    help="otelagent, otelagent/unsampled, otelagent/excluded (a Flask "
                         "request) or span")
    ap.add_argument("--child", action="store_true")
    args = ap.parse_args()
    if args.child:
        return child(args.mode)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (HERE, ROOT, env.get("PYTHONPATH")) if p)
    overheads = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            prefix = os.path.join(tmp, f"cg.{run}")
            subprocess.run(["valgrind", "--tool=callgrind", "--separate-threads=yes",
                            f"--callgrind-out-file={prefix}", sys.executable,
                            os.path.abspath(__file__), "--child", "--mode", args.mode],
                           env=env, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=900)
            b5, c5, b15, c15 = thread_totals(prefix)
            overheads.append(((c15 - c5) - (b15 - b5)) / 1000)
            bare = (b15 - b5) / 1000
            unit = "iteration of an empty loop" if args.mode == "span" else "request"
            print(f"run {run + 1}: bare {bare:,.0f} instructions/{unit}, "
                  f"{args.mode} {overheads[-1]:+,.0f}", flush=True)
    sd = statistics.stdev(overheads) if len(overheads) > 1 else 0.0
    what = ("instructions per span (with start_as_current_span + 4 attributes)"
            if args.mode == "span" else "instructions per request over bare")
    print(f"{'' if args.mode == 'span' else 'flask '}{args.mode}: "
          f"{statistics.mean(overheads):+,.0f} ± {sd:,.0f} {what} "
          f"(mean ± sd of {len(overheads)} runs)")


if __name__ == "__main__":
    main()
