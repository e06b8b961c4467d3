"""The demo program of the README's first command, run as a user would:
with the console exporter, and exporting to a loopback sink. Under a
sanitized build this also runs the C++ wrapper, threads and the console
formatter under ASan+UBSan."""

import os
import subprocess

from harness import BUILD, assert_no_sanitizer_report, host_env

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
