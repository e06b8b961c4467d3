"""Forks while spans are open, for tests/python/test_process_models.py.

    python forkspan.py

A thread opens span "held" and keeps it open; the main thread opens span
"outer" and, inside it, forks with os.fork(). The child ends span "in-child"
(a child of "outer", the trace crossing the fork), flushes, leaves "outer"'s
`with` block and exits normally (sys.exit through atexit). The parent then
lets the thread end "held", ends "outer" and exits. Each of "held" and
"outer" belongs to the parent and must arrive once. Prints one JSON line
from each process: {"who": ..., "pid": ..., "flushed": ...}."""

import json
import os
import sys
import threading

import otelagent

otelagent.start()

opened = threading.Event()
release = threading.Event()


def hold():
    with otelagent.start_as_current_span("held"):
        opened.set()
        release.wait(30)


def main():
    t = threading.Thread(target=hold)
    t.start()
    assert opened.wait(10)
    with otelagent.start_as_current_span("outer"):
        pid = os.fork()
        if pid == 0:
            with otelagent.start_as_current_span("in-child", attributes={"app.pid": os.getpid()}):
                pass
            flushed = otelagent.flush(10000)
            print(json.dumps({"who": "child", "pid": os.getpid(), "flushed": flushed}), flush=True)
    if pid == 0:
        sys.exit(0)
    release.set()
    t.join(10)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"who": "parent", "pid": os.getpid(), "child_status": status,
                      "flushed": otelagent.flush(10000)}), flush=True)


if __name__ == "__main__":
    main()
