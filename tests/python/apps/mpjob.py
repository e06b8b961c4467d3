"""A multiprocessing job for tests/python/test_process_models.py.

    python mpjob.py METHOD CHILDREN SPANS

The parent ends SPANS spans named "parent" and waits until their export is
in flight (the test's sink holds its answer), then starts CHILDREN
multiprocessing.Process children with the start METHOD (fork, spawn,
forkserver) and a Pool of 2 with the same method, closed and joined. Each child
and each pool task ends SPANS spans named "child" carrying its marker and
pid. A forked child leaves through os._exit (multiprocessing's own), a spawned
one through sys.exit. Prints one JSON line: {"parent": pid, "children": [pids]}."""

import json
import multiprocessing
import os
import sys
import time

import otelagent

if os.environ.get("PROCAPP_SELF_INSTRUMENT", "1") == "1":
    otelagent.start()  # at import: a spawned child imports this module too


def emit(marker, n):
    for i in range(n):
        with otelagent.start_as_current_span("child", attributes={"app.marker": marker,
                                                                  "app.i": i,
                                                                  "app.pid": os.getpid()}):
            pass
    return os.getpid()


def child(marker, n, pids):
    pids.put(emit(marker, n))


def main():
    method, children, spans = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    for i in range(spans):
        with otelagent.start_as_current_span("parent", attributes={"app.i": i}):
            pass
    otelagent.flush(0)  # wakes the exporter now
    deadline = time.monotonic() + 20
    while otelagent.stats()["export_requests"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    inflight = otelagent.stats()["spans_exported"] == 0
    ctx = multiprocessing.get_context(method)
    pids = ctx.Queue()
    procs = [ctx.Process(target=child, args=(f"proc-{k}", spans, pids)) for k in range(children)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0, p.exitcode
    got = [pids.get(timeout=10) for _ in procs]
    pool = ctx.Pool(2)
    got += pool.starmap(emit, [(f"pool-{k}", spans) for k in range(4)])
    pool.close()
    pool.join()
    print(json.dumps({"parent": os.getpid(), "children": got, "inflight": inflight}), flush=True)


if __name__ == "__main__":
    main()
