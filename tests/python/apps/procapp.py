"""The application of the process-model tests (tests/python/test_process_models.py):
one WSGI callable (`wsgi`) and one ASGI callable (`asgi`) for every server.

Each request `/work?rid=ID[&sleep=S]` ends one span named "work" carrying the
request's id and the serving pid, under the integration's server span, and
answers {"pid": ..., "rid": ...}.

Environment:
- PROCAPP_SELF_INSTRUMENT (default 1): start the agent and wrap the app with
  otelagent's middleware here. 0 leaves both to a launcher that instruments
  an unmodified app (otelagent-instrument, LD_PRELOAD).
- PROCAPP_IMPORT_SPANS=K: end K spans named "import" while the module is
  imported (in a pre-fork master that is before the workers are forked).
- PROCAPP_COUNT_SENDFILE=1: count the calls of socket.sendfile (GET
  /sendfiles answers how many; GET /file sends this file through the
  server's wsgi.file_wrapper).
- PROCAPP_INFLIGHT=1: then wait until the export of those spans has been
  sent and not answered (the test's sink delays its answer) so that the
  server forks its workers with an export in flight; prints
  "procapp: export in flight" when it is."""

import json
import os
import sys
import time
from urllib.parse import parse_qs

import otelagent

SELF_INSTRUMENT = os.environ.get("PROCAPP_SELF_INSTRUMENT", "1") == "1"
if SELF_INSTRUMENT:
    otelagent.start()


def _import_spans():
    n = int(os.environ.get("PROCAPP_IMPORT_SPANS", "0"))
    for i in range(n):
        with otelagent.start_as_current_span("import", attributes={"app.i": i,
                                                                   "app.pid": os.getpid()}):
            pass
    if n and os.environ.get("PROCAPP_INFLIGHT") == "1":
        otelagent.flush(0)  # wakes the exporter now rather than after the schedule delay
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            s = otelagent.stats()
            if s["export_requests"] >= 1:
                state = "in flight" if s["spans_exported"] == 0 else "already answered"
                print(f"procapp: export {state} (pid {os.getpid()})", file=sys.stderr, flush=True)
                return
            time.sleep(0.01)
        print("procapp: no export started", file=sys.stderr, flush=True)


_import_spans()


def _work(query):
    q = parse_qs(query)
    rid = q.get("rid", ["-"])[0]
    with otelagent.start_as_current_span("work", attributes={"app.rid": rid,
                                                             "app.pid": os.getpid()}):
        sleep = float(q.get("sleep", ["0"])[0])
        if sleep:
            time.sleep(sleep)
    return json.dumps({"pid": os.getpid(), "rid": rid}).encode()


# Calls of socket.sendfile in this process (gunicorn's way to send a body
# that is its wsgi.file_wrapper), for /file and /sendfiles.
_sendfiles = []


def _count_sendfile():
    import socket
    sendfile = socket.socket.sendfile

    def counted(self, file, *args, **kwargs):
        _sendfiles.append(1)
        return sendfile(self, file, *args, **kwargs)
    socket.socket.sendfile = counted


if os.environ.get("PROCAPP_COUNT_SENDFILE") == "1":
    _count_sendfile()


def _wsgi(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/file":  # this file, through the server's file wrapper (Flask's send_file)
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(os.path.getsize(__file__)))])
        return environ["wsgi.file_wrapper"](open(__file__, "rb"), 8192)
    if path == "/sendfiles":
        body = json.dumps({"pid": os.getpid(), "sendfiles": len(_sendfiles)}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    body = _work(environ.get("QUERY_STRING", ""))
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


async def _asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = _work(scope.get("query_string", b"").decode())
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


if SELF_INSTRUMENT:
    from otelagent.integrations.asgi import OtelAgentMiddleware
    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware

    wsgi = OtelAgentWSGIMiddleware(_wsgi)
    asgi = OtelAgentMiddleware(_asgi)
else:
    wsgi, asgi = _wsgi, _asgi
