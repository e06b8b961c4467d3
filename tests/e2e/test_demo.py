"""The demo program of the README's first command, run as a user would:
with the console exporter, and exporting to a loopback sink. Under a
sanitized build this also runs the C++ wrapper, threads and the console
formatter under ASan+UBSan. Then the Python demo (samples/demo.sh) and the
trace trees it prints."""

import os
import re
import subprocess

import pytest

from harness import BUILD, ROOT, SANITIZE, assert_no_sanitizer_report, host_env

DEMO = os.path.join(BUILD, "otelagent_demo")
NAMES = {"GET /orders/{id}", "cache.get", "SELECT orders", "payments.authorize"}


def run_demo(env):
    res = subprocess.run([DEMO], env=host_env(env), capture_output=True, text=True, timeout=60)
    assert_no_sanitizer_report(res.stderr)
    assert res.returncode == 0, res.stderr
    return res.stderr


def test_demo_prints_its_trace_with_the_console_exporter():
    out = run_demo({"OTEL_TRACES_EXPORTER": "console"})
    for name in NAMES:
        assert name in out, out
    assert "demo: 4 spans ended" in out


def test_demo_exports_its_trace(sink):
    out = run_demo({"OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint})
    assert "4 exported to a collector" in out, out
    assert {s.name for s in sink.spans()} == NAMES


# ---- The Python demo (samples/demo.sh runs it): FastAPI under uvicorn calling
# Flask under gunicorn, both printing their traces with the console exporter.

VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
TRACE = re.compile(r"^trace ([0-9a-f]{32})$")
SPAN = re.compile(r"^( +)(.+?)  [0-9.]+ ms  \[(\w+)\] span=([0-9a-f]{16})(?:  status=(\w+))?")


def console_traces(text):
    """{trace id: [span]} from the console exporter's output, each span a dict
    with its name, kind, status, depth in the printed tree, parent (the
    enclosing span printed above it) and the attribute lines under it."""
    traces, spans, stack = {}, None, []
    for line in text.splitlines():
        m = TRACE.match(line)
        if m:
            spans, stack = traces.setdefault(m.group(1), []), []
            continue
        m = SPAN.match(line) if spans is not None else None
        if m:
            depth = (len(m.group(1)) - 2) // 2
            del stack[depth:]
            span = {"name": m.group(2), "kind": m.group(3), "status": m.group(5), "depth": depth,
                    "parent": stack[-1]["name"] if stack else None, "lines": []}
            spans.append(span)
            stack.append(span)
        elif stack:
            stack[-1]["lines"].append(line.strip())
    return traces


def only(spans, name):
    found = [s for s in spans if s["name"] == name]
    assert len(found) == 1, (name, spans)
    return found[0]


@pytest.mark.skipif(bool(SANITIZE), reason="the Python demo runs the plain build (tests/python covers Python)")
def test_python_demo_prints_the_trace_trees_of_both_services():
    assert os.path.exists(VENV_PYTHON), "no .venv: run tests/python/setup-venv.sh BUILD_DIR"
    res = subprocess.run(
        [VENV_PYTHON, os.path.join(ROOT, "samples", "python", "demo.py")],
        env=host_env({"OTELAGENT_LIBRARY": os.path.join(BUILD, "libotelagent.so.2")}),
        capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    users_text, inventory_text = out.split("===== inventory (Flask, gunicorn)")
    users_text = users_text.split("===== users (FastAPI, uvicorn)")[1]
    users, inventory = console_traces(users_text), console_traces(inventory_text)

    def trace_with(traces, root_name):
        return {t: s for t, s in traces.items() if s and s[0]["name"] == root_name}

    user_traces = trace_with(users, "GET /api/users/{user_id}")
    assert len(user_traces) == 2, out
    for trace_id, spans in user_traces.items():
        server = spans[0]
        assert (server["kind"], server["depth"]) == ("server", 0)
        assert "http.response.status_code=200" in server["lines"]
        assert only(spans, "load-user")["parent"] == server["name"]
        assert only(spans, "db-query")["parent"] == "load-user"
        client = [s for s in spans if s["kind"] == "client"]
        assert len(client) == 1 and client[0]["parent"] == server["name"], spans
        # The query value of a secret name is redacted on the client span.
        assert any(l.startswith("url.full=") and "token=REDACTED" in l for l in client[0]["lines"])
        # The downstream service continued the same trace: its server span
        # and the custom span under it.
        downstream = inventory.get(trace_id)
        assert downstream, (trace_id, inventory_text)
        assert (downstream[0]["name"], downstream[0]["kind"]) == ("GET /inventory/<int:item_id>", "server")
        assert only(downstream, "inventory-lookup")["parent"] == downstream[0]["name"]
        # Log lines carry the trace id, in both services.
        assert f"trace_id={trace_id}" in users_text and f"trace_id={trace_id}" in inventory_text
    # The request that came with a traceparent continued the caller's trace.
    assert "4bf92f3577b34da6a3ce929d0e0e4736" in user_traces

    fail = trace_with(users, "GET /fail")
    assert len(fail) == 1, out
    (fail_spans,) = fail.values()
    assert fail_spans[0]["status"] == "ERROR"
    assert "http.response.status_code=500" in fail_spans[0]["lines"]
    assert any(l.endswith(": exception") for l in fail_spans[0]["lines"])

    (stream,) = trace_with(users, "GET /stream").values()
    assert [s["name"] for s in stream[1:]] == ["chunk"] * 3
    assert all(s["parent"] == "GET /stream" for s in stream[1:])
    # The excluded health check made no span.
    assert "/healthz" not in "".join(s["name"] for t in users.values() for s in t)
    assert "crossed from one service to the other" in out
